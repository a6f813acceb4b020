"""DPO from trajectory preferences: pairs share the expert's prompt and views exactly, the
chosen reply is valid and the rejected one is judged worse by the protocol and the env,
two DPO steps change the weights with finite losses, only reply tokens carry loss, our
log-prob kernel gives TRL's log-probs, a resumed run matches an uninterrupted one, and
bad input (a missing image, chosen == rejected, no chat template) is one clear error each."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from transformers import TrainerCallback

from panoseek.envs import judge
from panoseek.envs.protocol import ActionProtocol, ParsedAction, format_action, format_reply
from panoseek.training.dataset import read_rows
from panoseek.training.dpo import DPOError, DPOOptions, train_dpo, use_token_logprobs
from panoseek.training.expert_data import build_expert_data
from panoseek.envs.rollout import Turn
from panoseek.training.preferences import (
    EPISODES_FILE, REASONS, PreferenceError, build_preferences, load_preference_dataset, read_pairs, verdict,
)

VIEW = (112, 63)


@pytest.fixture(scope="module")
def expert_dir(tmp_path_factory):
    from panoseek.scenes import load_suite

    out = tmp_path_factory.mktemp("dpo") / "experts"
    build_expert_data(load_suite("synth:val"), out, limit=2, view_size=VIEW, progress=False)
    return out


class ScriptedPolicy:
    """Stands in for the model's sampler: sample i of a turn answers ``script[i]``."""

    def __init__(self, script):
        self.script = script
        self.calls = []

    def generate(self, chats, seed=None):
        self.calls.append(len(chats))
        return [self.script[i % len(self.script)] for i in range(len(chats))]


WRONG_SUBMIT = format_reply(format_action("submit", 0, -80), think="it is down there")  # no synth:val target is at -80
STAY = format_reply(format_action("rotate", 0, 0), think="look again")
SCRIPT = ["look left", "<answer>rotate(10, 0)</answer>", WRONG_SUBMIT, STAY]


@pytest.fixture(scope="module")
def scripted_pairs(expert_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("dpo") / "scripted"
    counts = build_preferences(expert_dir, ScriptedPolicy(SCRIPT), out, samples=len(SCRIPT), progress=False)
    return out, counts


@pytest.fixture(scope="module")
def pairs_dir(expert_dir, tiny_model_dir, tmp_path_factory):
    """Pairs sampled from the tiny model itself (random weights: its replies are invalid)."""
    out = tmp_path_factory.mktemp("dpo") / "sampled"
    build_preferences(expert_dir, tiny_model_dir, out, samples=2, max_new_tokens=12, progress=False)
    return out


def test_pairs_share_the_expert_prompt_and_views_exactly(expert_dir, scripted_pairs):
    out, counts = scripted_pairs
    rows = {row["id"]: row for row in read_rows(expert_dir)}
    pairs = read_pairs(out)
    assert counts["pairs"] == len(pairs) > 0 and counts["candidates"] == len(rows) * len(SCRIPT)
    for pair in pairs:
        row = rows[pair["id"].rsplit("/", 1)[0]]
        assert pair["prompt"] == row["messages"][:-1] and pair["prompt"][-1]["role"] == "user"
        assert pair["chosen"] == row["messages"][-1:]
        assert len(pair["images"]) == len(row["images"]) > 0
        for mine, theirs in zip(pair["images"], row["images"]):
            assert (out / mine).read_bytes() == (expert_dir / theirs).read_bytes()


def test_chosen_is_valid_and_rejected_is_judged_worse(expert_dir, scripted_pairs):
    from panoseek.scenes import load_suite

    out, counts = scripted_pairs
    strict = ActionProtocol(prompt_format="free_think", strict=True)
    lenient = ActionProtocol(prompt_format="free_think", strict=False)  # how panoseek eval reads replies
    suite = load_suite("synth:val")
    tasks = {record["episode_id"]: record["task_id"] for record in map(json.loads, (expert_dir / "episodes.jsonl")
                                                                         .read_text().splitlines())}
    by_id = {suite[i].id: suite[i] for i in range(4)}
    reasons = set()
    for pair in read_pairs(out):
        chosen = strict.parse(pair["chosen"][0]["content"][0]["text"])
        assert chosen.valid and chosen.well_formed
        text = pair["rejected"][0]["content"][0]["text"]
        rejected = lenient.parse(text)
        reasons.add(pair["reason"])
        if pair["reason"] == "invalid":
            assert not rejected.valid
        elif pair["reason"] == "malformed":
            assert rejected.valid and not rejected.well_formed
        elif pair["reason"] == "failed_submit":
            assert text == WRONG_SUBMIT
            task = by_id[tasks[pair["id"].split("/")[0]]]
            assert not judge.is_success(task, rejected.yaw, rejected.pitch)
        else:  # a rotation that stays put: a revisit, or a delay where the expert submitted
            assert text == STAY and pair["reason"] in ("revisit", "delays_submit")
            expert_submits = chosen.kind == "submit"
            assert (pair["reason"] == "delays_submit") == expert_submits
    assert reasons == set(REASONS)
    assert sum(counts[reason] for reason in REASONS) == counts["pairs"]


def test_the_expert_turning_back_is_not_a_revisit_to_reject():
    """An expert may turn back to a heading it saw (a sign pointed there); the same reply
    sampled from the model is the chosen reply itself, never its rejected side."""
    headings = [[111.0, 0.0], [191.0, 10.0], [271.0, 10.0], [131.0, 10.0]]
    expert = {"parsed": {"kind": "rotate", "yaw": 60.0, "pitch": 0.0}, "heading": [191.0, 10.0]}

    def turn(yaw: float, pitch: float, heading: list[float]) -> Turn:
        action = ParsedAction("rotate", yaw, pitch, well_formed=True)
        return Turn({}, format_action("rotate", yaw, pitch), action, 0.0, {"valid_action": True, "well_formed": True, "heading": heading})

    assert verdict(turn(60.0, 0.0, [191.0, 10.0]), expert, headings) is None
    assert verdict(turn(140.0, 0.0, [271.0, 10.0]), expert, headings) == "revisit"
    assert verdict(turn(30.0, 0.0, [161.0, 10.0]), expert, headings) is None
    # another rotation that lands where the expert's did (within 1 degree) is the expert's move, not a revisit
    assert verdict(turn(60.5, 0.0, [191.5, 10.0]), expert, headings) is None


def test_the_expert_reply_itself_is_not_rejected_and_a_rerun_resumes(expert_dir, tmp_path):
    class Echo:  # answers with the expert's own reply (it is in the history the chat will get)
        def generate(self, chats, seed=None):
            return [self.replies[len(chat.turns) - 1] for chat in chats]

    echo = Echo()
    rows = read_rows(expert_dir)
    first = rows[0]["id"].split("/")[0]
    echo.replies = {int(r["id"].split("/")[1]): r["messages"][-1]["content"][0]["text"] for r in rows
                    if r["id"].split("/")[0] == first}
    counts = build_preferences(expert_dir, echo, tmp_path / "echo", samples=1, limit=1, progress=False)
    assert counts["pairs"] == 0 and counts["candidates"] == len(echo.replies)
    again = build_preferences(expert_dir, echo, tmp_path / "echo", samples=1, limit=1, progress=False)
    assert again["new"] == 0 and again["episodes"] == 1
    with pytest.raises(PreferenceError, match="built with other settings .*samples: 1 != 2"):
        build_preferences(expert_dir, echo, tmp_path / "echo", samples=2, progress=False)


def test_only_reply_tokens_carry_loss(tiny_model_dir, pairs_dir):
    from trl.trainer.dpo_trainer import DataCollatorForVisionPreference

    from panoseek.training.sft import load_model

    _, processor = load_model(tiny_model_dir)
    dataset = load_preference_dataset(pairs_dir)
    examples = [dict(dataset[i]) for i in range(2)]
    texts = [[e["chosen"][0]["content"][0]["text"] for e in examples],
             [e["rejected"][0]["content"][0]["text"] for e in examples]]
    batch = DataCollatorForVisionPreference(processor=processor)(examples)
    tokenizer = processor.tokenizer
    replies = texts[0] + texts[1]  # the batch is [chosen..., rejected...]
    for ids, mask, reply in zip(batch["input_ids"], batch["completion_mask"], replies):
        kept = torch.nonzero(mask).flatten()
        assert kept.tolist() == list(range(int(kept[0]), int(kept[-1]) + 1))  # one contiguous span
        assert tokenizer.decode(ids[kept]) == reply + "<|im_end|>\n"
        assert tokenizer.decode(ids[: int(kept[0])]).endswith("<|im_start|>assistant\n")
    assert int(batch["image_grid_thw"].shape[0]) == 2 * sum(len(e["images"]) for e in examples)


def test_our_kernel_gives_trl_log_probs(tiny_model_dir, pairs_dir):
    from trl.trainer.dpo_trainer import DataCollatorForVisionPreference
    from trl.trainer.utils import add_fused_lm_head

    from panoseek.training.sft import load_model

    model, processor = load_model(tiny_model_dir)
    dataset = load_preference_dataset(pairs_dir)
    batch = DataCollatorForVisionPreference(processor=processor)([dict(dataset[i]) for i in range(2)])
    labels = batch["input_ids"].masked_fill(batch["completion_mask"] == 0, -100)
    inputs = {k: v for k, v in batch.items() if k != "completion_mask"}
    add_fused_lm_head(model)
    with torch.no_grad():
        theirs = model(**inputs, labels=labels, fused_lm_head=True).log_probs
        use_token_logprobs(model)
        ours = model(**inputs, labels=labels, fused_lm_head=True)
    assert torch.allclose(ours.log_probs, theirs, atol=1e-4)
    assert (ours.log_probs[labels[:, 1:] == -100] == 0).all() and (ours.log_probs[labels[:, 1:] != -100] < 0).all()


class Recorder(TrainerCallback):
    def __init__(self, stop_at=None):
        self.stop_at, self.logs = stop_at, []

    def on_log(self, args, state, control, logs=None, **kwargs):
        self.logs.append(dict(logs or {}))

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.stop_at:
            control.should_training_stop = True


def test_two_dpo_steps_change_the_weights_with_finite_losses(tiny_model_dir, pairs_dir, tmp_path):
    recorder = Recorder()
    summary = train_dpo(tiny_model_dir, pairs_dir, tmp_path / "run", DPOOptions(max_steps=2, save_steps=2, lr=1e-3),
                        eval_dir=pairs_dir, progress=False, callbacks=[recorder])
    assert summary["finished"] and summary["step"] == 2 and len(summary["eval_loss"]) == 1
    losses = [log["loss"] for log in recorder.logs if "loss" in log]
    assert len(losses) == 2 and all(torch.isfinite(torch.tensor(losses)))
    assert losses[0] == pytest.approx(0.6931, abs=1e-3)  # -log sigmoid(0): policy == reference at step 1
    logged = [log for log in recorder.logs if "loss" in log]
    assert all("rewards/margins" in log and "rewards/accuracies" in log for log in logged)
    assert not any("mean_token_accuracy" in log for log in logged)  # TRL's head only (see train_dpo)
    before, after = load_file(tiny_model_dir / "model.safetensors"), load_file(tmp_path / "run/final/model.safetensors")
    assert any(not torch.equal(before[k], after[k]) for k in after if k in before)
    assert (tmp_path / "run" / "dpo.png").stat().st_size > 0
    assert (tmp_path / "run/final/chat_template.jinja").is_file()
    info = json.loads((tmp_path / "run/final/panoseek_sft.json").read_text())  # how to evaluate it
    assert (info["chat"], info["turns_left"], info["short_budgets"]) == ("panoseek", False, 0.0)


def test_sft_weight_adds_the_chosen_replies_nll(tiny_model_dir, pairs_dir, tmp_path):
    recorder = Recorder()
    options = DPOOptions(max_steps=1, save_steps=1, lr=1e-3, batch_size=1, sft_weight=1.0)
    train_dpo(tiny_model_dir, pairs_dir, tmp_path / "run", options, progress=False, callbacks=[recorder])
    [log] = [log for log in recorder.logs if "loss" in log]
    # policy == reference at step 1: the DPO part is log 2, the rest the random model's NLL per reply token
    assert log["loss"] > 0.6931 + 1.0
    with pytest.raises(DPOError, match="--sft-weight must be a number >= 0"):
        DPOOptions(sft_weight=-1.0).check()
    run_file = tmp_path / "run" / "dpo_run.json"
    old = {key: value for key, value in json.loads(run_file.read_text()).items() if key != "sft_weight"}
    run_file.write_text(json.dumps(old))  # a run folder from before the option: it ran plain DPO
    with pytest.raises(DPOError, match="sft_weight"):
        train_dpo(tiny_model_dir, pairs_dir, tmp_path / "run", options, progress=False)
    plain = DPOOptions(max_steps=1, save_steps=1, lr=1e-3, batch_size=1)  # the old run's settings: accepted
    assert train_dpo(tiny_model_dir, pairs_dir, tmp_path / "run", plain, progress=False)["finished"]


@pytest.mark.slow
def test_a_resumed_run_matches_the_uninterrupted_run(tiny_model_dir, pairs_dir, tmp_path):
    options = DPOOptions(max_steps=3, save_steps=1, lr=1e-3, batch_size=1)
    whole = train_dpo(tiny_model_dir, pairs_dir, tmp_path / "whole", options, progress=False)
    cut = train_dpo(tiny_model_dir, pairs_dir, tmp_path / "cut", options, progress=False, callbacks=[Recorder(2)])
    assert not cut["finished"] and cut["step"] == 2
    resumed = train_dpo(tiny_model_dir, pairs_dir, tmp_path / "cut", options, progress=False)
    assert resumed["finished"] and resumed["step"] == 3
    assert resumed["last_loss"] == pytest.approx(whole["last_loss"], rel=1e-4, abs=1e-6)
    a, b = load_file(tmp_path / "whole/final/model.safetensors"), load_file(tmp_path / "cut/final/model.safetensors")
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)


def _rewrite_first_pair(source, target, change):
    shutil.copytree(source, target)
    lines = [json.loads(line) for line in (target / EPISODES_FILE).read_text().splitlines()]
    first = next(line for line in lines if line["pairs"])
    change(first["pairs"][0], target)
    (target / EPISODES_FILE).write_text("".join(json.dumps(line) + "\n" for line in lines))
    return first["pairs"][0]["id"]


def test_a_pair_with_a_missing_image_is_refused(scripted_pairs, tiny_model_dir, tmp_path):
    def drop_image(pair, folder):
        pair["images"][0] = "images/gone.png"

    name = _rewrite_first_pair(scripted_pairs[0], tmp_path / "pairs", drop_image)
    with pytest.raises(PreferenceError, match=f"pair {name!r}: image 'images/gone.png' is missing"):
        train_dpo(tiny_model_dir, tmp_path / "pairs", tmp_path / "run", DPOOptions(max_steps=1), progress=False)
    assert not (tmp_path / "run").exists()


def test_a_pair_whose_chosen_equals_rejected_is_refused(scripted_pairs, tmp_path):
    def same(pair, folder):
        pair["rejected"] = pair["chosen"]

    name = _rewrite_first_pair(scripted_pairs[0], tmp_path / "pairs", same)
    with pytest.raises(PreferenceError, match=f"pair {name!r}: chosen and rejected are the same reply"):
        load_preference_dataset(tmp_path / "pairs")


def test_a_model_folder_without_a_chat_template_is_refused(tiny_model_dir, expert_dir, scripted_pairs, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    (model / "chat_template.jinja").unlink()
    with pytest.raises(PreferenceError, match="has no chat template"):
        build_preferences(expert_dir, model, tmp_path / "pairs", progress=False)
    with pytest.raises(DPOError, match="has no chat template"):
        train_dpo(model, scripted_pairs[0], tmp_path / "run", DPOOptions(max_steps=1), progress=False)


def test_the_cli_builds_pairs_and_reports_bad_input(expert_dir, tiny_model_dir, tmp_path, capsys):
    from panoseek.cli import main

    assert main(["train", "dpo", "--model", str(tiny_model_dir), "--data", str(tmp_path), "--out",
                 str(tmp_path / "run")]) == 2
    assert "is not a preferences folder" in capsys.readouterr().err
    assert main(["data", "preferences", "--data", str(tmp_path), "--model", str(tiny_model_dir), "--out",
                 str(tmp_path / "pairs")]) == 2
    assert "is not an expert-data folder" in capsys.readouterr().err
    assert main(["data", "preferences", "--data", str(expert_dir), "--model", str(tiny_model_dir), "--out",
                 str(tmp_path / "pairs"), "--limit", "1", "--samples", "1", "--max-new-tokens", "4",
                 "--no-progress"]) == 0
    assert "sampled replies" in capsys.readouterr().out
    assert json.loads((tmp_path / "pairs" / "preferences.json").read_text())["samples"] == 1


def test_our_kernel_follows_autocast_like_trl(tiny_model_dir, pairs_dir):
    """GPU runs train under bf16 autocast: the head then computes in bf16, as TRL's does."""
    from trl.trainer.dpo_trainer import DataCollatorForVisionPreference
    from trl.trainer.utils import add_fused_lm_head

    from panoseek.training.sft import load_model

    model, processor = load_model(tiny_model_dir)
    batch = DataCollatorForVisionPreference(processor=processor)([dict(load_preference_dataset(pairs_dir)[0])])
    labels = batch["input_ids"].masked_fill(batch["completion_mask"] == 0, -100)
    inputs = {k: v for k, v in batch.items() if k != "completion_mask"}
    add_fused_lm_head(model)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        theirs = model(**inputs, labels=labels, fused_lm_head=True).log_probs
        use_token_logprobs(model)
        ours = model(**inputs, labels=labels, fused_lm_head=True).log_probs
    assert ours.dtype == torch.float32 and torch.allclose(ours, theirs.float(), atol=5e-2)


def test_expert_rows_that_the_env_does_not_reproduce_are_refused(expert_dir, tmp_path):
    """The model must be shown the expert row's chat and views; a row that differs is an error."""
    texts = shutil.copytree(expert_dir, tmp_path / "texts")
    lines = [json.loads(line) for line in (texts / "episodes.jsonl").read_text().splitlines()]
    lines[0]["rows"][0]["messages"][0]["content"][-1]["text"] += " (edited)"
    (texts / "episodes.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    with pytest.raises(PreferenceError, match="the replayed chat differs from the stored one"):
        build_preferences(texts, ScriptedPolicy(SCRIPT), tmp_path / "a", samples=1, limit=1, progress=False)
    views = shutil.copytree(expert_dir, tmp_path / "views")
    first = lines[0]["rows"][0]["images"][0]
    Image.new("RGB", VIEW).save(views / first)
    with pytest.raises(PreferenceError, match=f"view '{first}' differs"):
        build_preferences(views, ScriptedPolicy(SCRIPT), tmp_path / "b", samples=1, limit=1, progress=False)


def test_pairs_follow_the_compact_chat_of_the_expert_data(tmp_path):
    from panoseek.scenes import load_suite

    experts = tmp_path / "compact"
    build_expert_data(load_suite("synth:val"), experts, limit=1, chat="compact", view_size=VIEW, progress=False)
    build_preferences(experts, ScriptedPolicy(SCRIPT[:1]), tmp_path / "pairs", samples=1, progress=False)
    rows = {row["id"]: row for row in read_rows(experts)}
    pairs = read_pairs(tmp_path / "pairs")
    assert len(pairs) == len(rows) and all(pair["prompt"] == rows[pair["id"][:-2]]["messages"][:-1] for pair in pairs)
    assert json.loads((tmp_path / "pairs" / "preferences.json").read_text())["chat"] == "compact"


@pytest.mark.slow
def test_the_cli_resumes_after_kill_9(tiny_model_dir, pairs_dir, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "run"
    command = [sys.executable, "-m", "panoseek", "train", "dpo", "--model", str(tiny_model_dir), "--data",
               str(pairs_dir), "--out", str(out), "--max-steps", "3", "--save-steps", "1", "--batch-size", "1",
               "--no-progress"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while not (out / "checkpoint-1" / "trainer_state.json").exists() and process.poll() is None:
        time.sleep(0.2)
    os.kill(process.pid, signal.SIGKILL)  # the re-executed trainer itself (exec keeps the pid)
    process.wait()
    assert not (out / "final").exists()
    finished = subprocess.run(command, capture_output=True, text=True)
    assert finished.returncode == 0, finished.stderr[-2000:]
    assert json.loads((out / "dpo_summary.json").read_text())["step"] == 3
    state = json.loads((out / "checkpoint-3" / "trainer_state.json").read_text())
    assert [entry["step"] for entry in state["log_history"] if "loss" in entry] == [1, 2, 3]
