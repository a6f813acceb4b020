"""Does a model see the target? The target map (training/target_map.py) of a model trained
with ``panoseek train sft --target-loss``, read on the object-search views of an expert-data
folder: how often its best cell is the target's cell when the target is in view, and how
often it says "not in view" when it is not, against what guessing gets::

    python benchmarks/target_map_probe.py MODEL_DIR DATA_DIR [--rows 400] [--turns first] [--picture map.png]

``--turns first`` reads only the rows of an episode's first turn (one view, no earlier
replies), where the map can only come from the pixels and the instruction; on later
turns the conversation so far (the expert's turns toward the target) is in the context
too, and a map can be right from that alone.

``--picture`` draws the first views with the target in view: each cell shaded red by the
model's probability that the target is there (relative to the view's most likely cell),
the target's cell outlined in green, and the probability of "not in view" in the corner.

A model trained without the loss has no meaningful map (its scores are untrained).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
import torch
from PIL import Image

from panoseek.envs.eval.records import read_json
from panoseek.training.collator import LastReplyCollator
from panoseek.training.dataset import load_sft_dataset
from panoseek.training.expert_data import DATA_FILE
from panoseek.training.sft import load_model, row_lengths
from panoseek.training.target_map import cell_scores, decoder_hidden_states, target_token_ids, view_choices


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="model folder")
    parser.add_argument("data", type=Path, help="expert-data folder (e.g. the recipe's data-val)")
    parser.add_argument("--rows", type=int, default=400, help="object-search rows read (default 400)")
    parser.add_argument("--turns", choices=("all", "first", "later"), default="all",
                        help="rows of first turns only (one view, no earlier replies), later turns only, or all")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--picture", type=Path, default=None, help="PNG of the map on the first 12 in-view views")
    args = parser.parse_args()
    model, processor = load_model(args.model)
    model.eval()
    dataset = load_sft_dataset(args.data, target_map=True)
    first = [sum(m["role"] == "assistant" for m in messages) == 1 for messages in dataset["messages"]]
    wanted = {"all": lambda i: True, "first": lambda i: first[i], "later": lambda i: not first[i]}[args.turns]
    chosen = [index for index, points in enumerate(dataset["target_points"]) if points and wanted(index)][: args.rows]
    if not chosen:
        parser.error(f"{args.data} has no object-search rows of {args.turns} turns")
    rows = [dict(dataset[index]) for index in chosen]
    view_size = read_json(args.data / DATA_FILE).get("view_size", (448, 252))
    length = max(row_lengths(processor, None, [row["messages"] for row in rows], view_size))
    collate = LastReplyCollator(processor, None, length, target_map=True)
    _, here_id, elsewhere_id = target_token_ids(processor)
    seen = hit = near = said_seen = unseen = said_unseen = cells = 0
    drawn: list[np.ndarray] = []
    for start in range(0, len(rows), args.batch_size):
        batch = collate(rows[start: start + args.batch_size])
        grid_w = int(batch["image_grid_thw"][0, 2]) // collate.merge  # one view size per data folder
        cells = int(batch["image_grid_thw"][0].prod()) // collate.merge**2
        inputs = {k: v for k, v in batch.items() if k not in ("labels", "target_labels", "target_views")}
        with torch.no_grad(), decoder_hidden_states(model) as hidden:
            model(**inputs)
            scores = cell_scores(hidden[0], model.get_output_embeddings().weight, here_id, elsewhere_id)
        images = [image for row in rows[start: start + args.batch_size] for image in row["images"]]
        for number, (choices, answer) in enumerate(
                view_choices(scores, batch["target_labels"], batch["target_views"], here_id)):
            best, none = int(torch.argmax(choices)), len(choices) - 1
            if answer != none and len(drawn) < 12:
                drawn.append(_draw(images[number], torch.softmax(choices, 0), answer, grid_w))
            if answer == none:
                unseen += 1
                said_unseen += best == none
                continue
            seen += 1
            hit += best == answer
            said_seen += best != none
            near += best != none and max(abs(best // grid_w - answer // grid_w), abs(best % grid_w - answer % grid_w)) <= 1
    print(f"model {args.model}, data {args.data}: {seen + unseen} object-search views of {len(rows)} rows "
          f"({args.turns} turns)")
    print(f"target in view ({seen} views): says in view {100 * said_seen / max(seen, 1):.1f}%, best cell is the "
          f"target's {100 * hit / max(seen, 1):.1f}% (chance 1 of {cells + 1} choices: {100 / (cells + 1):.1f}%), within one cell "
          f"{100 * near / max(seen, 1):.1f}%")
    print(f"target not in view ({unseen} views): says not in view {100 * said_unseen / max(unseen, 1):.1f}%")
    if args.picture is not None and drawn:
        drawn += [np.zeros_like(drawn[0])] * (-len(drawn) % 4)
        sheet = np.concatenate([np.concatenate(drawn[i: i + 4], axis=1) for i in range(0, len(drawn), 4)], axis=0)
        Image.fromarray(sheet).save(args.picture)
        print(f"picture: {args.picture}")


def _draw(image: Image.Image, probabilities: torch.Tensor, answer: int, grid_w: int) -> np.ndarray:
    """One view with its cells shaded red by relative probability, the target's cell outlined green."""
    view = np.asarray(image.convert("RGB").resize((336, 189))).astype(np.float32)
    cells = probabilities[:-1].numpy()
    cells = cells / max(float(cells.max()), 1e-12)
    grid_h = len(cells) // grid_w
    height, width = view.shape[:2]
    for cell, p in enumerate(cells):
        row, col = divmod(cell, grid_w)
        y0, y1 = row * height // grid_h, (row + 1) * height // grid_h
        x0, x1 = col * width // grid_w, (col + 1) * width // grid_w
        view[y0:y1, x0:x1] = (1 - 0.7 * p) * view[y0:y1, x0:x1] + 0.7 * p * np.array([255.0, 0.0, 0.0])
    view = view.astype(np.uint8)
    row, col = divmod(answer, grid_w)
    cv2.rectangle(view, (col * width // grid_w, row * height // grid_h),
                  ((col + 1) * width // grid_w - 1, (row + 1) * height // grid_h - 1), (0, 255, 0), 2)
    cv2.putText(view, f"not in view {float(probabilities[-1]):.2f}", (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                (255, 255, 255), 1, cv2.LINE_AA)
    return view


if __name__ == "__main__":
    main()
