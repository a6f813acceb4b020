"""The tiny-searcher recipe and what it is built from: the compact chat (the same episode
as the rules chat but for its one-line opening, and exactly what the ``vlm`` agent sees with
``chat=compact``), length-bucketed SFT batches, and the resumable one-command recipe."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from panoseek.agents.chat import EpisodeChat
from panoseek.agents.vlm import VLMAgent, VLMError
from panoseek.envs.eval.runner import make_env
from panoseek.envs.rollout import EpisodeSettings, play
from panoseek.training.collator import LastReplyCollator
from panoseek.training.dataset import load_sft_dataset, read_rows
from panoseek.training.expert_data import EPISODES_FILE, ExpertDataError, build_expert_data, plan
from panoseek.training.recipe import SFT2_DIR, TinyRecipe, run_tiny_recipe
from panoseek.training.sft import load_model, row_lengths
from scripted_policy import ScriptedPolicy

VIEW = (112, 63)


@pytest.fixture(scope="module")
def val():
    from panoseek.scenes import load_suite

    return load_suite("synth:val")


@pytest.fixture(scope="module")
def compact_dir(val, tmp_path_factory):
    out = tmp_path_factory.mktemp("compact") / "data"
    build_expert_data(val, out, limit=4, prompt_format="no_think", chat="compact", view_size=VIEW, progress=False)
    return out



def _observation(yaw: float) -> dict:
    return {"image": np.zeros((8, 8, 3), np.uint8), "heading": (yaw, 0.0), "feedback": f"now at {yaw}"}


def test_the_compact_chat_differs_from_the_rules_chat_only_in_its_opening():
    chats = {s: EpisodeChat("HOS", "Find the red mug.", "no_think", 2, s) for s in ("panoseek", "compact")}
    for chat in chats.values():
        for yaw in (0, 90, 180):
            chat.observe(_observation(yaw))
            chat.reply(f"<answer>rotate(90,0)</answer> at {yaw}")
    (rules, _), (compact, images) = chats["panoseek"].messages(), chats["compact"].messages()
    opening = compact[0]["content"][0]["text"]
    assert opening == "Object search (no_think). Instruction: Find the red mug.\n\n"
    assert rules[0]["content"][0]["text"].endswith("Instruction: Find the red mug.\n\n")
    assert len(rules[0]["content"][0]["text"]) > 10 * len(opening)
    assert rules[0]["content"][1:] == compact[0]["content"][1:] and rules[1:] == compact[1:] and len(images) == 2


def test_compact_rows_are_the_chat_the_vlm_agent_sees_with_chat_compact(val, compact_dir):
    rows = read_rows(compact_dir)
    records = [json.loads(line) for line in (compact_dir / EPISODES_FILE).read_text().splitlines()]
    specs = {spec.episode_id: spec for spec in plan(val, 0, 4)}
    record = next(r for r in records if r["success"] and r["turns"] >= 2)
    episode_rows = [row for row in rows if row["id"].startswith(record["episode_id"] + "/")]
    assert episode_rows[0]["messages"][0]["content"][0]["text"].startswith("Object search (no_think)") or \
        episode_rows[0]["messages"][0]["content"][0]["text"].startswith("Path search (no_think)")
    policy = ScriptedPolicy([row["messages"][-1]["content"][0]["text"] for row in episode_rows])
    env = make_env(val, EpisodeSettings(view_size=VIEW))
    agent = VLMAgent(policy, history=2, prompt_format="no_think", chat="compact")
    [rollout] = play([env], [agent], [specs[record["episode_id"]]], strict=True)
    assert rollout.record["success"] and len(policy.asked) == len(episode_rows)
    for row, (messages, images) in zip(episode_rows, policy.asked):
        assert row["messages"][:-1] == messages
        for path, image in zip(row["images"], images, strict=True):
            assert np.array_equal(np.asarray(Image.open(compact_dir / path)), image)


def test_an_unknown_chat_is_one_clear_error(val, compact_dir, tmp_path):
    with pytest.raises(VLMError, match="chat must be one of"):
        VLMAgent(ScriptedPolicy([]), chat="short")
    with pytest.raises(ExpertDataError, match="--chat"):
        build_expert_data(val, tmp_path / "d", limit=1, chat="hstar", view_size=VIEW, progress=False)
    with pytest.raises(ExpertDataError, match="chat"):  # a folder built with the other chat is refused
        build_expert_data(val, compact_dir, limit=4, prompt_format="no_think", chat="panoseek", view_size=VIEW,
                          progress=False)


def test_bucketed_batches_pad_to_a_multiple_of_the_bucket_never_beyond_the_length(tiny_model_dir, compact_dir):
    _, processor = load_model(tiny_model_dir)
    dataset = load_sft_dataset(compact_dir)
    rows = [dataset[i] for i in range(3)]
    lengths = row_lengths(processor, None, [row["messages"] for row in rows], VIEW)
    bucketed = LastReplyCollator(processor, None, 512, pad_to=16)([dict(row) for row in rows])
    assert bucketed["input_ids"].shape[1] == -(-max(lengths) // 16) * 16 < 512
    fixed = LastReplyCollator(processor, None, 512)([dict(row) for row in rows])
    assert fixed["input_ids"].shape[1] == 512
    # The same tokens carry the same labels either way (padding is on the right).
    width = bucketed["input_ids"].shape[1]
    assert bucketed["labels"].tolist() == fixed["labels"][:, :width].tolist()


def test_the_recipe_refuses_bad_settings_and_foreign_folders_before_any_stage(tmp_path):
    said: list[str] = []
    for bad, option in ((TinyRecipe(max_steps=0), "--max-steps"), (TinyRecipe(train_episodes=-1), "--train-episodes"),
                        (TinyRecipe(second_steps=-1), "--second-steps")):
        with pytest.raises(ValueError, match=option):
            run_tiny_recipe(tmp_path / "new", bad, progress=False, say=said.append)
    assert not (tmp_path / "new").exists() and not said
    foreign = tmp_path / "foreign"
    (foreign / "model").mkdir(parents=True)
    (foreign / "model" / "model.safetensors").write_bytes(b"someone else's weights")
    with pytest.raises(ValueError, match="holds no recipe run"):
        run_tiny_recipe(foreign, TinyRecipe(), progress=False, say=said.append)
    assert (foreign / "model" / "model.safetensors").read_bytes() == b"someone else's weights" and not said


def test_a_recipe_folder_from_before_the_target_loss_counts_as_weight_zero(tmp_path):
    from dataclasses import asdict

    from panoseek.training.recipe import RUN_FILE, _claim

    old = tmp_path / "old"
    old.mkdir()
    settings = {"recipe": "tiny", **{k: list(v) if isinstance(v, tuple) else v for k, v in asdict(TinyRecipe()).items()}}
    del settings["target_loss"]
    (old / RUN_FILE).write_text(json.dumps(settings))
    said: list[str] = []
    with pytest.raises(ValueError, match=r"target_loss: 0\.0 != 1\.0"):  # the old folder counts as 0, not missing
        run_tiny_recipe(old, TinyRecipe(target_loss=1.0), progress=False, say=said.append)
    _claim(old, TinyRecipe())  # ... so the same settings are accepted
    with pytest.raises(ValueError, match="--target-loss must be a weight"):
        run_tiny_recipe(tmp_path / "new", TinyRecipe(target_loss=-1.0), progress=False, say=said.append)
    assert not said and not (tmp_path / "new").exists()


@pytest.mark.slow
def test_the_recipe_runs_every_stage_and_resumes_as_finished(tmp_path):
    recipe = TinyRecipe(size="S", train_episodes=2, val_episodes=1, view_size=VIEW, max_steps=2, save_steps=2,
                        batch_size=2, second_steps=1)
    said: list[str] = []
    summary = run_tiny_recipe(tmp_path / "r", recipe, progress=False, say=said.append)
    assert summary["finished"] and summary["step"] == 1  # the second pass's summary
    final = tmp_path / "r" / SFT2_DIR / "final"
    assert recipe.final_model(tmp_path / "r") == final
    assert json.loads((final / "panoseek_sft.json").read_text()) == {"prompt_format": "no_think", "chat": "compact",
                                                                     "history": 2, "turns_left": False,
                                                                     "short_budgets": 0.0}
    assert json.loads((final / "preprocessor_config.json").read_text())["size"]["longest_edge"] == recipe.max_pixels
    said.clear()
    again = run_tiny_recipe(tmp_path / "r", recipe, progress=False, say=said.append)
    assert again["step"] == 1 and any("0 new" in line for line in said)
    assert "--agent-arg chat=compact" in recipe.eval_command(tmp_path / "r")
    with pytest.raises(ValueError, match="other settings"):  # the same folder with another seed
        run_tiny_recipe(tmp_path / "r", TinyRecipe(**{**recipe.__dict__, "seed": 1}), progress=False, say=said.append)


def test_a_limit_below_one_is_one_clear_error(val, tmp_path):
    for limit in (0, -1):
        with pytest.raises(ExpertDataError, match="--limit must be a positive"):
            build_expert_data(val, tmp_path / "d", limit=limit, view_size=VIEW, progress=False)
    assert not (tmp_path / "d").exists()
