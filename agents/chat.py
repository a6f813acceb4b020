"""The multi-turn chat of one search episode, with a sliding window of views.

Every turn adds a user message (the current view and the environment's feedback) and,
once the model has answered, an assistant message with its reply. The first user
message also carries the task prompt. Only the last ``history`` views are sent as
images; older views are replaced by a short text naming the direction they showed, so
the prompt length (and the image-token count) stays bounded however long the episode.

The messages use the Hugging Face chat format (``{"type": "image"}`` entries with the
pictures passed separately, in order), which ``processor.apply_chat_template`` renders
for any image-text-to-text model.

``structure="compact"`` is panoseek's structure with a one-line opening (task kind, reply
layout, instruction) instead of the page of rules: for models trained on panoseek's own
episodes, which learn the protocol from them (docs/training.md).

A turn may also carry crops of its view (attention-guided cropping, :meth:`EpisodeChat.add_crops`):
they are sent as further images right after the view, whenever the view is sent.

``structure="hstar"`` builds the conversation the way the released H* environment does
(:mod:`panoseek.envs.prompts`): a system prompt with a worked episode, then every user
message names the action read from the last reply, the feedback, the new view, the
instruction and the reply layout again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from panoseek.envs.prompts import (
    HSTAR_VIEW,
    compact_prompt,
    hstar_first_message,
    hstar_system_prompt,
    hstar_turn_message,
    task_prompt,
)
from panoseek.envs.protocol import HSTAR, ActionProtocol, feedback_text, format_action

COMPACT = "compact"
STRUCTURES = ("panoseek", COMPACT, HSTAR)


def turns_left_note(left: int) -> str:
    """The end of a user turn's text: ``" 3 turns left."``, ``" 1 turn left: this is the last one."``."""
    return " 1 turn left: this is the last one." if left == 1 else f" {left} turns left."


@dataclass
class _Turn:
    image: Image.Image  # converted once, when observed, and reused while in the window
    text: str
    heading: tuple[float, float]
    reply: str | None = None
    crops: list[Image.Image] = field(default_factory=list)  # closer looks at the view, sent after it


@dataclass
class EpisodeChat:
    """The conversation of one episode; ``history`` is how many recent views stay images."""

    kind: str
    instruction: str
    prompt_format: str = "free_think"
    history: int = 2
    structure: str = "panoseek"  # "compact" (one-line opening) or "hstar" (see the module docstring)
    max_turns: int | None = None  # the turn budget: each user turn then says how many turns are left
    turns: list[_Turn] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not isinstance(self.history, int) or self.history < 1:
            raise ValueError(f"history must be a positive number of views, got {self.history!r}")
        if self.structure not in STRUCTURES:
            raise ValueError(f"structure must be one of {STRUCTURES}, got {self.structure!r}")
        if self.max_turns is not None:
            if isinstance(self.max_turns, bool) or not isinstance(self.max_turns, int) or self.max_turns < 1:
                raise ValueError(f"max_turns must be a positive number of turns or None, got {self.max_turns!r}")
            if self.structure == HSTAR:
                raise ValueError("max_turns (the turns-left note) is not for structure 'hstar': H*'s prompts are fixed")
        if self.structure == HSTAR:
            self.prompt = hstar_system_prompt(self.kind, self.prompt_format)
        elif self.structure == COMPACT:
            self.prompt = compact_prompt(self.kind, self.instruction, self.prompt_format)
        else:
            self.prompt = task_prompt(self.kind, self.instruction, self.prompt_format)

    def observe(self, observation: dict[str, Any]) -> None:
        """Add the user turn for ``observation`` (env observation plus ``feedback``)."""
        if self.turns and self.turns[-1].reply is None:
            raise RuntimeError("observe() called twice without a reply in between")
        image = np.asarray(observation["image"])
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"observation 'image' must be an (H, W, 3) uint8 array, got {image.dtype} {image.shape}")
        yaw, pitch = (float(angle) for angle in observation["heading"])
        feedback = str(observation.get("feedback") or "").strip() or f"{feedback_text(yaw, pitch)}."
        if self.max_turns is not None:
            feedback += turns_left_note(self._turns_left(observation))
        self.turns.append(_Turn(Image.fromarray(image.copy()), feedback, (yaw, pitch)))

    def _turns_left(self, observation: dict[str, Any]) -> int:
        """Turns left including this one, from the observation's 0-based ``turn``."""
        if "turn" not in observation:
            raise ValueError("observation has no 'turn' (0-based), which the turns-left note needs (max_turns is set)")
        left = self.max_turns - int(observation["turn"])
        if left < 1:
            raise ValueError(f"observation 'turn' {observation['turn']!r} is beyond the budget of {self.max_turns} turns")
        return left

    def add_crops(self, crops: list[Image.Image]) -> None:
        """Attach crops of the last observed view (before the model replies to it)."""
        if not self.turns or self.turns[-1].reply is not None:
            raise RuntimeError("add_crops() without a pending observation")
        self.turns[-1].crops.extend(crops)

    def reply(self, text: str) -> None:
        """Record the model's reply to the last observation."""
        if not self.turns or self.turns[-1].reply is not None:
            raise RuntimeError("reply() without a pending observation")
        self.turns[-1].reply = text

    def shown(self) -> range:
        """Indices of the turns whose views are sent as images (the last ``history``)."""
        return range(max(0, len(self.turns) - self.history), len(self.turns))

    def messages(self) -> tuple[list[dict[str, Any]], list[Image.Image]]:
        """The chat so far and its images, in the order of their ``{"type": "image"}`` entries."""
        messages: list[dict[str, Any]] = []
        images: list[Image.Image] = []
        shown = self.shown()
        if self.structure == HSTAR:
            return self._hstar_messages(shown)
        for index, turn in enumerate(self.turns):
            content: list[dict[str, Any]] = []
            if index == 0:
                content.append({"type": "text", "text": self.prompt + "\n\n"})
            if index in shown:
                content += [{"type": "image"} for _ in range(1 + len(turn.crops))]
                images += [turn.image, *turn.crops]
            else:
                content.append({"type": "text", "text": f"[earlier view, where {feedback_text(*turn.heading)}]\n"})
            content.append({"type": "text", "text": turn.text})
            messages.append({"role": "user", "content": content})
            if turn.reply is not None:
                messages.append({"role": "assistant", "content": [{"type": "text", "text": turn.reply}]})
        return messages, images

    def _hstar_messages(self, shown: range) -> tuple[list[dict[str, Any]], list[Image.Image]]:
        """The H*-structured chat: system prompt, then per turn the action read, the feedback,
        the view (or a note naming an earlier one), the instruction and the format block."""
        messages: list[dict[str, Any]] = [{"role": "system", "content": [{"type": "text", "text": self.prompt}]}]
        images: list[Image.Image] = []
        parser = ActionProtocol(prompt_format=self.prompt_format, strict=HSTAR)
        for index, turn in enumerate(self.turns):
            if index == 0:
                text = hstar_first_message(self.instruction, self.prompt_format)
            else:
                action = parser.parse(self.turns[index - 1].reply or "")
                read = format_action(action.kind, action.yaw, action.pitch) if action.valid else ""
                text = hstar_turn_message(self.instruction, self.prompt_format, read, turn.text, done=False)
            before, after = text.split(HSTAR_VIEW, 1)
            if index in shown:
                view: list[dict[str, Any]] = [{"type": "image"} for _ in range(1 + len(turn.crops))]
                images += [turn.image, *turn.crops]
            else:
                view = [{"type": "text", "text": f"[earlier view, where {feedback_text(*turn.heading)}]"}]
            messages.append({"role": "user", "content": [{"type": "text", "text": before}, *view, {"type": "text", "text": after}]})
            if turn.reply is not None:
                messages.append({"role": "assistant", "content": [{"type": "text", "text": turn.reply}]})
        return messages, images
