"""Reading an expert-data folder back: checked rows, as a Hugging Face ``datasets.Dataset``.

:func:`read_rows` checks every row before training starts, so a damaged folder fails
with one message naming the row and what is wrong (a missing image, no assistant turn,
image entries that do not match the listed images) instead of a traceback mid-epoch.
:func:`load_sft_dataset` gives the ``messages`` + ``images`` dataset TRL's
``SFTTrainer`` takes, images decoded lazily from the PNG files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from panoseek.envs.eval.records import RecordsError, read_episodes
from panoseek.training.expert_data import DATA_FILE, EPISODES_FILE


class DatasetError(ValueError):
    """An expert-data folder or row that cannot be trained on; the message names it."""


def _image_entries(messages: list[dict[str, Any]]) -> int:
    return sum(1 for message in messages for part in message.get("content") or []
               if isinstance(part, dict) and part.get("type") == "image")


def check_row(folder: Path, row: dict[str, Any]) -> None:
    """Raise :class:`DatasetError` unless ``row`` is a trainable conversation with its images."""
    name = f"{folder}: row {row.get('id')!r}"
    messages, images = row.get("messages"), row.get("images")
    if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
        raise DatasetError(f"{name} has no messages")
    if not isinstance(images, list):
        raise DatasetError(f"{name} has no 'images' list")
    if messages[-1].get("role") != "assistant":
        raise DatasetError(f"{name} has no assistant turn to learn (its last message is from "
                           f"{messages[-1].get('role')!r})")
    if _image_entries(messages) != len(images):
        raise DatasetError(f"{name} has {_image_entries(messages)} image entries but lists {len(images)} images")
    for image in images:
        if not (folder / str(image)).is_file():
            raise DatasetError(f"{name}: image {str(image)!r} is missing")


def read_records(folder: str | Path) -> list[dict[str, Any]]:
    """The episode records of an expert-data folder (refused if it is not one)."""
    folder = Path(folder)
    if not (folder / DATA_FILE).is_file():
        raise DatasetError(f"--data {str(folder)!r} is not an expert-data folder (it has no {DATA_FILE}; "
                           "build one with `panoseek data experts`)")
    try:
        return read_episodes(folder / EPISODES_FILE)
    except RecordsError as error:
        raise DatasetError(str(error)) from None


def read_rows(folder: str | Path, records: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Every training row of an expert-data folder, checked (see :func:`check_row`); from
    ``records`` when the caller has read them already (:func:`read_records`)."""
    folder = Path(folder)
    records = read_records(folder) if records is None else records
    rows = [row for record in records for row in record.get("rows") or []]
    for row in rows:
        check_row(folder, row)
    if not rows:
        raise DatasetError(f"--data {str(folder)!r} holds no training rows (no successful expert episodes yet)")
    return rows


def target_points_of(folder: Path, records: list[dict[str, Any]]) -> dict[str, list]:
    """Each row's target points (:func:`panoseek.training.target_map.row_points`), from the
    folder's ``records`` and the suite it was built from (its name and fingerprint in
    ``data.json``)."""
    from panoseek.envs.eval.records import read_json
    from panoseek.scenes.suite import SuiteError, load_suite
    from panoseek.training.target_map import TargetMapError, row_points

    info = read_json(folder / DATA_FILE)
    try:
        return row_points(folder, records, load_suite(info.get("suite")), info)
    except (SuiteError, TargetMapError) as error:
        raise DatasetError(f"--target-loss needs the suite of {str(folder)!r}: {error}") from None


def load_sft_dataset(folder: str | Path, target_map: bool = False):
    """The rows of ``folder`` as a ``datasets.Dataset`` with ``messages`` and ``images`` columns
    (and ``target_points`` with ``target_map``: where the target is in each image)."""
    import datasets

    folder = Path(folder)
    episodes = read_records(folder)
    records = [{"id": row["id"], "messages": row["messages"], "images": [str(folder / p) for p in row["images"]]}
               for row in read_rows(folder, episodes)]
    if target_map:
        points = target_points_of(folder, episodes)
        for record in records:
            record["target_points"] = points[record["id"]]
    dataset = datasets.Dataset.from_list(records)
    return dataset.cast_column("images", datasets.List(datasets.Image()))
