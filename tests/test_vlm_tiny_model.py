"""The offline tiny Qwen2.5-VL model: built by the CLI, loaded by the Auto classes, seeded."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from panoseek.agents.tiny_model import SPECIAL_TOKENS, build_tiny_model
from panoseek.agents.vlm import load_processor, load_vlm
from panoseek.cli import main


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny") / "model"
    assert main(["model", "init-tiny", "--out", str(out), "--size", "S", "--seed", "0"]) == 0
    return out


def test_folder_has_the_files_of_a_qwen25_vl_checkpoint(tiny_dir):
    names = {path.name for path in tiny_dir.iterdir()}
    assert {"config.json", "model.safetensors", "generation_config.json", "tokenizer.json",
            "tokenizer_config.json", "preprocessor_config.json", "chat_template.jinja"} <= names
    config = json.loads((tiny_dir / "config.json").read_text())
    assert config["model_type"] == "qwen2_5_vl"
    assert config["architectures"] == ["Qwen2_5_VLForConditionalGeneration"]
    assert json.loads((tiny_dir / "preprocessor_config.json").read_text())["image_processor_type"] == "Qwen2VLImageProcessor"


def test_loads_with_auto_classes_and_token_ids_agree(tiny_dir):
    from transformers import AutoModelForImageTextToText, AutoTokenizer

    model = AutoModelForImageTextToText.from_pretrained(tiny_dir, local_files_only=True)
    assert type(model).__name__ == "Qwen2_5_VLForConditionalGeneration"
    parameters = sum(p.numel() for p in model.parameters())
    assert 100_000 < parameters < 2_000_000  # size S
    tokenizer = AutoTokenizer.from_pretrained(tiny_dir, local_files_only=True)
    ids = {token: tokenizer.convert_tokens_to_ids(token) for token in SPECIAL_TOKENS}
    assert len(set(ids.values())) == len(SPECIAL_TOKENS)
    assert model.config.image_token_id == ids["<|image_pad|>"]
    assert model.config.video_token_id == ids["<|video_pad|>"]
    assert model.config.vision_start_token_id == ids["<|vision_start|>"]
    assert model.config.vision_end_token_id == ids["<|vision_end|>"]
    assert model.config.text_config.eos_token_id == ids["<|im_end|>"] == tokenizer.eos_token_id
    assert model.config.text_config.vocab_size == len(tokenizer)
    # Special tokens are single tokens inside text, as the chat template needs.
    encoded = tokenizer("<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>hi<|im_end|>").input_ids
    assert encoded[0] == ids["<|im_start|>"] and ids["<|image_pad|>"] in encoded


def test_processor_loads_the_same_way_for_any_qwen_folder(tiny_dir):
    processor = load_processor(tiny_dir)
    assert isinstance(processor, __import__("transformers").Qwen2_5_VLProcessor)
    assert processor.tokenizer.padding_side == "left"
    assert processor.image_processor.size["longest_edge"] == 28 * 28 * 16
    assert load_processor(tiny_dir, max_pixels=28 * 28 * 4).image_processor.size["longest_edge"] == 28 * 28 * 4


def test_autoprocessor_loads_when_torchvision_is_installed(tiny_dir):
    from transformers.utils import is_torchvision_available

    if not is_torchvision_available():
        pytest.skip("transformers builds Qwen2.5-VL's video processor only with torchvision")
    from transformers import AutoProcessor

    assert type(AutoProcessor.from_pretrained(tiny_dir, local_files_only=True)).__name__ == "Qwen2_5_VLProcessor"


@pytest.mark.parametrize("text", [
    "<think>The door is left.</think><answer>rotate(-45,0)</answer>",
    "<answer>submit(315,-20)</answer>",
    "your current direction (yaw,pitch) is (359,90)",
])
def test_tokenizer_round_trips_protocol_text(tiny_dir, text):
    processor = load_processor(tiny_dir)
    ids = processor.tokenizer(text).input_ids
    assert processor.tokenizer.decode(ids) == text
    assert len(ids) < len(text)  # trained merges, not one token per byte


def test_same_seed_same_files_other_seed_other_weights(tiny_dir, tmp_path):
    again = build_tiny_model(tmp_path / "again", size="S", seed=0)
    for path in tiny_dir.iterdir():
        assert (again / path.name).read_bytes() == path.read_bytes(), path.name
    other = load_file(build_tiny_model(tmp_path / "other", size="S", seed=1) / "model.safetensors")
    first = load_file(tiny_dir / "model.safetensors")
    assert any(not torch.equal(first[name], other[name]) for name in first)


def test_load_vlm_runs_the_model_in_the_requested_dtype(tiny_dir):
    model, _ = load_vlm(tiny_dir, dtype="bfloat16")
    assert next(model.parameters()).dtype == torch.bfloat16


def test_bad_options_are_named(tmp_path, capsys):
    with pytest.raises(ValueError, match="unknown tiny model size 'XL'"):
        build_tiny_model(tmp_path / "m", size="XL")
    (tmp_path / "file").write_text("x")
    assert main(["model", "init-tiny", "--out", str(tmp_path / "file")]) == 2
    assert "is not a folder" in capsys.readouterr().err
