"""Multi-turn GRPO (training/grpo.py, training/trajectories.py) on the tiny model and synth scenes.

The classic silent bug of multi-turn GRPO is a training forward that does not score what
was sampled (wrong masks, images misaligned with their tokens): the first tests hold the
loss forward's log-probs to the sampling ones over multi-turn, multi-image episodes.
"""

from __future__ import annotations

import json
import math
import shutil

from dataclasses import replace

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from panoseek.agents.chat import EpisodeChat
from panoseek.training import grpo
from panoseek.training.trajectories import RecordingPolicy, Trajectory
from panoseek.training.grpo import GRPOError, GRPOOptions, EpisodeReward, make_trainer, preset, train_grpo

# Tiny views, few turns, short replies: CI-sized episodes.
SMALL = dict(suite="synth:val", tasks=2, batch=4, group=2, max_turns=3, history=2, max_new_tokens=8,
             view_size=(112, 63), temperature=0.7, max_steps=2, save_steps=1)


def reply_length_reward(record: dict) -> float:
    """A reward that differs between the tiny model's episodes (its success is always 0)."""
    return float(len(record["actions"][0]["raw"] or "") % 5)


@pytest.fixture
def varied_reward(monkeypatch):
    monkeypatch.setitem(grpo.REWARDS, "reply_length", reply_length_reward)
    return "reply_length"


@pytest.fixture(scope="module")
def played(tiny_model_dir, tmp_path_factory):
    """A trainer, two groups of two episodes of three turns (two starts), and their rows in the loss layout."""
    trainer, _ = make_trainer(tiny_model_dir, tmp_path_factory.mktemp("grpo"), GRPOOptions(**SMALL), progress=False)
    trajectories = trainer._play(trainer._episode_specs([{"task_index": index} for index in (0, 0, 1, 1)]))
    batch = trainer._rows(trajectories, torch.tensor([1.0, -1.0, 0.5, -0.5]))
    return trainer, trajectories, batch


def test_the_loss_forward_scores_exactly_what_was_sampled(played):
    """Same weights: the training forward's log-probs (per-turn rows, batched, left-padded prompts, all views
    as pixels, the kernel head at the sampling temperature) equal the sampling log-probs (fp32, 1e-4)."""
    trainer, trajectories, batch = played
    turns = [turn for trajectory in trajectories for turn in trajectory.turns]
    assert max(len(turn.images) for turn in turns) == 2 and len(turns) >= 4  # several views per prompt
    assert len({len(turn.prompt_ids) for turn in turns}) > 1  # rows of different lengths: padding is exercised
    with torch.no_grad():
        logprobs = trainer.reply_logprobs(trainer.model, batch)
    for row, turn in enumerate(turns):
        sampled = torch.tensor(turn.logprobs)
        assert len(sampled) > 0
        torch.testing.assert_close(logprobs[row, : len(sampled)], sampled, atol=1e-4, rtol=0)
    assert torch.all(logprobs[batch["completion_mask"] == 0] == 0)  # padding scores nothing


def test_distinct_views_in_one_prompt_stay_aligned(played):
    """Three turns with three different views (history 2: the third prompt shows views 2 and 3, view 1 is
    text): the loss forward equals sampling, and swapping the two views of that prompt breaks it."""
    trainer, _, _ = played
    policy = RecordingPolicy(trainer.model, trainer.processing_class, temperature=0.7, max_new_tokens=6)
    chat = EpisodeChat("HOS", "Find the red clock.", history=2)
    rng = np.random.default_rng(0)
    for turn in range(3):
        chat.observe({"image": rng.integers(0, 256, (63, 112, 3), dtype=np.uint8), "heading": (90.0 * turn, 0.0),
                      "feedback": ""})
        chat.reply(policy.generate([chat], seed=turn)[0])
    turns = policy.samples[id(chat)]
    assert [len(turn.images) for turn in turns] == [1, 2, 2]
    assert not np.array_equal(np.asarray(turns[2].images[0]), np.asarray(turns[2].images[1]))
    trajectory = Trajectory(spec=None, record={}, turns=turns)
    batch = trainer._rows([trajectory], torch.zeros(1))
    with torch.no_grad():
        logprobs = trainer.reply_logprobs(trainer.model, batch)
        for row, turn in enumerate(turns):
            torch.testing.assert_close(logprobs[row, : len(turn.logprobs)], torch.tensor(turn.logprobs), atol=1e-4, rtol=0)
        swapped = Trajectory(spec=None, record={}, turns=[*turns[:2], replace(turns[2], images=turns[2].images[::-1])])
        wrong = trainer.reply_logprobs(trainer.model, trainer._rows([swapped], torch.zeros(1)))
        # The tolerance above tells the two apart (a right alignment is exact to ~1e-6).
        assert (wrong[2, : len(turns[2].logprobs)] - torch.tensor(turns[2].logprobs)).abs().max() > 1e-4
        # Without the processor's mm_token_type_ids, Qwen2.5-VL places image tokens as text: caught too.
        untyped = {key: value for key, value in batch.items() if key != "mm_token_type_ids"}
        gap = (trainer.reply_logprobs(trainer.model, untyped)[0, : len(turns[0].logprobs)] - torch.tensor(turns[0].logprobs))
        assert gap.abs().max() > 1e-4


def test_the_kernel_head_scores_as_trls_fused_head(played, tiny_model_dir):
    """The loss forward through panoseek.kernels.token_logprobs equals TRL 1.16's own fused LM head
    (``add_fused_lm_head``) on the same rows: log-probs and entropies."""
    from trl.trainer.utils import add_fused_lm_head

    from panoseek.agents.vlm import load_vlm

    trainer, _, batch = played
    reference, _ = load_vlm(tiny_model_dir, dtype="float32")
    add_fused_lm_head(reference, temperature=trainer.temperature, outputs=("log_probs", "entropy"))
    with torch.no_grad():
        ours = trainer._get_per_token_logps_and_entropies(
            trainer.model, torch.cat([batch["prompt_ids"], batch["completion_ids"]], 1),
            torch.cat([batch["prompt_mask"], batch["completion_mask"]], 1), batch["completion_ids"].size(1),
            compute_entropy=True, **{k: batch[k] for k in grpo._FORWARD_KEYS if k in batch})
        theirs = trainer._get_per_token_logps_and_entropies(
            reference, torch.cat([batch["prompt_ids"], batch["completion_ids"]], 1),
            torch.cat([batch["prompt_mask"], batch["completion_mask"]], 1), batch["completion_ids"].size(1),
            compute_entropy=True, **{k: batch[k] for k in grpo._FORWARD_KEYS if k in batch})
    torch.testing.assert_close(ours[0], theirs[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(ours[1], theirs[1], atol=1e-5, rtol=0)


def test_a_step_raises_the_replies_of_the_better_episodes(played):
    """The sign of the update: one gradient step on the GRPO loss makes every turn of the episodes with a
    positive advantage more likely and every turn of those with a negative one less likely."""
    trainer, _, batch = played
    model, saved = trainer.model, {k: v.clone() for k, v in trainer.model.state_dict().items()}
    trainer.current_gradient_accumulation_steps = 1  # set by the training loop; one step here

    def reply_logprob() -> torch.Tensor:
        with torch.no_grad():
            return (trainer.reply_logprobs(model, batch) * batch["completion_mask"]).sum(1)

    try:
        before = reply_logprob()
        model.zero_grad()
        trainer.compute_loss(model, batch).backward()
        with torch.no_grad():
            for parameter in model.parameters():
                if parameter.grad is not None:
                    parameter -= 1e-2 * parameter.grad
        change = reply_logprob() - before
    finally:
        model.zero_grad()
        model.load_state_dict(saved)
    advantages = batch["advantages"]
    assert torch.all(change[advantages > 0] > 0) and torch.all(change[advantages < 0] < 0)


def test_micro_batches_split_the_rows_without_dropping_any(played, monkeypatch):
    """--micro-batches: a step's per-turn rows are split into parts holding every
    row once, each with its own views, scored as in the whole batch."""
    trainer, trajectories, batch = played
    rows = len(batch["advantages"])
    monkeypatch.setattr(trainer.args, "steps_per_generation", 2)
    monkeypatch.setattr(trainer, "_generate_and_score_completions", lambda inputs: dict(batch))
    monkeypatch.setattr(trainer, "_buffered_inputs", None)
    monkeypatch.setattr(trainer, "_step", 0)
    trainer.model.train()
    first = trainer._prepare_inputs([])
    trainer._step = 1
    second = trainer._prepare_inputs([])
    parts = (first, second)
    assert sum(len(part["advantages"]) for part in parts) == rows and all(len(part["advantages"]) for part in parts)
    with torch.no_grad():
        whole = trainer.reply_logprobs(trainer.model, batch)
        keyed = {tuple(batch["completion_ids"][i].tolist()): whole[i] for i in range(rows)}
        for part in parts:
            assert part["pixel_values"].shape[0] == part["image_grid_thw"].prod(-1).sum()
            assert part["num_items_in_batch"] == batch["completion_mask"].sum()  # the dapo normaliser: the step's tokens
            scored = trainer.reply_logprobs(trainer.model, part)
            for i in range(len(part["advantages"])):
                expected = keyed[tuple(part["completion_ids"][i].tolist())]
                width = min(len(expected), scored.shape[1])
                torch.testing.assert_close(scored[i, :width], expected[:width], atol=1e-4, rtol=0)


def test_only_model_written_tokens_carry_loss(played):
    """The loss mask covers each turn's sampled reply (+ the <|im_end|> closing it) and nothing else: not the
    prompt, the feedback, the image tokens, nor the earlier replies the next prompts repeat as context."""
    trainer, trajectories, batch = played
    tokenizer = trainer.processing_class.tokenizer
    image_pad = tokenizer.convert_tokens_to_ids("<|image_pad|>")
    end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    turns = [turn for trajectory in trajectories for turn in trajectory.turns]
    for row, turn in enumerate(turns):
        written = batch["completion_ids"][row][batch["completion_mask"][row].bool()].tolist()
        assert written == turn.completion_ids
        assert written[: len(turn.logprobs)] == turn.completion_ids[: len(turn.logprobs)]
        assert len(written) - len(turn.logprobs) in (0, 1) and (len(written) == len(turn.logprobs) or written[-1] == end)
        assert image_pad not in written
        assert turn.assistant_mask == [0] * len(turn.prompt_ids) + [1] * len(turn.completion_ids)
        prompt = batch["prompt_ids"][row][batch["prompt_mask"][row].bool()].tolist()
        assert prompt == turn.prompt_ids and prompt.count(image_pad) > 0
        assert batch["mm_token_type_ids"][row, batch["prompt_ids"].size(1):].eq(0).all()  # replies are text
    for trajectory in trajectories:  # a later prompt holds an earlier reply, unmasked: context only
        first, second = trajectory.turns[0], trajectory.turns[1]
        assert tokenizer.decode(first.completion_ids[: len(first.logprobs)], skip_special_tokens=True) == first.text
        assert first.text.strip()[:4] in tokenizer.decode(second.prompt_ids)
    expected = [a for a, trajectory in zip((1.0, -1.0, 0.5, -0.5), trajectories) for _ in trajectory.turns]
    assert batch["advantages"].tolist() == expected  # every turn carries its trajectory's advantage


def test_image_placeholders_are_never_sampled(played):
    """A placeholder token in a reply would meet no picture in the training forward: it is not drawn."""
    trainer, trajectories, _ = played
    policy = RecordingPolicy(trainer.model, trainer.processing_class)
    tokenizer = trainer.processing_class.tokenizer
    assert policy.suppressed == sorted(tokenizer.convert_tokens_to_ids(["<|image_pad|>", "<|video_pad|>"]))
    assert not any(set(turn.completion_ids) & set(policy.suppressed) for t in trajectories for turn in t.turns)


def test_episodes_are_played_by_the_engine(played):
    """Trajectories carry the records panoseek eval writes (reward, success, actions), and every view."""
    _, trajectories, _ = played
    for trajectory in trajectories:
        record = trajectory.record
        assert record["turns"] == len(trajectory.turns) == len(trajectory.views) == len(trajectory.infos)
        assert [action["raw"] for action in record["actions"]] == [turn.text for turn in trajectory.turns]
        assert math.isfinite(record["reward"]) and record["error"] is None
    ids = [trajectory.spec.episode_id for trajectory in trajectories]
    assert ids[0] == ids[1] and ids[2] == ids[3] and ids[0] != ids[2]  # a group plays one start


def _weights(folder) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


@pytest.mark.slow
def test_two_steps_change_the_weights_and_log_finite_losses(tiny_model_dir, tmp_path, varied_reward):
    out = tmp_path / "run"
    summary = train_grpo(tiny_model_dir, out, GRPOOptions(**{**SMALL, "reward": varied_reward, "lr": 1e-3,
                                                               "beta": 0.05}), progress=False)
    assert summary["finished"] and summary["step"] == 2
    assert all(math.isfinite(loss) for loss in summary["losses"]) and len(summary["losses"]) == 2
    before, after = _weights(tiny_model_dir), _weights(out / "final")
    changed = [name for name in before if not torch.equal(before[name], after[name])]
    assert changed
    rows = [json.loads(line) for line in (out / "progress.jsonl").read_text().splitlines()]
    assert [row["step"] for row in rows] == [1, 2]
    for key in ("reward", "success", "format_rate", "kl", "reply_tokens", "turns", "loss"):
        assert all(math.isfinite(row[key]) for row in rows), key
    assert (out / "curves.png").stat().st_size > 0 and (out / "final" / "chat_template.jinja").is_file()
    assert json.loads((out / "final" / "panoseek_grpo.json").read_text()) == {
        "prompt_format": "free_think", "history": 2, "chat": None, "turns_left": False}
    assert train_grpo(tiny_model_dir, out, GRPOOptions(**{**SMALL, "reward": varied_reward, "lr": 1e-3,
                                                            "beta": 0.05}), progress=False) == summary


@pytest.mark.slow
def test_resume_continues_as_if_never_stopped(tiny_model_dir, tmp_path, varied_reward):
    from transformers import TrainerCallback

    class StopAfterFirstStep(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            control.should_training_stop = True

    options = GRPOOptions(**{**SMALL, "reward": varied_reward, "lr": 1e-3})
    whole = train_grpo(tiny_model_dir, tmp_path / "whole", options, progress=False)
    first = train_grpo(tiny_model_dir, tmp_path / "cut", options, progress=False, callbacks=[StopAfterFirstStep()])
    assert not first["finished"] and first["step"] == 1 and (tmp_path / "cut" / "checkpoint-1").is_dir()
    resumed = train_grpo(tiny_model_dir, tmp_path / "cut", options, progress=False)
    assert resumed["finished"] and resumed["step"] == 2
    assert resumed["losses"][-1] == pytest.approx(whole["losses"][-1], abs=1e-6)
    a, b = _weights(tmp_path / "whole" / "final"), _weights(tmp_path / "cut" / "final")
    assert all(torch.allclose(a[name], b[name], atol=1e-6) for name in a)


def test_a_group_that_does_not_divide_the_batch_is_refused():
    with pytest.raises(GRPOError, match=r"--group 3 does not divide --batch 8"):
        GRPOOptions(batch=8, group=3).check()
    with pytest.raises(GRPOError, match=r"--micro-batches 3 does not divide --batch 8"):
        GRPOOptions(batch=8, group=2, micro_batches=3).check()


def test_a_model_without_a_chat_template_is_refused(tiny_model_dir, tmp_path):
    folder = tmp_path / "no-template"
    shutil.copytree(tiny_model_dir, folder)
    (folder / "chat_template.jinja").unlink()
    for name in ("tokenizer_config.json", "processor_config.json"):
        config = json.loads((folder / name).read_text())
        config.pop("chat_template", None)
        (folder / name).write_text(json.dumps(config))
    with pytest.raises(GRPOError, match=r"has no chat template"):
        make_trainer(folder, tmp_path / "out", GRPOOptions(**SMALL), progress=False)
    assert not (tmp_path / "out").exists()


def test_a_nan_reward_is_an_error_naming_the_episode(monkeypatch):
    monkeypatch.setitem(grpo.REWARDS, "broken", lambda record: float("nan"))
    with pytest.raises(GRPOError, match=r"reward 'broken' of episode t0#1 is nan, not a finite number"):
        EpisodeReward("broken")(records=[{"episode_id": "t0#1", "reward": 0.0}])
    with pytest.raises(GRPOError, match=r"--reward must be one of"):
        GRPOOptions(reward="nope").check()


def test_the_rewards_are_the_episode_records():
    record = {"episode_id": "t#0", "reward": 0.5, "success": False, "submitted": [1.0, 0.0],
              "actions": [{"well_formed": True}]}
    assert EpisodeReward("hstar")(records=[record]) == [0.5]  # format paid, no success
    assert EpisodeReward("success")(records=[record, {**record, "success": True}]) == [0.0, 1.0]
    assert grpo.well_formed_submission(record) and not grpo.well_formed_submission({**record, "submitted": None})


def test_the_hstar_preset():
    options = preset("hstar")
    assert (options.group, options.max_turns, options.history, options.lr, options.temperature, options.reward) == (
        8, 5, 2, 1e-7, 0.7, "hstar")
    assert preset("hstar", batch=32).batch == 32
    with pytest.raises(GRPOError, match="unknown GRPO preset"):
        preset("verl")


def test_the_command_line_refuses_a_group_that_does_not_divide_the_batch(tiny_model_dir, tmp_path, capsys):
    from panoseek.cli import main

    code = main(["train", "grpo", "--model", str(tiny_model_dir), "--out", str(tmp_path / "run"),
                 "--preset", "hstar", "--batch", "12"])
    assert code == 2
    assert "--group 8 does not divide --batch 12" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_the_command_line_options_are_the_preset_with_overrides():
    import argparse

    from panoseek.training.grpo_cli import _options, add_grpo_command

    parser = argparse.ArgumentParser()
    add_grpo_command(parser.add_subparsers())
    args = parser.parse_args(["grpo", "--model", "m", "--out", "o", "--preset", "hstar", "--lr", "1e-6",
                              "--view-size", "112x63"])
    assert _options(args) == preset("hstar", lr=1e-6, view_size=(112, 63))
    assert _options(parser.parse_args(["grpo", "--model", "m", "--out", "o"])) == GRPOOptions()
