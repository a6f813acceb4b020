"""Lock-step batched multi-turn inference: B episodes, one ``generate`` call per turn.

Language-model decoding on small batches leaves most of a CPU or GPU idle, and the
per-token work of ``generate`` (Python, kernel launches) is paid once per call, not per
row. :class:`BatchedVLMRunner` therefore steps B text-action environments together:
each turn it renders every unfinished episode's chat, generates all replies in one
left-padded batch, and steps each environment with its reply. Finished episodes leave
the batch; the rest go on.

What is reused between turns: the loaded model and processor, and each episode's
rendered task prompt. The key/value cache is not carried from one turn to the next,
because the sliding view window changes the start of the prompt as old views turn
into text.

Greedy replies are the same as :class:`panoseek.agents.vlm.VLMAgent` run one episode
at a time, since both build the same chat and call the same :class:`VLMPolicy`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from panoseek.agents.chat import EpisodeChat
from panoseek.agents.vlm import VLMPolicy


@dataclass
class EpisodeRecord:
    """What one lock-step episode produced."""

    task_id: str
    replies: list[str] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)  # the environment's last info


class BatchedVLMRunner:
    """Run episodes of text-action environments in lock-step batches of ``batch_size``."""

    def __init__(
        self,
        policy: VLMPolicy,
        *,
        history: int = 2,
        prompt_format: str = "free_think",
        batch_size: int = 16,
    ) -> None:
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size!r}")
        self.policy = policy
        self.history = int(history)
        self.prompt_format = prompt_format
        self.batch_size = int(batch_size)

    def run(self, make_env: Callable[[], Any], reset_options: Sequence[dict[str, Any] | None]) -> list[EpisodeRecord]:
        """One episode per entry of ``reset_options``, e.g. ``{"task_index": 2, "start_index": 1}``.

        ``make_env()`` builds an environment taking H*-format text actions (such as
        ``TextActions(PanoramaSearchEnv(tasks))``); ``batch_size`` of them are built
        and reused batch after batch. Episode ``i`` is reset with ``seed=i``.
        """
        envs = [make_env() for _ in range(min(self.batch_size, len(reset_options)))]
        records: list[EpisodeRecord] = []
        for start in range(0, len(reset_options), self.batch_size):
            options = reset_options[start : start + self.batch_size]
            records += self._run_batch(envs[: len(options)], options, first_seed=start)
        return records

    def _run_batch(self, envs: Sequence[Any], options: Sequence[dict[str, Any] | None], first_seed: int) -> list[EpisodeRecord]:
        chats, observations, records = [], [], []
        for offset, (env, option) in enumerate(zip(envs, options)):
            observation, info = env.reset(seed=first_seed + offset, options=option)
            chats.append(EpisodeChat(info["kind"], str(observation["instruction"]), self.prompt_format, self.history))
            observations.append(dict(observation, feedback="", turn=0))
            records.append(EpisodeRecord(task_id=str(info["task_id"]), info=info))
        active = list(range(len(envs)))
        turn = 0
        while active:
            for index in active:
                chats[index].observe(observations[index])
            replies = self.policy.generate([chats[index] for index in active], seed=first_seed + turn)
            still_active = []
            for index, reply in zip(active, replies):
                chats[index].reply(reply)
                observation, reward, terminated, truncated, info = envs[index].step(reply)
                records[index].replies.append(reply)
                records[index].rewards.append(float(reward))
                records[index].info = info
                observations[index] = dict(observation, feedback=info.get("feedback", ""), turn=turn + 1)
                if not (terminated or truncated):
                    still_active.append(index)
            active = still_active
            turn += 1
        return records
