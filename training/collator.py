"""The SFT batch: TRL's vision collator with the loss on each row's last reply only.

Each row of the expert data is one decision: the chat as the agent sees it at one turn,
ending with the expert's reply to it (:mod:`panoseek.training.expert_data`). Earlier
replies in the chat are context: the loss on them would teach a reply from a context it
was not given (its view may have left the history window since). So the batch is TRL's
``DataCollatorForVisionLanguageModeling`` with ``assistant_only_loss`` (the chat
template's ``{% generation %}`` markers mark every reply and its end-of-turn token), and
then every reply but the last in each row is masked out of the labels.

Every batch is padded to one fixed ``length`` (``pad_to_multiple_of=length``): on the
project's 2-core CPU, batches of varying length made steps take 2-12 s instead of 0.45-0.6 s.
With ``pad_to`` (SFT's ``--length-bucket``) a batch is padded to a multiple of it instead,
never beyond ``length``: a few shapes, and short rows stop paying for the longest.
"""

from __future__ import annotations

from typing import Any

import torch

IGNORE = -100


def last_reply_only(labels: torch.Tensor) -> torch.Tensor:
    """``labels`` with every labelled span but the last of each row set to ``IGNORE``."""
    labels = labels.clone()
    for row in labels:
        positions = torch.nonzero(row != IGNORE).flatten()
        if len(positions) == 0:
            continue
        gaps = torch.nonzero(positions[1:] - positions[:-1] > 1).flatten()
        if len(gaps):
            row[: positions[gaps[-1] + 1]] = IGNORE
    return labels


class LastReplyCollator:
    """Collates expert rows into fixed-length batches whose labels cover the last reply only."""

    def __init__(self, processor: Any, chat_template: str | None, length: int, pad_to: int | None = None) -> None:
        from trl.trainer.sft_trainer import DataCollatorForVisionLanguageModeling

        self.length = int(length)
        self.inner = DataCollatorForVisionLanguageModeling(
            processor=processor, max_length=self.length, pad_to_multiple_of=int(pad_to or length),
            assistant_only_loss=True, chat_template=chat_template,
        )

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        batch = self.inner(examples)
        batch["labels"] = last_reply_only(batch["labels"])
        return batch
