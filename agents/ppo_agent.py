"""``ppo``: plays a policy trained by ``panoseek train ppo`` under the agent contract.

``panoseek eval --agent ppo --agent-arg checkpoint=RUN/checkpoint.pt`` (add
``--view-size 128x72`` to show it views at the size it was trained on; other sizes are
resized to the policy's input). The agent sees only what every agent sees: the
instruction and turn budget from ``task_info``, and per turn the view, heading, turn
count. Its actions are those of :class:`~panoseek.envs.wrappers.DiscreteRotations`
(turns, and "submit the current heading"), sent as structured ``rotate``/``submit``
actions. It plays greedily (the most likely action) unless ``greedy=false``, then it
samples with the episode's seed.

Optional ``--agent-arg`` expectations (``codebook=true``, ``view_size=[128,72]``) are
checked against the checkpoint, and a checkpoint whose action set is not a
DiscreteRotations set, or whose weights do not fit its settings, is refused with one
error naming the field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from panoseek.agents.policy import PolicyCheckpointError, SearchPolicy, load_policy
from panoseek.envs.agent import submit
from panoseek.envs.env import PanoramaSearchEnv
from panoseek.envs.task import HOS, Task
from panoseek.envs.wrappers import DiscreteRotations

_POLICIES: dict[tuple, tuple[SearchPolicy, list[dict[str, Any] | None]]] = {}  # loaded once per process


def rotation_actions(step_deg: float, big_step_deg: float | None) -> tuple[tuple[str, ...], list[dict[str, Any] | None]]:
    """DiscreteRotations' action names and, per index, its turn action (None for submit)."""
    placeholder = Task(id="actions", kind=HOS, instruction="actions", panorama=np.zeros((2, 4, 3), np.uint8),
                       yaw_range=(0.0, 1.0), pitch_range=(0.0, 1.0), start_yaws=(0.0,), levels=(0,))
    wrapper = DiscreteRotations(PanoramaSearchEnv([placeholder]), step_deg=step_deg, big_step_deg=big_step_deg)
    names = wrapper.action_names
    return names, [None if name == "submit" else wrapper.action(i) for i, name in enumerate(names)]


def _policy(checkpoint: str, expect: dict[str, Any], device: str) -> tuple[SearchPolicy, list[dict[str, Any] | None]]:
    path = Path(checkpoint).resolve()
    if not path.is_file():
        raise PolicyCheckpointError(f"checkpoint {checkpoint!r} is not a file")
    key = (str(path), path.stat().st_mtime_ns, device, tuple(sorted((k, repr(v)) for k, v in expect.items())))
    if key not in _POLICIES:
        policy = load_policy(path, expect, device)
        config = policy.config
        try:
            names, turns = rotation_actions(config.step_deg, config.big_step_deg)
        except ValueError as error:
            raise PolicyCheckpointError(f"{path}: config fields 'step_deg'/'big_step_deg' ({error})") from None
        if tuple(config.action_names) != names:
            raise PolicyCheckpointError(
                f"{path}: checkpoint field 'action_names' is {config.action_names!r}, but DiscreteRotations"
                f"(step_deg={config.step_deg}, big_step_deg={config.big_step_deg}) plays {names!r}"
            )
        _POLICIES[key] = (policy, turns)
    return _POLICIES[key]


class PPOAgent:
    """A trained :class:`~panoseek.agents.policy.SearchPolicy` as an agent (see the module docstring)."""

    def __init__(self, checkpoint: str, greedy: bool = True, device: str = "cpu", **expect: Any) -> None:
        self.policy, self.turns = _policy(checkpoint, expect, device)
        self.greedy = bool(greedy)
        self._info: dict[str, Any] = {}

    def reset(self, task_info: dict[str, Any]) -> None:
        self._info = task_info
        self._state = self.policy.initial_state(1)
        self._previous = self.policy.no_action
        self._generator = torch.Generator().manual_seed(int(task_info.get("seed", 0)))

    def act(self, observation: dict[str, Any]) -> dict[str, Any]:
        return type(self).act_batch([self], [observation])[0]

    @staticmethod
    def act_batch(agents: list["PPOAgent"], observations: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """One policy call for a lock-step batch of episodes (agents of one checkpoint)."""
        policy = agents[0].policy
        if any(agent.policy is not policy for agent in agents):
            return [agent.act(observation) for agent, observation in zip(agents, observations)]
        x = policy.inputs(
            np.stack([o["image"] for o in observations]), [o["instruction"] for o in observations],
            np.array([float(o["heading"][1]) for o in observations]), np.array([int(o["turn"]) for o in observations]),
            np.array([int(agent._info.get("max_turns", 10)) for agent in agents]),
            np.array([agent._previous for agent in agents]),
        )
        state = torch.cat([agent._state for agent in agents], dim=1)
        with torch.no_grad():
            hidden, state = policy.memory(x, state, torch.zeros(len(agents), device=state.device))
            logits = policy.action_logits(hidden, x["last_turn"])
        outputs = []
        for i, (agent, observation) in enumerate(zip(agents, observations)):
            if agent.greedy:
                index = int(logits[i].argmax())
            else:
                index = int(torch.multinomial(logits[i].softmax(-1), 1, generator=agent._generator))
            agent._state, agent._previous = state[:, i : i + 1], index
            yaw, pitch = (float(a) for a in observation["heading"])
            outputs.append(submit(yaw, pitch) if agent.turns[index] is None else dict(agent.turns[index]))
        return outputs
