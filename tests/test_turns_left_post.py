"""The turns-left note after SFT: DPO pairs of ``--turns-left`` expert data are sampled at the
expert rows' chat, note and episode budget included (short budgets too), and say so in
``preferences.json`` and the DPO model's ``panoseek_sft.json``; GRPO with ``turns_left`` plays
chats whose user turns carry the note, records it in ``panoseek_grpo.json``, resumes run
folders from before the option, and refuses it for the hstar chat with one clear error."""

from __future__ import annotations

import json
import shutil

import pytest

from panoseek.agents.chat import turns_left_note
from panoseek.envs.eval.records import read_json
from panoseek.training import dpo, grpo
from panoseek.training.dataset import read_rows
from panoseek.training.expert_data import EPISODES_FILE, build_expert_data
from panoseek.training.grpo import GRPOError, GRPOOptions
from panoseek.training.preferences import PREFERENCES_FILE, PreferenceError, build_preferences, read_pairs
from panoseek.training.trajectories import RecordingPolicy

VIEW = (112, 63)
LIMIT = 6  # at share 0.5 the first six synth:val episodes draw budgets 10, 10, 8, 9, 10, 3
INVALID = "look left"  # no action: every sampled reply is rejected, so every turn gives a pair
SMALL = dict(suite="synth:val", tasks=2, batch=2, group=2, max_turns=3, history=2, max_new_tokens=8,
             view_size=VIEW, temperature=0.7, max_steps=1, save_steps=1)


class ScriptedPolicy:
    """Stands in for the model's sampler: every reply is ``reply``."""

    def __init__(self, reply: str) -> None:
        self.reply = reply
        self.shown: list[list[dict]] = []  # the messages of every chat it was asked to answer

    def generate(self, chats, seed=None):
        self.shown += [chat.messages()[0] for chat in chats]
        return [self.reply] * len(chats)


def _user_endings(messages: list[dict]) -> list[str]:
    return [m["content"][-1]["text"] for m in messages if m["role"] == "user"]


@pytest.fixture(scope="module")
def experts(tmp_path_factory):
    """``--turns-left --short-budgets 0.5`` expert data: full and short budgets."""
    from panoseek.scenes import load_suite

    out = tmp_path_factory.mktemp("post") / "experts"
    build_expert_data(load_suite("synth:val"), out, limit=LIMIT, prompt_format="no_think", chat="compact",
                      view_size=VIEW, turns_left=True, short_budgets=0.5, progress=False)
    return out


@pytest.fixture(scope="module")
def pairs(experts, tmp_path_factory):
    out = tmp_path_factory.mktemp("post") / "pairs"
    policy = ScriptedPolicy(INVALID)
    build_preferences(experts, policy, out, samples=1, progress=False)
    return out, policy.shown


def test_pairs_are_the_expert_rows_with_the_note_of_the_episode_budget(experts, pairs):
    pairs, shown = pairs
    rows = {row["id"]: row for row in read_rows(experts)}
    records = [json.loads(line) for line in (experts / EPISODES_FILE).read_text().splitlines()]
    budgets = {record["episode_id"]: record["max_turns"] for record in records if record["rows"]}
    assert any(budget < 10 for budget in budgets.values()) and 10 in budgets.values()  # short and full budgets
    by_pair = read_pairs(pairs)
    assert len(by_pair) == len(rows)  # every turn's reply is invalid, so every turn gives a pair
    for pair in by_pair:
        episode, turn, _ = pair["id"].rsplit("/", 2)
        assert pair["prompt"] == rows[f"{episode}/{turn}"]["messages"][:-1]
        endings = _user_endings(pair["prompt"])
        assert len(endings) == int(turn) + 1
        for index, ending in enumerate(endings):  # the episode's budget, not the branch environment's (turn + 1)
            assert ending.endswith(turns_left_note(budgets[episode] - index))
    # what the sampler was shown is what the pairs hold (not only what the expert rows hold)
    assert sorted(map(_user_endings, shown)) == sorted(_user_endings(pair["prompt"]) for pair in by_pair)
    short = [pair for pair in by_pair if budgets[pair["id"].split("/")[0]] < 10]
    assert short, "no pair from a short-budget episode"


def test_the_pairs_record_the_chat_options_and_dpo_copies_them(experts, pairs):
    pairs, _ = pairs
    info = read_json(pairs / PREFERENCES_FILE)
    assert info["turns_left"] is True and info["short_budgets"] == 0.5
    assert dpo.chat_info(info, pairs) == {
        "prompt_format": "no_think", "chat": "compact", "history": 2, "turns_left": True, "short_budgets": 0.5,
        "dpo_pairs": str(pairs), "expert_data": str(experts.resolve())}
    old = {key: value for key, value in info.items() if key not in ("turns_left", "short_budgets")}
    assert dpo.chat_info(old, pairs)["turns_left"] is False and dpo.chat_info(old, pairs)["short_budgets"] == 0.0


def test_a_pairs_folder_from_before_the_options_resumes_as_built_without_them(experts, pairs, tmp_path):
    from panoseek.scenes import load_suite

    pairs, _ = pairs
    plain = tmp_path / "plain"  # expert data without the note, and a pairs folder whose info predates the options
    build_expert_data(load_suite("synth:val"), plain, limit=1, view_size=VIEW, progress=False)
    build_preferences(plain, ScriptedPolicy(INVALID), tmp_path / "old", samples=1, progress=False)
    info = read_json(tmp_path / "old" / PREFERENCES_FILE)
    assert info["turns_left"] is False and info["short_budgets"] == 0.0
    stripped = {key: value for key, value in info.items() if key not in ("turns_left", "short_budgets")}
    (tmp_path / "old" / PREFERENCES_FILE).write_text(json.dumps(stripped))
    assert build_preferences(plain, ScriptedPolicy(INVALID), tmp_path / "old", samples=1, progress=False)["new"] == 0
    noted = shutil.copytree(pairs, tmp_path / "noted")  # pairs of turns-left data, built (it says) without the note
    (noted / PREFERENCES_FILE).write_text(json.dumps({**read_json(noted / PREFERENCES_FILE), "turns_left": False}))
    with pytest.raises(PreferenceError, match="turns_left: False != True"):
        build_preferences(experts, ScriptedPolicy(INVALID), noted, samples=1, progress=False)


def test_grpo_plays_chats_whose_user_turns_carry_the_note(tiny_model_dir, tmp_path, monkeypatch):
    shown = []
    generate = RecordingPolicy.generate

    def recording(self, chats, seed=None):
        shown.extend((len(chat.turns), chat.messages()[0]) for chat in chats)
        return generate(self, chats, seed)

    monkeypatch.setattr(RecordingPolicy, "generate", recording)
    options = GRPOOptions(**SMALL, chat="compact", turns_left=True)
    trainer, _ = grpo.make_trainer(tiny_model_dir, tmp_path / "run", options, progress=False)
    trajectories = trainer._play(trainer._episode_specs([{"task_index": 0}, {"task_index": 0}]))
    assert sum(len(t.turns) for t in trajectories) == len(shown) > len(trajectories)  # more than one turn each
    for turns, messages in shown:
        endings = _user_endings(messages)
        assert len(endings) == turns
        for index, ending in enumerate(endings):
            assert ending.endswith(turns_left_note(SMALL["max_turns"] - index))
    assert read_json(tmp_path / "run" / grpo.RUN_FILE)["turns_left"] is True


def test_grpo_records_the_note_with_the_model():
    assert grpo.chat_info(GRPOOptions(prompt_format="no_think", chat="compact", turns_left=True)) == {
        "prompt_format": "no_think", "history": 2, "chat": "compact", "turns_left": True}
    assert grpo.chat_info(GRPOOptions())["turns_left"] is False


def test_a_grpo_run_folder_from_before_the_option_resumes_without_the_note(tiny_model_dir, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    config = {**grpo._identity(tiny_model_dir, GRPOOptions(**SMALL)), "suite_fingerprint": "f"}
    (out / grpo.RUN_FILE).write_text(json.dumps({k: v for k, v in config.items() if k != "turns_left"}))
    grpo.check_out_dir(out, config)  # the same run: it ran without the note
    noted = {**grpo._identity(tiny_model_dir, GRPOOptions(**SMALL, turns_left=True)), "suite_fingerprint": "f"}
    with pytest.raises(GRPOError, match="holds another training run \\(turns_left: False != True\\)"):
        grpo.check_out_dir(out, noted)
    with pytest.raises(GRPOError, match="max_turns: 3 != 4"):
        grpo.check_out_dir(out, {**config, "max_turns": 4})


def test_grpo_refuses_the_note_for_the_hstar_chat_at_option_check():
    for options in (GRPOOptions(turns_left=True, chat="hstar"), GRPOOptions(turns_left=True, strict="hstar")):
        with pytest.raises(GRPOError, match="--turns-left is not for the hstar chat"):
            options.check()
    GRPOOptions(turns_left=True, strict="hstar", chat="compact").check()  # H*'s judge, a chat that takes the note
    with pytest.raises(GRPOError, match="--turns-left must be True or False, got 'yes'"):
        GRPOOptions(turns_left="yes").check()


def test_the_grpo_command_line_takes_turns_left_and_refuses_it_with_hstar(tiny_model_dir, tmp_path, capsys):
    import argparse

    from panoseek.cli import main
    from panoseek.training.grpo_cli import _options, add_grpo_command

    parser = argparse.ArgumentParser()
    add_grpo_command(parser.add_subparsers())
    assert _options(parser.parse_args(["grpo", "--model", "m", "--out", "o", "--turns-left"])) == GRPOOptions(
        turns_left=True)
    assert _options(parser.parse_args(["grpo", "--model", "m", "--out", "o"])).turns_left is False
    [command] = parser._subparsers._group_actions[0].choices.values()
    [flag] = [action for action in command._actions if "--turns-left" in action.option_strings]
    assert "evaluate the model with --agent-arg turns_left=true" in flag.help
    code = main(["train", "grpo", "--model", str(tiny_model_dir), "--out", str(tmp_path / "run"), "--chat", "hstar",
                 "--turns-left"])
    assert code == 2 and "--turns-left is not for the hstar chat" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
