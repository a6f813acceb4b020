"""The SFT batch: TRL's vision collator with the loss on each row's last reply only.

Each row of the expert data is one decision: the chat as the agent sees it at one turn,
ending with the expert's reply to it (:mod:`panoseek.training.expert_data`). Earlier
replies in the chat are context: the loss on them would teach a reply from a context it
was not given (its view may have left the history window since). So the batch is TRL's
``DataCollatorForVisionLanguageModeling`` with ``assistant_only_loss`` (the chat
template's ``{% generation %}`` markers mark every reply and its end-of-turn token), and
then every reply but the last in each row is masked out of the labels. With
``target_map`` (SFT's ``--target-loss``) each batch also holds the target-map labels of
its image tokens (:mod:`panoseek.training.target_map`), from each row's ``target_points``.

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

    def __init__(self, processor: Any, chat_template: str | None, length: int, pad_to: int | None = None,
                 target_map: bool = False) -> None:
        from trl.trainer.sft_trainer import DataCollatorForVisionLanguageModeling

        from panoseek.training.target_map import target_token_ids

        self.length = int(length)
        self.target_map = target_map
        if target_map:
            self.image_token_id, self.here_id, self.elsewhere_id = target_token_ids(processor)
            self.merge = int(getattr(processor.image_processor, "merge_size", 2))
        self.inner = DataCollatorForVisionLanguageModeling(
            processor=processor, max_length=self.length, pad_to_multiple_of=int(pad_to or length),
            assistant_only_loss=True, chat_template=chat_template,
        )

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        points = [example.get("target_points") or [] for example in examples]
        batch = self.inner([{key: value for key, value in example.items() if key != "target_points"}
                            for example in examples])
        batch["labels"] = last_reply_only(batch["labels"])
        if self.target_map:
            from panoseek.training.target_map import target_labels

            batch["target_labels"], batch["target_views"] = target_labels(
                batch["input_ids"], batch["image_grid_thw"], points, self.image_token_id, self.here_id,
                self.elsewhere_id, self.merge)
        return batch
