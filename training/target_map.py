"""The target-map loss of SFT: every image token says whether the object searched for is there.

A model trained from scratch on expert replies alone learns the expert's usual moves, not
to look (docs/training.md, "What the recipe reached"): the reply is a few tokens a turn,
and most of them can be guessed without the views. The PPO policy had the same trouble
and took off once an auxiliary head was taught where the target is (docs/rl.md). This is
that idea for the VLM, with no new parameters. At each image token of an object-search
view the model's own output head gives a score: the logit of ``HERE`` minus the logit of
``ELSEWHERE``. Over one view, the scores of its tokens (its cells of the merged patch grid)
and a fixed score 0 for "not in this view" are a softmax, trained to pick the cell that
holds the centre of the target, or "not in view". The instruction comes before the views
in the chat, so an image token can know what is searched for; the next-token prediction
at image tokens is unused otherwise, so the replies' loss is untouched. The share of
views whose highest score is the right choice is the target-map accuracy (chance: one
cell of 33 for a 448x252 view at 32 tokens).

The labels are privileged (where the target is), which training may use; nothing of them
reaches inference. Path-search views carry none: the way to walk is not a thing in view.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from panoseek.envs.geometry import view_position
from panoseek.envs.judge import target_centre
from panoseek.envs.task import HOS, Task

HERE = "<|box_start|>"  # the token an image token predicts where the target's centre is
ELSEWHERE = "<|vision_pad|>"  # ... and everywhere else
NOT_IN_VIEW = (-1.0, -1.0)  # a view's point when the target is outside it
IGNORE = -100


class TargetMapError(ValueError):
    """Data the target map cannot be labelled from; the message names it."""


def target_token_ids(processor: Any) -> tuple[int, int, int]:
    """The ids of the image placeholder token, ``HERE`` and ``ELSEWHERE`` in the processor's
    tokenizer; a tokenizer without them is refused."""
    tokenizer = processor.tokenizer
    image_token = getattr(processor, "image_token", "<|image_pad|>")
    ids = []
    for token in (image_token, HERE, ELSEWHERE):
        token_id = tokenizer.convert_tokens_to_ids(token)
        if token_id is None or token_id == tokenizer.unk_token_id:
            raise TargetMapError(f"the tokenizer has no {token!r} token: --target-loss needs Qwen2.5-VL's "
                                 f"special tokens ({image_token!r}, {HERE!r}, {ELSEWHERE!r})")
        ids.append(int(token_id))
    return ids[0], ids[1], ids[2]


def view_points(task: Task, headings: Sequence[Sequence[float]], fov_deg: float,
                view_size: Sequence[int]) -> list[tuple[float, float]] | None:
    """Where the target's centre appears in the view at each heading, as fractions of the
    view's width and height (``NOT_IN_VIEW`` outside it); None for a path-search task."""
    if task.kind != HOS:
        return None
    width, height = (int(v) for v in view_size)
    yaw, pitch = target_centre(task)
    points = []
    for view_yaw, view_pitch in headings:
        position = view_position(yaw, pitch, float(view_yaw), float(view_pitch), fov_deg, width, height)
        points.append(NOT_IN_VIEW if position is None else ((position[0] + 0.5) / width, (position[1] + 0.5) / height))
    return points


def row_points(folder: Path, records: Sequence[dict[str, Any]], suite: Any, data_info: dict[str, Any]) -> dict[str, list]:
    """Each training row's points, one per image (an empty list for a path-search row), keyed
    by row id, from the records' headings and the suite's tasks."""
    if suite.fingerprint != data_info.get("fingerprint"):
        raise TargetMapError(f"--data {str(folder)!r} was built from {data_info.get('suite')!r} with fingerprint "
                             f"{data_info.get('fingerprint')!r}, but that suite now has {suite.fingerprint!r}: "
                             "its tasks changed, so the target positions cannot be labelled")
    wanted = {record["task_id"] for record in records if record.get("rows")}
    tasks: dict[str, Task] = {}
    for task in suite:  # a lazy suite in build order: stop at the last task used
        if task.id in wanted:
            tasks[task.id] = task
            if len(tasks) == len(wanted):
                break
    points: dict[str, list] = {}
    for record in records:
        if not record.get("rows"):
            continue
        task = tasks.get(record["task_id"])
        if task is None:
            raise TargetMapError(f"--data {str(folder)!r}: task {record['task_id']!r} is not in {suite.name!r}")
        per_turn = view_points(task, record["headings"], float(data_info["fov_deg"]), data_info["view_size"])
        for row in record["rows"]:
            # a row's images are the views of turns images/<episode>/<turn>.png
            points[row["id"]] = [] if per_turn is None else [list(per_turn[int(Path(p).stem)]) for p in row["images"]]
    return points


def target_labels(input_ids: Any, image_grid_thw: Any, points: Sequence[Sequence[Sequence[float]]],
                  image_token_id: int, here_id: int, elsewhere_id: int, merge: int = 2) -> tuple[Any, Any]:
    """``(labels, views)`` at the image tokens of a batch: ``here_id`` at the cell holding a
    view's target point, ``elsewhere_id`` at its other cells, and the number of the view in
    the batch; ``IGNORE`` and -1 everywhere else and in rows without points. The images of
    the batch are in row order in ``image_grid_thw``, each a run of ``t*h*w/merge**2`` image
    tokens laid out row-major over its merged grid."""
    import torch

    labels = torch.full_like(input_ids, IGNORE)
    views = torch.full_like(input_ids, -1)
    grids = [tuple(int(v) for v in grid) for grid in image_grid_thw]
    image = 0
    for row, points_of_row in enumerate(points):
        positions = torch.nonzero(input_ids[row] == image_token_id).flatten()
        images_of_row, start = [], 0
        while start < len(positions) and image < len(grids):
            t, h, w = grids[image]
            size = t * h * w // merge**2
            images_of_row.append((image, positions[start: start + size], h // merge, w // merge))
            start, image = start + size, image + 1
        if start != len(positions):
            raise TargetMapError(f"batch row {row}: its image tokens do not match image_grid_thw")
        if not points_of_row:
            continue
        if len(points_of_row) != len(images_of_row):
            raise TargetMapError(f"batch row {row} has {len(images_of_row)} images but {len(points_of_row)} target points")
        for (number, cells, grid_h, grid_w), (x, y) in zip(images_of_row, points_of_row):
            labels[row, cells] = elsewhere_id
            views[row, cells] = number
            if (x, y) != NOT_IN_VIEW:
                cell = min(int(y * grid_h), grid_h - 1) * grid_w + min(int(x * grid_w), grid_w - 1)
                labels[row, cells[cell]] = here_id
    if image != len(grids):
        raise TargetMapError(f"the batch's input ids hold {image} images but image_grid_thw lists {len(grids)}")
    return labels, views


@contextmanager
def decoder_hidden_states(model: Any) -> Iterator[list]:
    """A list that gets the decoder's last hidden states (the output head's input) of each
    forward pass run inside the block, caught by a forward hook: TRL's fused output head
    returns log-probabilities, not logits, and nothing else hands them out."""
    caught: list = []
    hook = model.get_decoder().register_forward_hook(lambda module, args, output: caught.append(output[0]))
    try:
        yield caught
    finally:
        hook.remove()


def cell_scores(hidden: Any, output_weight: Any, here_id: int, elsewhere_id: int) -> Any:
    """Each token's score: its logit of ``HERE`` minus its logit of ``ELSEWHERE``, from the
    decoder's last hidden states and the output head's weight (no bias, as in Qwen2.5-VL)."""
    return hidden @ (output_weight[here_id] - output_weight[elsewhere_id]).to(hidden.dtype)


def view_choices(scores: Any, labels: Any, views: Any, here_id: int) -> list[tuple[Any, int]]:
    """Each labelled view's choices (its cells' scores, then 0 for "not in this view") and the
    index of the right one (the target's cell, or the last)."""
    import torch

    mask = views >= 0
    numbers, is_here, scores = views[mask], labels[mask] == here_id, scores[mask].float()
    out = []
    for number in torch.unique(numbers):
        of_view = numbers == number
        choices = torch.cat([scores[of_view], scores.new_zeros(1)])
        here = torch.nonzero(is_here[of_view]).flatten()
        out.append((choices, int(here[0]) if len(here) else len(choices) - 1))
    return out


def target_map_loss(scores: Any, labels: Any, views: Any, here_id: int) -> tuple[Any, float]:
    """``(loss, accuracy)``: the mean over labelled views of the cross-entropy of the cell
    softmax (see the module docstring; a token scores its own cell), and the share of those
    views whose best choice is right. Loss 0 (accuracy nan) with no labelled view."""
    import torch

    views_ = view_choices(scores, labels, views, here_id)
    if not views_:
        return scores.sum() * 0.0, float("nan")
    losses = [torch.nn.functional.cross_entropy(choices[None], torch.tensor([answer], device=choices.device))
              for choices, answer in views_]
    hits = sum(int(torch.argmax(choices.detach())) == answer for choices, answer in views_)
    return torch.stack(losses).mean(), hits / len(views_)
