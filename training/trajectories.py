"""Episodes played for training: every turn's exact model input, sampled reply and log-probs.

:func:`play_trajectories` plays a batch of episodes with one model through the one
episode loop (:func:`panoseek.envs.rollout.play`), with a ``VLMAgent`` per episode whose
policy is a :class:`RecordingPolicy`. That policy answers exactly as ``VLMPolicy`` does
(same chat rendering, same processor call) but samples from the pure tempered
distribution ``softmax(logits / temperature)`` (no top-k, top-p or repetition penalty a
checkpoint's ``generation_config`` may carry, so the log-probs a trainer recomputes are
the sampling log-probs; only the image/video placeholder tokens are never drawn, since
a placeholder in a reply has no picture: the recorded log-probs are those of the full
distribution, which the trainer optimises) and keeps, per turn:

* ``prompt_ids``: the tokens the model was given at that turn (its chat, rendered by
  :class:`~panoseek.agents.chat.EpisodeChat` with the history window, image placeholders
  expanded, padding removed);
* ``images``: that chat's views, in the order of its image entries;
* ``completion_ids``: the sampled reply tokens, plus ``<|im_end|>`` when the reply ended
  at ``</answer>`` (the chat template closes every reply with it, so it is trained too);
* ``logprobs``: the sampling log-prob of each sampled token (not of an appended end);
* ``token_fields``: the processor's other per-token inputs over the prompt (Qwen2.5-VL's
  ``mm_token_type_ids``: without them its rotary positions treat image tokens as text, and
  the training forward silently differs from the one that sampled).

The chat keeps a window of views, so a trajectory is trained as its per-turn sequences
(prompt = what the model saw, completion = what it wrote), never as one concatenation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from panoseek.agents.chat import EpisodeChat
from panoseek.agents.vlm import VLMAgent, VLMPolicy
from panoseek.envs.rollout import EpisodeSpec, play

STOP = "</answer>"
END_OF_TURN = "<|im_end|>"


@dataclass
class TurnSample:
    """One turn as the model lived it: its exact input, its reply tokens and their log-probs."""

    prompt_ids: list[int]
    images: list[Any]  # PIL images, in the order of the prompt's image placeholders
    completion_ids: list[int]
    logprobs: list[float]  # one per sampled token: completion_ids[: len(logprobs)]
    text: str  # the reply as the environment read it
    # Per-token fields of the processor's output besides ids and mask (Qwen2.5-VL: ``mm_token_type_ids``,
    # which places the image tokens' 3-D rotary positions), over the prompt; the reply's tokens are text (0).
    token_fields: dict[str, list[int]] = field(default_factory=dict)

    @property
    def input_ids(self) -> list[int]:
        """The sequence trained on: prompt then reply."""
        return self.prompt_ids + self.completion_ids

    @property
    def assistant_mask(self) -> list[int]:
        """1 on the tokens the model wrote (the reply and its end), 0 on prompt, feedback and image tokens."""
        return [0] * len(self.prompt_ids) + [1] * len(self.completion_ids)


@dataclass
class Trajectory:
    """A played episode: its spec, its record (reward, success, actions: what eval reports) and turns."""

    spec: EpisodeSpec
    record: dict[str, Any]
    turns: list[TurnSample] = field(default_factory=list)
    infos: list[dict[str, Any]] = field(default_factory=list)  # the environment's info after each turn

    @property
    def views(self) -> list[Any]:
        """Every view the episode showed the model (each turn's newest image)."""
        return [turn.images[-1] for turn in self.turns if turn.images]


class RecordingPolicy(VLMPolicy):
    """A ``VLMPolicy`` that samples from ``softmax(logits / temperature)`` and records every turn."""

    def __init__(self, model: Any, processor: Any, *, temperature: float = 1.0, max_new_tokens: int = 256) -> None:
        super().__init__(model, processor, sample=True, temperature=temperature, max_new_tokens=max_new_tokens)
        tokenizer = processor.tokenizer
        self.end_id = tokenizer.convert_tokens_to_ids(END_OF_TURN)
        if self.end_id is None or self.end_id == tokenizer.unk_token_id:
            raise ValueError(f"the tokenizer has no {END_OF_TURN} token: replies cannot be closed as the chat template closes them")
        eos = model.generation_config.eos_token_id
        self.eos_ids = {int(i) for i in ([] if eos is None else [eos] if isinstance(eos, int) else eos)} | {self.end_id}
        # Image/video placeholders are never sampled: the training forward would take one in a reply for
        # a picture that is not there (the processor expands placeholders in prompts only).
        placeholders = [getattr(processor, name, None) for name in ("image_token", "video_token")]
        self.suppressed = sorted({tokenizer.convert_tokens_to_ids(token) for token in placeholders if token})
        self.samples: dict[int, list[TurnSample]] = {}  # id(chat) -> its turns

    def generate(self, chats: Sequence[EpisodeChat], seed: int | None = None) -> list[str]:
        """One sampled reply per chat, recording prompt tokens, views, reply tokens and log-probs."""
        import torch
        from transformers import GenerationConfig

        inputs = self.inputs(chats)
        tokenizer = self.processor.tokenizer
        config = GenerationConfig(
            do_sample=True, temperature=self.temperature, top_k=0, top_p=1.0, max_new_tokens=self.max_new_tokens,
            eos_token_id=sorted(self.eos_ids), pad_token_id=tokenizer.pad_token_id, stop_strings=[STOP],
            return_dict_in_generate=True, output_logits=True, suppress_tokens=self.suppressed or None,
        )
        if seed is not None:
            torch.manual_seed(seed)
        with torch.inference_mode():
            output = self.model.generate(**inputs, generation_config=config, tokenizer=tokenizer)
        start = inputs["input_ids"].shape[1]
        new_tokens = output.sequences[:, start:]
        # log softmax(logits / T) of each drawn token, step by step (never a [batch, steps, vocab] block).
        logprobs = torch.stack([
            step.float().div(self.temperature).log_softmax(-1).gather(-1, new_tokens[:, t, None])[:, 0]
            for t, step in enumerate(output.logits)
        ], dim=1).tolist()
        replies = []
        for row, chat in enumerate(chats):
            sampled, ending = self._reply_tokens(new_tokens[row].tolist())
            completion = sampled + [self.end_id] if ending == "stop" else sampled
            text = tokenizer.decode(sampled, skip_special_tokens=True)
            mask = inputs["attention_mask"][row].bool()
            per_token = {key: value[row][mask].tolist() for key, value in inputs.items()
                         if key not in ("input_ids", "attention_mask") and value.shape == inputs["input_ids"].shape}
            self.samples.setdefault(id(chat), []).append(TurnSample(
                prompt_ids=inputs["input_ids"][row][mask].tolist(),
                images=list(chat.messages()[1]),
                completion_ids=completion,
                logprobs=logprobs[row][: len(sampled)],
                text=text,
                token_fields=per_token,
            ))
            replies.append(text)
        return replies

    def _reply_tokens(self, new: list[int]) -> tuple[list[int], str]:
        """The tokens of one reply and how it ended: ``"eos"`` (an end-of-sequence token, kept), ``"stop"``
        (the token completing ``</answer>``) or ``"length"`` (``max_new_tokens``); after its end a batched
        ``generate`` writes padding."""
        tokenizer = self.processor.tokenizer
        for index, token in enumerate(new):
            if token in self.eos_ids:
                return new[: index + 1], "eos"
            if ">" in tokenizer.decode([token]) and STOP in tokenizer.decode(new[: index + 1], skip_special_tokens=True):
                return new[: index + 1], "stop"
        return new, "length"


def play_trajectories(
    policy: RecordingPolicy,
    envs: Sequence[Any],
    specs: Sequence[EpisodeSpec],
    *,
    history: int = 2,
    prompt_format: str = "free_think",
    chat: str | None = None,
    turns_left: bool = False,
    strict: bool | str = False,
) -> list[Trajectory]:
    """Play ``specs`` in lock-step, one ``VLMAgent`` on ``policy`` each, through :func:`rollout.play`.

    ``history``, ``prompt_format``, ``chat`` (the chat structure) and ``turns_left`` (the
    turns-left note of the environments' budget) are the agent's options, as
    ``panoseek eval --agent vlm --agent-arg ...`` takes them.

    Every episode's turns are checked against its record (one recorded sample per turn):
    an agent failure (an exception inside generation) is raised, not trained on.
    """
    agents = [VLMAgent(policy, history=history, prompt_format=prompt_format, chat=chat, turns_left=turns_left)
              for _ in specs]
    rollouts = play(envs, agents, specs, strict=strict)
    trajectories = []
    for agent, rollout in zip(agents, rollouts):
        if rollout.record["error"]:
            raise RuntimeError(f"episode {rollout.spec.episode_id} failed while playing: {rollout.record['error']}")
        turns = policy.samples.pop(id(agent.chat), [])
        if len(turns) != rollout.record["turns"]:
            raise RuntimeError(f"episode {rollout.spec.episode_id}: {len(turns)} recorded replies for "
                               f"{rollout.record['turns']} turns")
        trajectories.append(Trajectory(rollout.spec, rollout.record, turns, [turn.info for turn in rollout.turns]))
    return trajectories
