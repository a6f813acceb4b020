"""The turns-left note: what the chat says with a turn budget (and that without one nothing
changes), that expert rows with the note are exactly what ``VLMAgent(turns_left=True)``
sees, seeded short budgets, the data folder's identity, and one clear error per bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from panoseek.agents.chat import EpisodeChat, turns_left_note
from panoseek.agents.vlm import VLMAgent, VLMError
from panoseek.cli import main
from panoseek.envs.eval.runner import make_env
from panoseek.envs.rollout import EpisodeSettings, play
from panoseek.training.dataset import read_rows
from panoseek.training.expert_data import DATA_FILE, EPISODES_FILE, ExpertDataError, build_expert_data, episode_budget, plan
from scripted_policy import ScriptedPolicy

VIEW = (112, 63)
LIMIT = 8


@pytest.fixture(scope="module")
def val():
    from panoseek.scenes import load_suite

    return load_suite("synth:val")


@pytest.fixture(scope="module")
def short_dir(val, tmp_path_factory):
    """Turns-left rows, every episode on a short budget."""
    out = tmp_path_factory.mktemp("turns") / "data"
    build_expert_data(val, out, limit=LIMIT, prompt_format="no_think", chat="compact", view_size=VIEW, turns_left=True,
                      short_budgets=1.0, progress=False)
    return out


def _records(folder):
    return [json.loads(line) for line in (folder / EPISODES_FILE).read_text().splitlines()]


def _observation(turn: int) -> dict:
    return {"image": np.zeros((8, 8, 3), np.uint8), "heading": (30.0 * turn, 0.0), "turn": turn,
            "feedback": f"now at {30 * turn}."}


def _play(chat: EpisodeChat, turns: int) -> list[dict]:
    for turn in range(turns):
        chat.observe(_observation(turn))
        chat.reply("<answer>rotate(30,0)</answer>")
    return chat.messages()[0]


@pytest.mark.parametrize("structure", ["panoseek", "compact"])
def test_each_user_turn_ends_with_the_turns_left_and_nothing_else_changes(structure):
    noted = _play(EpisodeChat("HPS", "Go to gate 12.", "no_think", 2, structure, max_turns=3), 3)
    plain = _play(EpisodeChat("HPS", "Go to gate 12.", "no_think", 2, structure), 3)
    endings = [m["content"][-1]["text"] for m in noted if m["role"] == "user"]
    assert endings == ["now at 0. 3 turns left.", "now at 30. 2 turns left.", "now at 60. 1 turn left: this is the last one."]
    users = 0  # the default (None) is the same chat without the note
    for with_note, without in zip(noted, plain, strict=True):
        if with_note["role"] == "user":
            assert with_note["content"][:-1] == without["content"][:-1]
            assert with_note["content"][-1]["text"] == without["content"][-1]["text"] + turns_left_note(3 - users)
            users += 1
        else:
            assert with_note == without


def test_the_vlm_agent_adds_the_note_only_when_asked():
    info = {"kind": "HOS", "instruction": "Find it.", "seed": 0, "max_turns": 10}
    plain, noted = VLMAgent(ScriptedPolicy([]), chat="compact"), VLMAgent(ScriptedPolicy([]), chat="compact", turns_left="true")
    plain.reset(info)
    noted.reset(info)
    assert plain.chat.max_turns is None and noted.chat.max_turns == 10


def test_expert_rows_are_the_chat_the_vlm_agent_sees_with_turns_left(val, short_dir):
    rows = read_rows(short_dir)
    specs = {spec.episode_id: spec for spec in plan(val, 0, LIMIT)}
    record = next(r for r in _records(short_dir) if r["success"] and r["turns"] >= 2)
    assert 3 <= record["max_turns"] < 10
    episode_rows = [row for row in rows if row["id"].startswith(record["episode_id"] + "/")]
    policy = ScriptedPolicy([row["messages"][-1]["content"][0]["text"] for row in episode_rows])
    env = make_env(val, EpisodeSettings(view_size=VIEW, max_turns=record["max_turns"]))
    agent = VLMAgent(policy, history=2, prompt_format="no_think", chat="compact", turns_left=True)
    [rollout] = play([env], [agent], [specs[record["episode_id"]]], strict=True)
    assert rollout.record["success"] and len(policy.asked) == len(episode_rows)
    for row, (messages, images) in zip(episode_rows, policy.asked):
        assert row["messages"][:-1] == messages
        for path, image in zip(row["images"], images, strict=True):
            assert np.array_equal(np.asarray(Image.open(short_dir / path)), image)
    left = record["max_turns"] - len(episode_rows) + 1
    assert episode_rows[-1]["messages"][-2]["content"][-1]["text"].endswith(turns_left_note(left))

def test_short_budgets_show_last_turn_submissions(short_dir):
    records = _records(short_dir)
    assert all(3 <= r["max_turns"] <= 9 and r["turns"] <= r["max_turns"] for r in records)
    last = [r["rows"][-1] for r in records if r["rows"] and r["turns"] == r["max_turns"]]
    assert last, "no successful episode used its whole budget"
    for row in last:
        assert row["messages"][-2]["content"][-1]["text"].endswith(" 1 turn left: this is the last one.")
        assert row["messages"][-1]["content"][0]["text"].startswith("<answer>submit(")


def test_budgets_are_seeded_by_the_episode_and_drawn_from_3_to_9():
    seeds = range(1000)
    assert [episode_budget(s, 10, 0.3) for s in seeds] == [episode_budget(s, 10, 0.3) for s in seeds]
    assert {episode_budget(s, 10, 0.0) for s in seeds} == {10}
    assert {episode_budget(s, 10, 1.0) for s in seeds} == set(range(3, 10))
    assert 250 < sum(episode_budget(s, 10, 0.3) < 10 for s in seeds) < 350


def test_the_options_are_recorded_and_part_of_the_folder_identity(val, short_dir, tmp_path):
    info = json.loads((short_dir / DATA_FILE).read_text())
    assert info["turns_left"] is True and info["short_budgets"] == 1.0
    again = build_expert_data(val, short_dir, limit=LIMIT, prompt_format="no_think", chat="compact", view_size=VIEW,
                              turns_left=True, short_budgets=1.0, progress=False)
    assert again["new"] == 0  # the same settings resume
    with pytest.raises(ExpertDataError, match="turns_left: True != False"):
        build_expert_data(val, short_dir, limit=LIMIT, prompt_format="no_think", chat="compact", view_size=VIEW,
                          progress=False)
    with pytest.raises(ExpertDataError, match="short_budgets: 1.0 != 0.3"):
        build_expert_data(val, short_dir, limit=LIMIT, prompt_format="no_think", chat="compact", view_size=VIEW,
                          turns_left=True, short_budgets=0.3, progress=False)
    old = tmp_path / "old"  # a folder written before the options were recorded counts as built without them
    build_expert_data(val, old, limit=1, view_size=VIEW, progress=False)
    info = json.loads((old / DATA_FILE).read_text())
    (old / DATA_FILE).write_text(json.dumps({k: v for k, v in info.items() if k not in ("turns_left", "short_budgets")}))
    assert build_expert_data(val, old, limit=2, view_size=VIEW, progress=False)["new"] == 1
    with pytest.raises(ExpertDataError, match="turns_left: False != True"):
        build_expert_data(val, old, limit=2, view_size=VIEW, turns_left=True, progress=False)


@pytest.mark.parametrize("share", [1.5, -0.1, float("nan"), True, "0.3"])
def test_a_share_outside_0_1_is_one_clear_error(val, tmp_path, share):
    with pytest.raises(ExpertDataError, match=r"--short-budgets must be a share in \[0, 1\]"):
        build_expert_data(val, tmp_path / "d", limit=1, turns_left=True, short_budgets=share, progress=False)
    assert not (tmp_path / "d").exists()


def test_the_cli_takes_the_options_and_refuses_short_budgets_without_turns_left(tmp_path, capsys):
    command = ["data", "experts", "--suite", "synth:val", "--limit", "1", "--view-size", "112x63", "--no-progress"]
    assert main([*command, "--out", str(tmp_path / "bad"), "--short-budgets", "0.3"]) == 2
    assert "--short-budgets 0.3 needs --turns-left" in capsys.readouterr().err and not (tmp_path / "bad").exists()
    assert main([*command, "--out", str(tmp_path / "good"), "--turns-left", "--short-budgets", "0.3"]) == 0
    info = json.loads((tmp_path / "good" / DATA_FILE).read_text())
    assert info["turns_left"] is True and info["short_budgets"] == 0.3


def test_the_note_is_refused_for_the_hstar_chat_and_bad_budgets_and_turns_are_named():
    with pytest.raises(ValueError, match="not for structure 'hstar'"):
        EpisodeChat("HOS", "Find it.", structure="hstar", max_turns=10)
    with pytest.raises(VLMError, match="not for chat=hstar"):
        VLMAgent(ScriptedPolicy([]), chat="hstar", turns_left=True)
    agent = VLMAgent(ScriptedPolicy([]), turns_left=True)
    with pytest.raises(VLMError, match="not for the hstar chat"):  # the default chat under --preset hstar
        agent.reset({"kind": "HOS", "instruction": "Find it.", "max_turns": 10, "strict": "hstar"})
    with pytest.raises(VLMError, match="expected a true/false value"):
        VLMAgent(ScriptedPolicy([]), turns_left="sometimes")
    for bad in (0, True, 2.5):
        with pytest.raises(ValueError, match="max_turns must be a positive number of turns"):
            EpisodeChat("HOS", "Find it.", max_turns=bad)
    chat = EpisodeChat("HOS", "Find it.", max_turns=2)
    with pytest.raises(ValueError, match="observation has no 'turn'"):
        chat.observe({"image": np.zeros((8, 8, 3), np.uint8), "heading": (0.0, 0.0)})
    with pytest.raises(ValueError, match="'turn' 2 is beyond the budget of 2 turns"):
        chat.observe(_observation(2))


def test_sft_records_the_chat_options_with_the_model(tiny_model_dir, short_dir, tmp_path):
    from panoseek.training.sft import SFTOptions, train_sft

    assert train_sft(tiny_model_dir, short_dir, tmp_path / "run", SFTOptions(max_steps=1, save_steps=1, batch_size=1),
                     progress=False)["finished"]
    assert json.loads((tmp_path / "run" / "final" / "panoseek_sft.json").read_text()) == {
        "prompt_format": "no_think", "chat": "compact", "history": 2, "turns_left": True, "short_budgets": 1.0}
