"""The codebook selective filter in the VLM: exact identity at a zero gate, probabilities, task
conditioning, save/load through load_vlm, SFT with --codebook, and bad filter files."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from panoseek.agents.visual_filter import (
    FILTER_CONFIG, FILTER_WEIGHTS, FilterConfig, VisualFilter, VisualFilterError, attach_visual_filter,
    save_visual_filter, visual_filter_of,
)
from panoseek.agents.vlm import VLMError, load_vlm

VIEW = (112, 63)


def _inputs(processor, instructions):
    """A left-padded batch, one instruction then one view per row (rows of different lengths), as
    panoseek's chats open."""
    rng = np.random.default_rng(0)
    views = [Image.fromarray(rng.integers(0, 255, (VIEW[1], VIEW[0], 3), dtype=np.uint8)) for _ in instructions]
    texts = [
        processor.apply_chat_template([{"role": "user", "content": [{"type": "text", "text": text}, {"type": "image"}]}],
                                      tokenize=False, add_generation_prompt=True)
        for text in instructions
    ]
    return processor(text=texts, images=views, return_tensors="pt", padding=True)


INSTRUCTIONS = ["Find the red clock.", "Go to gate 12, past the benches on the left."]


def _logits(model, inputs):
    with torch.no_grad():
        return model(**inputs).logits


def _open_gate(model, value=0.7):
    with torch.no_grad():
        visual_filter_of(model).gate.fill_(value)


def test_a_zero_gate_leaves_the_logits_exactly_unchanged(tiny_model_dir):
    model, processor = load_vlm(tiny_model_dir, dtype="float32")
    inputs = _inputs(processor, INSTRUCTIONS)
    before = _logits(model, inputs)
    attach_visual_filter(model)
    assert torch.equal(_logits(model, inputs), before)
    _open_gate(model)
    opened = _logits(model, inputs)
    assert not torch.allclose(opened, before)
    # generate goes through the filter too (transformers runs the vision tower before the first forward)
    with torch.no_grad():
        scores = model.generate(**inputs, max_new_tokens=1, do_sample=False, output_scores=True,
                                return_dict_in_generate=True).scores[0]
    torch.testing.assert_close(scores, opened[:, -1], rtol=1e-5, atol=1e-5)


def test_the_task_condition_never_sees_what_follows_the_first_view(tiny_model_dir):
    """A training row holds the reply after the view: the filtered image tokens (and all logits
    before the reply) must not depend on it."""
    model, processor = load_vlm(tiny_model_dir, dtype="float32")
    attach_visual_filter(model)
    _open_gate(model, 1.0)
    prompt = _inputs(processor, INSTRUCTIONS[:1])
    width = prompt["input_ids"].shape[1]
    logits = {}
    for reply in ("<answer>rotate(90,0)</answer>", "<answer>submit(12,-3)</answer>"):
        extra = processor.tokenizer(reply, add_special_tokens=False, return_tensors="pt")["input_ids"]
        inputs = dict(prompt)
        inputs["input_ids"] = torch.cat([prompt["input_ids"], extra], dim=1)
        inputs["attention_mask"] = torch.ones_like(inputs["input_ids"])
        if "mm_token_type_ids" in prompt:
            inputs["mm_token_type_ids"] = torch.cat([prompt["mm_token_type_ids"], torch.zeros_like(extra)], dim=1)
        logits[reply] = _logits(model, inputs)[:, :width]
    first, second = logits.values()
    assert torch.equal(first, second)


def test_code_probabilities_sum_to_one_and_depend_on_the_task():
    visual_filter = VisualFilter(FilterConfig(hidden=32)).eval()
    assert visual_filter.codebook.codes.shape == (256, 10) and visual_filter.codebook.dropout.p == 0.1
    tokens, task = torch.randn(7, 32), torch.randn(7, 32)
    probabilities = visual_filter.codebook.probabilities(tokens, task)
    assert probabilities.shape == (7, 256) and torch.allclose(probabilities.sum(-1), torch.ones(7))
    assert torch.equal(visual_filter(tokens, task), tokens)  # zero gate
    with torch.no_grad():
        visual_filter.gate.fill_(1.0)
    assert not torch.allclose(visual_filter(tokens, task), visual_filter(tokens, torch.randn(7, 32)))
    with pytest.raises(ValueError, match="takes a condition of 32 features"):
        visual_filter.codebook.probabilities(tokens)


def test_save_and_load_vlm_round_trip_gives_identical_logits(tiny_model_dir, tmp_path):
    from transformers import AutoModelForImageTextToText

    model, processor = load_vlm(tiny_model_dir, dtype="float32")
    inputs = _inputs(processor, INSTRUCTIONS)
    base = _logits(model, inputs)
    attach_visual_filter(model, seed=3)
    _open_gate(model)
    filtered = _logits(model, inputs)
    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    model.save_pretrained(folder)
    save_visual_filter(model, folder)
    with safe_open(str(folder / "model.safetensors"), "pt") as weights:
        assert not [key for key in weights.keys() if "visual_filter" in key]  # kept out of the model's weights
    loaded, _ = load_vlm(folder, dtype="float32")
    assert visual_filter_of(loaded) is not None and not loaded.training
    assert torch.equal(_logits(loaded, inputs), filtered)
    plain = AutoModelForImageTextToText.from_pretrained(folder, dtype="float32").eval()
    assert torch.equal(_logits(plain, inputs), base)  # from_pretrained alone does not see the filter


def test_a_filter_file_that_does_not_fit_the_model_is_one_clear_error(tiny_model_dir, tmp_path):
    model, _ = load_vlm(tiny_model_dir, dtype="float32")
    attach_visual_filter(model)
    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    save_visual_filter(model, folder)
    config = json.loads((folder / FILTER_CONFIG).read_text())
    hidden = config["hidden"]
    (folder / FILTER_CONFIG).write_text(json.dumps({**config, "hidden": hidden * 2}))
    message = f"visual_filter.json: field 'hidden' is {hidden * 2} but the model's visual tokens are {hidden}"
    with pytest.raises(VLMError, match=message):
        load_vlm(folder)
    (folder / FILTER_CONFIG).write_text(json.dumps(config))
    weights = load_file(folder / FILTER_WEIGHTS)
    weights["gate"] = torch.zeros(hidden + 1)
    save_file(weights, str(folder / FILTER_WEIGHTS))
    with pytest.raises(VLMError, match=f"visual_filter.safetensors: tensors do not match .*gate: \\({hidden + 1},\\)"):
        load_vlm(folder)
    with pytest.raises(VisualFilterError, match="already has a visual filter"):
        attach_visual_filter(model)
    with pytest.raises(VisualFilterError, match="attaches to Qwen2.5-VL-family models"):
        attach_visual_filter(torch.nn.Linear(2, 2))


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    from panoseek.scenes import load_suite
    from panoseek.training.expert_data import build_expert_data

    out = tmp_path_factory.mktemp("filter-sft") / "data"
    build_expert_data(load_suite("synth:val"), out, limit=2, view_size=VIEW, progress=False)
    return out


def _filter_weights(model):
    return {name: tensor.clone() for name, tensor in visual_filter_of(model).state_dict().items()}


@pytest.mark.parametrize("only", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_two_sft_steps_with_codebook_train_the_filter_and_save_it_in_final(tiny_model_dir, data_dir, tmp_path, only):
    from panoseek.cli import main

    run = tmp_path / "run"
    command = ["train", "sft", "--model", str(tiny_model_dir), "--data", str(data_dir), "--out", str(run),
               "--max-steps", "2", "--save-steps", "2", "--batch-size", "1", "--lr", "1e-3", "--no-progress",
               "--codebook-only" if only else "--codebook"]
    assert main(command) == 0
    trained, _ = load_vlm(run / "final", dtype="float32")
    base, _ = load_vlm(tiny_model_dir, dtype="float32")
    attach_visual_filter(base, seed=0)  # the filter the run started from (created from the run seed)
    initial = _filter_weights(base)
    after = _filter_weights(trained)
    assert after.keys() == initial.keys()
    assert all(not torch.equal(after[name], initial[name]) for name in ("gate", "codebook.indexer.1.weight"))
    assert (run / "checkpoint-2" / FILTER_WEIGHTS).is_file()
    model_weights = [(name, parameter) for name, parameter in trained.named_parameters() if "visual_filter" not in name]
    base_weights = dict(base.named_parameters())
    unchanged = all(torch.equal(parameter, base_weights[name]) for name, parameter in model_weights)
    assert unchanged is only  # --codebook-only freezes the model; --codebook trains both
    assert json.loads((run / "sft_run.json").read_text())["codebook_only"] is only


@pytest.mark.slow
def test_a_resumed_codebook_run_matches_the_uninterrupted_run(tiny_model_dir, data_dir, tmp_path):
    from transformers import TrainerCallback

    from panoseek.training.sft import SFTOptions, train_sft

    class StopAt(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            control.should_training_stop = state.global_step == 2

    options = SFTOptions(max_steps=4, save_steps=2, lr=1e-3, batch_size=1, codebook=True)
    train_sft(tiny_model_dir, data_dir, tmp_path / "whole", options, progress=False)
    assert not train_sft(tiny_model_dir, data_dir, tmp_path / "cut", options, progress=False,
                         callbacks=[StopAt()])["finished"]
    assert train_sft(tiny_model_dir, data_dir, tmp_path / "cut", options, progress=False)["finished"]
    whole, cut = load_file(tmp_path / "whole/final" / FILTER_WEIGHTS), load_file(tmp_path / "cut/final" / FILTER_WEIGHTS)
    assert whole.keys() == cut.keys() and all(torch.allclose(whole[k], cut[k], atol=1e-5) for k in whole)


def test_dpo_and_grpo_refuse_a_model_with_a_filter_they_would_drop(tiny_model_dir, tmp_path):
    from panoseek.training import grpo, sft

    model, _ = load_vlm(tiny_model_dir, dtype="float32")
    attach_visual_filter(model, seed=3)
    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    save_visual_filter(model, folder)
    loaded, _ = sft.load_model(folder)  # SFT trains and saves the filter
    assert visual_filter_of(loaded) is not None
    with pytest.raises(sft.SFTError, match="has a codebook filter .*DPO does not save"):
        sft.load_model(folder, trainer="DPO")
    with pytest.raises(grpo.GRPOError, match="has a codebook filter .*GRPO does not save"):
        grpo.load_model(folder)
