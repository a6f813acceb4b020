"""Action interfaces over :class:`~panoseek.envs.env.PanoramaSearchEnv`.

* :class:`TextActions`: the H* text protocol, for language agents. The action is the
  agent's reply string; the observation adds the prompt text to show it.
* :class:`DiscreteRotations`: a few head turns plus "submit where I look", for small
  RL policies.
"""

from __future__ import annotations

import string
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from panoseek.envs.agent import rotate, submit
from panoseek.envs.protocol import ActionProtocol, check_zoom_protocol, feedback_text, format_action
from panoseek.envs.prompts import hstar_first_message, hstar_system_prompt, hstar_turn_message, task_prompt
from panoseek.envs.rollout import take_turn
from panoseek.envs.task import Task

MAX_REPLY_LENGTH = 8192  # nominal bound of the Text action space; longer replies are still parsed
FEEDBACK_ROOM = 2048  # room for the longest feedback message (errors quote at most 40 escaped characters)


class TextActions(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """The action is an H*-format reply such as ``<think>..</think><answer>rotate(-45,0)</answer>``.

    ## Action Space

    ``Text(max_length=8192, charset=printable ASCII)``. Any string is accepted (also
    longer ones or other characters); replies that do not parse are invalid actions:
    the turn counts and the heading stays.

    ## Observation Space

    The inner observation plus ``prompt`` (``Text``): the task prompt
    (:func:`~panoseek.envs.prompts.task_prompt`) and the start direction after
    ``reset``, and the feedback message after each ``step``.

    ## Rewards

    The environment's: on submission 0.5 for success plus 0.5 when the final reply is
    well-formed (it passes strict parsing in the layout of ``prompt_format``).
    ``info["well_formed"]`` reports it on every turn.

    ## Arguments

    ``strict``: ``False`` lenient, ``True`` strict (panoseek's exact format) or ``"hstar"``:
    the released H* environment's parser and H*-structured prompts (the system prompt
    and first message after ``reset``, then each turn the action read, the feedback,
    the instruction and the format block; see :mod:`panoseek.envs.prompts`).
    ``prompt_format``: ``"free_think"``, ``"no_think"`` or ``"grounding"``.

    ``step`` is the rollout loop's own turn (:func:`~panoseek.envs.rollout.take_turn`), so
    a reply earns here exactly what it earns under ``panoseek eval``.
    """

    def __init__(self, env: gym.Env, *, strict: bool | str = False, prompt_format: str = "free_think") -> None:
        protocol = ActionProtocol(prompt_format=prompt_format, strict=strict)
        check_zoom_protocol(env.get_wrapper_attr("zoom"), protocol.strict)
        gym.utils.RecordConstructorArgs.__init__(self, strict=strict, prompt_format=prompt_format)
        gym.Wrapper.__init__(self, env)
        self.protocol = protocol
        self.strict = protocol.strict
        self.prompt_format = protocol.prompt_format
        tasks = env.get_wrapper_attr("tasks")
        self.zoom_fov = env.get_wrapper_attr("fov_deg") if env.get_wrapper_attr("zoom") else None
        longest = max(len(opening_prompt(task, 359.0, -90.0, protocol, zoom_fov=self.zoom_fov)) for task in tasks)
        if protocol.hstar:
            turn = max(
                len(hstar_turn_message(task.instruction, prompt_format, "submit(-360,-90)", "", False)) for task in tasks
            )
            longest = max(longest, turn + FEEDBACK_ROOM)
        instruction_space = env.observation_space["instruction"]
        self.observation_space = spaces.Dict(
            {
                **env.observation_space.spaces,
                "prompt": spaces.Text(
                    max_length=max(longest, FEEDBACK_ROOM), charset=instruction_space.character_set
                ),
            }
        )
        self.action_space = spaces.Text(max_length=MAX_REPLY_LENGTH, charset=string.printable)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[dict, dict]:
        obs, info = self.env.reset(seed=seed, options=options)
        task, (yaw, pitch) = self.env.get_wrapper_attr("task"), self.env.get_wrapper_attr("heading")
        return {**obs, "prompt": opening_prompt(task, yaw, pitch, self.protocol, zoom_fov=self.zoom_fov)}, info

    def step(self, action: Any) -> tuple[dict, float, bool, bool, dict]:
        obs, reward, terminated, truncated, info, parsed = take_turn(self.env, action, self.protocol)
        prompt = info["feedback"]
        if self.protocol.hstar:
            read = format_action(parsed.kind, parsed.yaw, parsed.pitch) if parsed.valid else ""
            task = self.env.get_wrapper_attr("task")
            prompt = hstar_turn_message(task.instruction, self.prompt_format, read, prompt, terminated or truncated)
        return {**obs, "prompt": prompt}, reward, terminated, truncated, info


def opening_prompt(task: Task, yaw: float, pitch: float, protocol: ActionProtocol, *, zoom_fov: float | None = None) -> str:
    """The task prompt plus the start direction (H* leaves the agent to guess it until the
    first feedback, so an immediate submission could not be aimed); with the ``"hstar"``
    parser, H*'s system prompt and first message, which do not give the start direction.
    ``zoom_fov``: the view's FOV when the run allows zooms (the prompt then explains them)."""
    if protocol.hstar:
        system = hstar_system_prompt(task.kind, protocol.prompt_format)
        return f"{system}\n\n{hstar_first_message(task.instruction, protocol.prompt_format)}"
    prompt = task_prompt(task.kind, task.instruction, protocol.prompt_format, zoom_fov=zoom_fov)
    return f"{prompt}\nAt the start, {feedback_text(yaw, pitch)}."


class DiscreteRotations(gym.ActionWrapper, gym.utils.RecordConstructorArgs):
    """Discrete head turns plus "submit the current heading", for small RL policies.

    ## Action Space

    ``Discrete(len(action_names))``; see :attr:`action_names` for the meaning of each
    index: submit, right, left, up, down (``step_deg``) and, when ``big_step_deg`` is
    set, big right and big left turns.
    """

    def __init__(self, env: gym.Env, step_deg: float = 30.0, big_step_deg: float | None = 90.0) -> None:
        for name, value in (("step_deg", step_deg), ("big_step_deg", big_step_deg)):
            if value is not None and not (isinstance(value, (int, float)) and 0.0 < value <= 180.0):
                raise ValueError(f"{name} must be a number in (0, 180], got {value!r}")
        if step_deg is None:
            raise ValueError("step_deg must be a number in (0, 180], got None")
        gym.utils.RecordConstructorArgs.__init__(self, step_deg=step_deg, big_step_deg=big_step_deg)
        gym.ActionWrapper.__init__(self, env)
        turns = {"right": (step_deg, 0.0), "left": (-step_deg, 0.0), "up": (0.0, step_deg), "down": (0.0, -step_deg)}
        if big_step_deg is not None:
            turns.update({"big_right": (big_step_deg, 0.0), "big_left": (-big_step_deg, 0.0)})
        self.action_names: tuple[str, ...] = ("submit", *turns)
        self._turns = list(turns.values())
        self.action_space = spaces.Discrete(len(self.action_names))

    def step(self, action: Any) -> tuple[dict, float, bool, bool, dict]:
        """As ``ActionWrapper.step``; a value that is not an index is an invalid turn, named in ``info``."""
        obs, reward, terminated, truncated, info = super().step(action)
        if not self._is_index(action):
            info = {**info, "action_error": f"discrete action must be an integer in [0, {self.action_space.n}), got {action!r}"}
        return obs, reward, terminated, truncated, info

    def action(self, action: Any) -> dict[str, Any]:
        """Index -> the environment's action: a submit of the current heading or a turn.

        A value that is not an index is mapped to an action outside the environment's
        space (NaN angles), which the environment counts as an invalid turn.
        """
        if not self._is_index(action):
            return rotate(float("nan"), float("nan"))
        action = int(action)
        if action == 0:
            return submit(*self.env.get_wrapper_attr("heading"))
        return rotate(*self._turns[action - 1])

    def _is_index(self, action: Any) -> bool:
        if isinstance(action, np.ndarray) and action.shape == ():
            action = action.item()
        return not isinstance(action, bool) and isinstance(action, (int, np.integer)) and 0 <= action < self.action_space.n
