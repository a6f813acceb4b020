"""SFT with TRL on expert rows: exactly the last reply carries loss, a few steps lower the
loss on held-in rows, a resumed run matches an uninterrupted one, and bad input (model
without a chat template or without generation markers, damaged rows, an output folder
of another run) is one clear error each."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file
from transformers import TrainerCallback

from panoseek.training.collator import IGNORE, LastReplyCollator
from panoseek.training.dataset import DatasetError, load_sft_dataset
from panoseek.training.expert_data import EPISODES_FILE, build_expert_data
from panoseek.training.sft import RUN_FILE, SFTError, SFTOptions, load_model, row_lengths, train_sft

VIEW = (112, 63)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    from panoseek.scenes import load_suite

    out = tmp_path_factory.mktemp("sft") / "data"
    build_expert_data(load_suite("synth:val"), out, limit=3, view_size=VIEW, progress=False)
    return out


def _batch(model_dir, data_dir, indices, last_only=True):
    _, processor = load_model(model_dir)
    dataset = load_sft_dataset(data_dir)
    rows = [dataset[i] for i in indices]
    length = max(row_lengths(processor, None, [row["messages"] for row in rows], VIEW))
    collator = LastReplyCollator(processor, None, length + 5)
    batch = (collator if last_only else collator.inner)([dict(row) for row in rows])
    return processor, rows, batch, length + 5


def test_exactly_the_last_reply_carries_loss(tiny_model_dir, data_dir):
    processor, rows, batch, length = _batch(tiny_model_dir, data_dir, [1, 2])
    tokenizer = processor.tokenizer
    assert batch["input_ids"].shape == (2, length)  # fixed length
    for row, ids, labels in zip(rows, batch["input_ids"], batch["labels"]):
        reply = row["messages"][-1]["content"][0]["text"]
        expected = tokenizer(reply + "<|im_end|>", add_special_tokens=False)["input_ids"]
        kept = torch.nonzero(labels != IGNORE).flatten()
        assert labels[kept].tolist() == expected == ids[kept].tolist()
        assert kept.tolist() == list(range(int(kept[0]), int(kept[0]) + len(expected)))  # one contiguous span
        assert tokenizer.decode(ids[: int(kept[0])]).endswith("<|im_start|>assistant\n")
    # TRL's assistant mask (from the template's generation markers) covers every reply; we keep the last.
    dataset = load_sft_dataset(data_dir)
    later = [i for i in range(len(dataset)) if sum(m["role"] == "assistant" for m in dataset[i]["messages"]) >= 2]
    _, rows, everything, _ = _batch(tiny_model_dir, data_dir, later[:2], last_only=False)
    for row, labels in zip(rows, everything["labels"]):
        replies = [m["content"][0]["text"] for m in row["messages"] if m["role"] == "assistant"]
        total = sum(len(processor.tokenizer(r + "<|im_end|>", add_special_tokens=False)["input_ids"]) for r in replies)
        assert int((labels != IGNORE).sum()) == total


def _held_in_loss(model_dir, data_dir):
    from transformers import AutoModelForImageTextToText

    _, _, batch, _ = _batch(model_dir, data_dir, [0, 1, 2, 3])
    model = AutoModelForImageTextToText.from_pretrained(model_dir, dtype="float32").eval()
    with torch.no_grad():
        return float(model(**batch).loss)


@pytest.mark.slow
def test_a_few_steps_lower_the_loss_on_held_in_rows(tiny_model_dir, data_dir, tmp_path):
    summary = train_sft(tiny_model_dir, data_dir, tmp_path / "run", SFTOptions(max_steps=8, save_steps=8, lr=3e-3,
                        batch_size=2), eval_dir=data_dir, progress=False)
    assert summary["finished"]
    before, after = _held_in_loss(tiny_model_dir, data_dir), _held_in_loss(tmp_path / "run" / "final", data_dir)
    assert after < before - 0.1
    assert (tmp_path / "run" / "loss.png").stat().st_size > 0 and summary["eval_loss"]
    from panoseek.agents.vlm import load_vlm

    load_vlm(tmp_path / "run" / "final")  # the trained folder loads as an agent's model


class StopAt(TrainerCallback):
    """Stops training after a step, as Ctrl-C or kill -9 would (the checkpoint there is saved)."""

    def __init__(self, step):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            control.should_training_stop = True


@pytest.mark.slow
def test_a_resumed_run_matches_the_uninterrupted_run(tiny_model_dir, data_dir, tmp_path):
    options = SFTOptions(max_steps=4, save_steps=2, lr=3e-3, batch_size=1)
    whole = train_sft(tiny_model_dir, data_dir, tmp_path / "whole", options, progress=False)
    first = train_sft(tiny_model_dir, data_dir, tmp_path / "cut", options, progress=False, callbacks=[StopAt(2)])
    assert not first["finished"] and first["step"] == 2 and not (tmp_path / "cut" / "final").exists()
    resumed = train_sft(tiny_model_dir, data_dir, tmp_path / "cut", options, progress=False)
    assert resumed["finished"] and resumed["step"] == 4
    assert resumed["last_loss"] == pytest.approx(whole["last_loss"], rel=1e-4)
    a, b = load_file(tmp_path / "whole/final/model.safetensors"), load_file(tmp_path / "cut/final/model.safetensors")
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)


def test_an_output_folder_of_another_run_is_refused_untouched(tiny_model_dir, data_dir, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / RUN_FILE).write_text(json.dumps({"model": "/elsewhere", "lr": 1.0}))
    (out / "checkpoint-7").mkdir()
    before = sorted(p.name for p in out.iterdir())
    with pytest.raises(SFTError, match="holds another training run"):
        train_sft(tiny_model_dir, data_dir, out, SFTOptions(max_steps=1), progress=False)
    assert sorted(p.name for p in out.iterdir()) == before
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(SFTError, match="holds no panoseek SFT run"):
        train_sft(tiny_model_dir, data_dir, tmp_path / "busy", SFTOptions(max_steps=1), progress=False)


def test_a_model_folder_without_a_chat_template_is_refused(tiny_model_dir, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    (model / "chat_template.jinja").unlink()
    with pytest.raises(SFTError, match="has no chat template"):
        load_model(model)


def test_a_chat_template_without_generation_markers_is_refused(tiny_model_dir, data_dir, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    template = (model / "chat_template.jinja").read_text()
    (model / "chat_template.jinja").write_text(template.replace("{% generation %}", "").replace("{% endgeneration %}", ""))
    with pytest.raises(SFTError, match="no {% generation %}"):
        train_sft(model, data_dir, tmp_path / "run", SFTOptions(max_steps=1), progress=False)


def test_damaged_rows_fail_before_training(tiny_model_dir, data_dir, tmp_path):
    damaged = tmp_path / "data"
    shutil.copytree(data_dir, damaged)
    records = [json.loads(line) for line in (damaged / EPISODES_FILE).read_text().splitlines()]
    records[0]["rows"][0]["messages"] = records[0]["rows"][0]["messages"][:1]
    (damaged / EPISODES_FILE).write_text("".join(json.dumps(record) + "\n" for record in records))
    with pytest.raises(DatasetError, match="has no assistant turn"):
        train_sft(tiny_model_dir, damaged, tmp_path / "run", SFTOptions(max_steps=1), progress=False)
    assert not (tmp_path / "run").exists()


def test_the_cli_reports_bad_input_in_one_line(tiny_model_dir, tmp_path, capsys):
    from panoseek.cli import main

    assert main(["train", "sft", "--model", str(tiny_model_dir), "--data", str(tmp_path), "--out",
                 str(tmp_path / "run")]) == 2
    assert "is not an expert-data folder" in capsys.readouterr().err


@pytest.mark.slow
def test_the_cli_resumes_after_kill_9(tiny_model_dir, data_dir, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "run"
    command = [sys.executable, "-m", "panoseek", "train", "sft", "--model", str(tiny_model_dir), "--data",
               str(data_dir), "--out", str(out), "--max-steps", "4", "--save-steps", "1", "--batch-size", "1",
               "--no-progress"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while not (out / "checkpoint-2" / "trainer_state.json").exists() and process.poll() is None:
        time.sleep(0.2)
    os.kill(process.pid, signal.SIGKILL)  # the re-executed trainer itself (exec keeps the pid)
    process.wait()
    assert not (out / "final").exists()
    finished = subprocess.run(command, capture_output=True, text=True)
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert json.loads((out / "sft_summary.json").read_text())["step"] == 4
    state = json.loads((out / "checkpoint-4" / "trainer_state.json").read_text())
    assert [entry["step"] for entry in state["log_history"] if "loss" in entry] == [1, 2, 3, 4]
