"""Hostile input to the model-folder commands: ``panoseek model init-tiny`` and loading.

A tiny model is built once per module through the project's own ``init-tiny`` command;
each test damages a copy of it. Each table row is one damage and a fragment of the one
clear error it must raise; add rows as new hostile inputs turn up.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from panoseek.agents.vlm import VLMError, load_processor, load_vlm
from panoseek.cli import main


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("tiny") / "model"
    assert main(["model", "init-tiny", "--out", str(out), "--size", "S"]) == 0
    return out


def _truncate(name: str, fraction: float = 0.6):
    def damage(folder: Path) -> None:
        data = (folder / name).read_bytes()
        (folder / name).write_bytes(data[: int(len(data) * fraction)])
    return damage


def _remove(*names: str):
    def damage(folder: Path) -> None:
        for name in names:
            (folder / name).unlink()
    return damage


def _shard_index(text: str):
    """Replace the single weights file by a shard index (``text``) naming shards that are not there."""
    def damage(folder: Path) -> None:
        (folder / "model.safetensors").unlink()
        (folder / "model.safetensors.index.json").write_text(text)
    return damage


INDEX = json.dumps({"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}})


@pytest.mark.parametrize(
    "damage, message, processor_too",
    [
        (_truncate("model.safetensors"), "weights file model.safetensors is missing, truncated or corrupt", False),
        (_truncate("model.safetensors", 0.001), "weights file model.safetensors is missing, truncated or corrupt", False),
        (_shard_index(INDEX), "weights file model-00001-of-00002.safetensors is missing", False),
        (_shard_index("{not json"), "model.safetensors.index.json is not a readable shard index", False),
        (_remove("tokenizer.json", "tokenizer_config.json"), "has no tokenizer files (one of tokenizer.json", True),
        (_remove("tokenizer.json"), "has no tokenizer files", True),
        (_remove("preprocessor_config.json"), "has no image processor files (preprocessor_config.json)", True),
        (_remove("config.json"), "is not a model folder: it has no config.json", True),
        (_truncate("preprocessor_config.json"), "cannot load a processor from", True),
    ],
)
def test_damaged_model_folders_name_the_folder_and_what_is_wrong(
    tiny_dir: Path, tmp_path: Path, damage, message: str, processor_too: bool
) -> None:
    folder = tmp_path / "damaged"
    shutil.copytree(tiny_dir, folder)
    damage(folder)
    with pytest.raises(VLMError, match=repr(str(folder))) as error:
        load_vlm(folder)
    assert message in str(error.value)
    if processor_too:
        with pytest.raises(VLMError, match=repr(str(folder))) as error:
            load_processor(folder)
        assert message in str(error.value)


def test_init_tiny_refuses_a_non_empty_folder(tmp_path: Path, capsys) -> None:
    (tmp_path / "config.json").write_text("mine")
    assert main(["model", "init-tiny", "--out", str(tmp_path), "--size", "S"]) == 2
    assert "is not empty; give a new or empty folder, or --force" in capsys.readouterr().err
    assert [path.name for path in tmp_path.iterdir()] == ["config.json"]
    assert (tmp_path / "config.json").read_text() == "mine"


def test_init_tiny_force_overwrites_its_own_files_and_deletes_nothing(tiny_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "model"
    out.mkdir()
    others = {"model-00001-of-00002.safetensors": b"their shard", "model.safetensors.index.json": b"{}",
              "notes.txt": b"keep me"}
    for name, data in others.items():
        (out / name).write_bytes(data)
    (out / "config.json").write_text("{}")
    assert main(["model", "init-tiny", "--out", str(out), "--size", "S", "--force"]) == 0
    for name, data in others.items():
        assert (out / name).read_bytes() == data, name
    for path in tiny_dir.iterdir():
        assert (out / path.name).read_bytes() == path.read_bytes(), path.name
    assert {path.name for path in out.iterdir()} == {path.name for path in tiny_dir.iterdir()} | set(others)
    model, processor = load_vlm(out)  # model.safetensors is loaded, not the stale index
    assert type(model).__name__ == "Qwen2_5_VLForConditionalGeneration" and processor.tokenizer is not None
