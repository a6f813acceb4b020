"""The ``"hstar"`` compatibility mode, held to vectors recorded from the released H* environment.

``tests/data/hstar_parser_vectors.json``, ``hstar_judge_vectors.json`` and
``hstar_sampling_vectors.json`` hold generated inputs and what the released code (github.com/humanoid-vstar/hstar,
``vagen/env/hstar/env.py``) did with them: the data, never the code. Every case must
agree, except the deliberate differences listed here with their reasons (and in
docs/environment.md with their counts).
"""

from __future__ import annotations

import argparse
import json
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from conftest import make_task, smooth_panorama
from gymnasium.utils.env_checker import check_env
from hypothesis import given, settings
from hypothesis import strategies as st

from panoseek.cli import main
from panoseek.envs import judge
from panoseek.envs.env import HSTAR_CROSSHAIR_ARM_PX, PanoramaSearchEnv
from panoseek.envs.eval.records import IDENTITY_KEYS, config_mismatch
from panoseek.envs.geometry import AngularWindow, clamp_pitch, lonlat_to_pixel, view_pixel_lonlat, wrap_yaw
from panoseek.envs.panorama import save_image
from panoseek.envs.prompts import (
    HSTAR_VIEW,
    feedback_message,
    hstar_first_message,
    hstar_system_prompt,
    hstar_turn_message,
)
from panoseek.envs.protocol import HSTAR, PROMPT_FORMATS, ActionProtocol, parse_action
from panoseek.envs.render import exact_maps
from panoseek.envs.rollout import EpisodeSettings, EpisodeSpec, play
from panoseek.envs.task import Task
from panoseek.envs.wrappers import TextActions
from panoseek.evaluate_cli import PRESETS, add_commands, command_line, episode_settings

DATA = Path(__file__).parent / "data"
PARSER_CASES = json.loads((DATA / "hstar_parser_vectors.json").read_text())["cases"]
JUDGE_CASES = json.loads((DATA / "hstar_judge_vectors.json").read_text())["cases"]

# Deliberate differences of the parser: a submitted |pitch| > 90 is clamped to +-90 and judged
# (H* judges the raw pitch, which lies in no window; see parse_hstar). Everything else agrees.
PARSER_DIFFERENCES = {"submitted pitch clamped to [-90, 90]": 6}

# Deliberate differences of the judge, by reason (first that applies), with their case counts.
JUDGE_DIFFERENCES = {
    # Task refuses a yaw range that spans more than one turn at load, naming the field (H* judges
    # [10, 400] as the 30-degree window [10, 40]).
    "yaw range over one turn: refused at load": 42,
    # Known fault: H* leaves the HPS tolerance of 10 on the instance for later HOS episodes.
    "HPS tolerance leaking into a later HOS episode": 2,
    # A [0, 360] range is the whole circle here; H* normalises it to [0, 0].
    "full-circle yaw range": 40,
    # H* judges the raw submitted pitch (no window holds |pitch| > 90); here it is clamped.
    "submitted pitch clamped to [-90, 90]": 14,
    # Known fault: for a yaw window through 0/360 H* declares success without the pitch check.
    "wrapping yaw window skips the pitch check": 79,
    # A reversed range [p0, p1] with p0 > p1 is the interval between them here; H* takes its
    # negative width as narrow and judges centre +- 20.
    "reversed pitch range": 2,
}


def _clamp(value: float, limit: float = 90.0) -> float:
    return max(-limit, min(limit, value))


def _parser_difference(case: dict, ours) -> str | None:
    """None when panoseek's hstar parser agrees with H* on the case, else the reason."""
    theirs = case["action"]
    if theirs is None:
        return None if not ours.valid else "executed here, refused by H*"
    if not ours.valid or ours.kind != theirs["kind"]:
        return f"H* executed {theirs}, here {ours}"
    if ours.well_formed != case["format_rewarded"]:
        return "format reward flag"
    if theirs["kind"] == "rotate":  # the same turn from every pitch (pitch clamps after a turn)
        same = (ours.yaw - theirs["yaw"]) % 360 == 0 and all(
            clamp_pitch(start + ours.pitch) == clamp_pitch(start + theirs["pitch"]) for start in (-90, 0, 90)
        )
        return None if same else "rotation angles"
    if wrap_yaw(ours.yaw) != theirs["yaw"]:
        return "submitted yaw"
    if ours.pitch == theirs["pitch"]:
        return None
    if abs(theirs["pitch"]) > 90 and ours.pitch == _clamp(theirs["pitch"]):
        return "submitted pitch clamped to [-90, 90]"
    return "submitted pitch"


def test_hstar_parser_reproduces_every_recorded_reply():
    differences = Counter()
    for case in PARSER_CASES:
        ours = ActionProtocol(case["format"], strict=HSTAR).parse(case["reply"])
        reason = _parser_difference(case, ours)
        if reason is not None:
            assert reason in PARSER_DIFFERENCES, (case["format"], case["reply"][:200], reason)
            differences[reason] += 1
    assert dict(differences) == PARSER_DIFFERENCES
    assert {case["format"] for case in PARSER_CASES} == set(PROMPT_FORMATS) and len(PARSER_CASES) > 600


def test_panoseek_strict_parser_refuses_much_that_hstar_executes():
    """Strict mode is panoseek's own exact format, not H*'s: it refuses replies H* executes."""
    refused = [case for case in PARSER_CASES if case["action"] and not parse_action(
        case["reply"], strict=True, prompt_format=case["format"]).valid]
    assert len(refused) == 177
    assert any(case["reply"] == "<answer>rotate(30,0)</answer>" for case in refused)  # missing <think>


def test_hstar_steps_give_hstars_headings_and_direction_lines():
    """Through TextActions: the heading after each reply, whether it ended the episode, and the
    direction line of the feedback (H* words it "Last action executed successfully, <line>")."""
    task = make_task("hos", panorama=smooth_panorama(64), start_yaws=(0.0,), levels=(2,))
    envs = {fmt: TextActions(PanoramaSearchEnv([task], view_size=(16, 9)), strict=HSTAR, prompt_format=fmt)
            for fmt in PROMPT_FORMATS}
    for case in PARSER_CASES:
        env = envs[case["format"]]
        env.reset(seed=0)
        _, _, terminated, _, info = env.step(case["reply"])
        assert terminated == case["done"], case["reply"][:200]
        if case["action"] is None:
            assert info["feedback"] == "The action was not carried out. Decide your next action."
            assert case["feedback"] == "Last action is not executed successfully."
        elif not terminated:
            assert list(info["heading"]) == case["heading"], case["reply"][:200]
            line = case["feedback"].removeprefix("Last action executed successfully, ")
            assert info["feedback"] == f"The action was carried out; {line}. Decide your next action."


def _task(case: dict) -> Task:
    pitch = case["pitch_range"]
    return Task(id="t", kind=case["kind"], instruction="x", panorama=np.zeros((2, 4, 3), np.uint8),
                yaw_range=tuple(case["yaw_range"]), pitch_range=None if pitch is None else tuple(pitch),
                start_yaws=(0.0,), levels=(0,))


def _judge_difference(case: dict) -> str | None:
    """None when panoseek's judge (through the hstar parser) agrees with H*, else the reason."""
    try:
        task = _task(case)
    except ValueError:
        return "yaw range over one turn: refused at load"
    yaw, pitch = case["submit"]
    action = ActionProtocol(strict=HSTAR).parse(f"<think>x</think><answer>submit({yaw},{pitch})</answer>")
    ours = judge.is_success(task, wrap_yaw(action.yaw), action.pitch)
    if ours == case["success"]:
        return None
    y0, y1 = case["yaw_range"]
    window = judge.yaw_window(task)
    if case["after_hps"]:
        return "HPS tolerance leaking into a later HOS episode"
    if abs(y1 - y0) >= 360:
        return "full-circle yaw range"
    wraps = window.centre - window.half_width < 0 or window.centre + window.half_width >= 360
    if case["success"] and wraps and window.contains(wrap_yaw(yaw)):
        return "wrapping yaw window skips the pitch check"
    if ours and abs(pitch) > 90:
        return "submitted pitch clamped to [-90, 90]"
    p0, p1 = case["pitch_range"] or (0, 0)
    if p0 - p1 >= 2 * judge.PITCH_TOLERANCE:
        narrow = AngularWindow((p0 + p1) / 2, judge.PITCH_TOLERANCE, wraps=False)
        if narrow.contains(pitch) == case["success"]:
            return "reversed pitch range"
    return "not explained"


def test_judge_agrees_with_hstar_except_the_listed_differences():
    differences = Counter(reason for case in JUDGE_CASES if (reason := _judge_difference(case)) is not None)
    assert dict(differences) == JUDGE_DIFFERENCES
    assert len(JUDGE_CASES) - sum(differences.values()) == 714


def test_parse_hstar_never_raises_and_stays_linear_on_hostile_text():
    hostile = [
        "<think>" + "</think><answer>" * 70_000,
        "<think><observation>" * 50_000 + "</observation><reasoning>" * 50_000,
        "<answer>" * 100_000 + "</answer>" * 100_000,
        "<answer>rotate(" + "1" * 1_000_000 + ",0)</answer>",
        "<answer>" + "|" * 1_000_000 + "</answer>",
        "x" * 1_000_000,
    ]
    for text in hostile:
        for fmt in PROMPT_FORMATS:
            action = parse_action(text, strict=HSTAR, prompt_format=fmt)
            assert action.kind == "invalid" and 0 < len(action.error) < 300
    protocol = ActionProtocol(strict=HSTAR)
    assert protocol.hstar and protocol.parse({"submit": 1, "yaw": 10, "pitch": 0}).valid
    assert "string or a dict" in protocol.parse(None).error
    with pytest.raises(ValueError, match="strict must be"):
        ActionProtocol(strict="h*")


_PIECES = st.sampled_from(
    ["<think>", "</think>", "<answer>", "</answer>", "<observation>", "</observation>", "<reasoning>", "</reasoning>",
     "<image>", "rotate", "submit", "(", ")", ",", "|", " ", "\n", "_", "+", "-", "9" * 400, "\uff13", "\u0663", "0", "5"]
)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=200), st.lists(_PIECES, max_size=30).map("".join)), st.sampled_from(PROMPT_FORMATS))
def test_parse_hstar_never_raises_and_valid_actions_stay_in_the_action_space(text, prompt_format):
    action = parse_action(text, strict=HSTAR, prompt_format=prompt_format)
    if action.valid:
        assert abs(action.yaw) <= 360 and abs(action.pitch) <= 360 and action.error == ""
        assert action.kind == "rotate" or abs(action.pitch) <= 90
    else:
        assert action.error and not action.well_formed


def test_hstar_prompts_have_a_worked_example_and_repeat_instruction_and_format_every_turn():
    for kind in ("HOS", "HPS"):
        for fmt in PROMPT_FORMATS:
            system = hstar_system_prompt(kind, fmt)
            assert all(f"Round {n}:" in system for n in range(1, 5)) and "rotate(yaw:int,pitch:int)" in system
            replies = [line.removeprefix("For example: ") for line in system.splitlines()
                       if line.endswith("</answer>") and "<answer>...</answer>" not in line]
            assert len(replies) == 4  # three rounds and the format block's example
            assert all(parse_action(reply, strict=HSTAR, prompt_format=fmt).well_formed for reply in replies)
            assert all(parse_action(reply, strict=True, prompt_format=fmt).well_formed for reply in replies)
    first = hstar_first_message("Find the red clock.", "no_think")
    turn = hstar_turn_message("Find the red clock.", "no_think", "rotate(30,0)", feedback_message(True, 30, 0), False)
    for message in (first, turn):
        assert HSTAR_VIEW in message and "Instruction: Find the red clock." in message and "<answer>...</answer>" in message
    assert "rotate(30,0)" in turn and "(yaw,pitch) is (30,0)" in turn
    done = hstar_turn_message("Find the red clock.", "no_think", "", "The episode is over.", True)
    assert HSTAR_VIEW not in done and "none" in done and "<answer>...</answer>" in done
    assert "(yaw,pitch)" not in feedback_message(False, 10, 0, "bad", hstar=True)


def test_text_actions_in_hstar_mode_speak_hstars_structure():
    task = make_task("hos", panorama=smooth_panorama(64))
    env = TextActions(PanoramaSearchEnv([task], view_size=(16, 9)), strict=HSTAR)
    obs, _ = env.reset(seed=0, options={"task_index": 0, "start_index": 0})
    assert obs["prompt"].startswith(hstar_system_prompt("HOS")) and "Find the red clock." in obs["prompt"]
    assert env.observation_space.contains(obs)
    obs, _, _, _, info = env.step("<answer>rotate(30,0,5)</answer>")  # H*'s loose brackets; no <think>
    assert info["valid_action"] and not info["well_formed"] and info["heading"] == (30.0, 0.0)
    assert "rotate(30,0)" in obs["prompt"] and "Instruction: Find the red clock." in obs["prompt"]
    obs, _, _, _, info = env.step("<think>x</think><answer>turn left</answer>")
    assert "The action was not carried out." in obs["prompt"] and "(yaw,pitch)" not in info["feedback"]
    assert env.observation_space.contains(obs)
    _, reward, terminated, _, info = env.step("<think>x</think><answer>submit(90,95)</answer>")
    assert terminated and info["submitted"] == (90.0, 90.0) and reward == judge.FORMAT_REWARD  # clamped, missed


class _Scripted:
    """Replies a fixed list of texts, one per turn."""

    def __init__(self, replies):
        self.replies = list(replies)

    def reset(self, task_info):
        self.task_info = task_info

    def act(self, observation):
        return self.replies.pop(0)


def test_the_rollout_loop_reads_replies_with_the_runs_parser():
    task = make_task("hos", panorama=smooth_panorama(64))
    spec = EpisodeSpec(0, 0, "hos#0", 0)
    replies = ["<answer>rotate(90,0)|submit(1,1)</answer>", "<answer>submit(90,0)</answer>"]  # no <think>
    for strict, success in ((HSTAR, True), (True, False)):
        env = PanoramaSearchEnv([task], view_size=(16, 9), max_turns=2, diagnostics=True)
        (rollout,) = play([env], [_Scripted(replies)], [spec], strict=strict)
        assert rollout.record["success"] is success and rollout.task_info["strict"] == strict


def _eval_args(*flags: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_commands(parser.add_subparsers())
    return parser.parse_args(["eval", "--agent", "random", "--suite", "synth:test", "--out", "runs/x", *flags])


def test_preset_hstar_fixes_hstars_evaluation_settings():
    settings = episode_settings(_eval_args("--preset", "hstar", "--seed", "3"))
    assert settings == EpisodeSettings(view_size=(1920, 1080), max_turns=10, seed=3, strict=HSTAR,
                                       crosshair=HSTAR_CROSSHAIR_ARM_PX)
    assert PRESETS["hstar"]["crosshair"] == 10
    assert "--preset hstar" in command_line(_eval_args("--preset", "hstar"))
    assert episode_settings(_eval_args()) == EpisodeSettings()
    for flags in (["--strict"], ["--view-size", "448x448"], ["--max-turns", "5"]):
        with pytest.raises(ValueError, match="--preset hstar fixes"):
            episode_settings(_eval_args("--preset", "hstar", *flags))


def test_runs_of_different_parsers_or_crosshairs_never_merge():
    assert {"strict", "crosshair", "view_size", "max_turns"} <= set(IDENTITY_KEYS)
    base = {"strict": False, "crosshair": True}
    assert config_mismatch(base, {**base, "strict": HSTAR}) and config_mismatch(base, {**base, "crosshair": 10})


def test_crosshair_arm_length_is_a_parameter_with_hstars_size_in_the_preset():
    task = make_task("hos", panorama=np.zeros((64, 128, 3), np.uint8))
    green = np.array([0, 255, 0], np.uint8)
    for crosshair, arm in ((HSTAR_CROSSHAIR_ARM_PX, 10), (True, 38)):
        env = PanoramaSearchEnv([task], view_size=(1920, 1080), crosshair=crosshair, render_mode="rgb_array")
        env.reset(seed=0)
        view = env.render()
        row, column = view[540], view[:, 960]
        assert (row[960 - arm] == green).all() and (row[960 + arm] == green).all()
        assert not (row[960 - arm - 1] == green).all() and not (column[540 + arm + 1] == green).all()
    env = PanoramaSearchEnv([task], view_size=(64, 36), crosshair=False)
    assert not (env.reset(seed=0)[0]["image"] == green).all(axis=-1).any()
    for bad in (0, -3, 2.5, "10", None):
        with pytest.raises(ValueError, match="crosshair"):
            PanoramaSearchEnv([task], crosshair=bad)


def test_clamped_submission_is_judged_as_straight_up():
    """The documented deliberate difference, shown on one case: H* fails submit(120,95) on a
    target near the zenith (95 is in no window); here it is judged as pitch 90."""
    case = next(c for c in JUDGE_CASES if c["submit"] == [120, 95] and c["pitch_range"] == [75, 85])
    assert case["success"] is False
    action = ActionProtocol(strict=HSTAR).parse("<think>x</think><answer>submit(120,95)</answer>")
    assert action.pitch == 90.0 and judge.is_success(_task(case), action.yaw, action.pitch)


def test_sampling_positions_match_hstars_renderer_up_to_the_half_pixel_convention():
    """H* casts each view pixel's ray through its corner and puts longitude 0 at column W/2;
    panoseek uses pixel centres (DESIGN.md). Shifted by that half pixel the positions agree to
    float32 precision; unshifted, panoseek samples within ~2 px of H* (latitudes below 80)."""
    data = json.loads((DATA / "hstar_sampling_vectors.json").read_text())
    (pano_w, pano_h), (width, height), fov = data["panorama_size"], data["view_size"], data["fov_deg"]
    worst = 0.0
    for view in data["views"]:
        columns, rows, their_u, their_v = (np.array(values, np.float64) for values in zip(*view["pixels"]))
        lon, lat = view_pixel_lonlat(columns - 0.5, rows - 0.5, view["yaw"], view["pitch"], fov, width, height)
        u, v = lonlat_to_pixel(lon, lat, pano_w, pano_h)
        away_from_pole = np.abs(lat) < 89.5
        du = (their_u - 0.5 - u + pano_w / 2) % pano_w - pano_w / 2
        assert np.abs(du[away_from_pole]).max() < 0.01 and np.abs(their_v - 0.5 - v).max() < 0.01
        maps = exact_maps(view["yaw"], view["pitch"], fov, (width, height), (pano_h, pano_w))
        ours = maps[rows.astype(int), columns.astype(int)]
        _, centre_lat = view_pixel_lonlat(columns, rows, view["yaw"], view["pitch"], fov, width, height)
        inner = np.abs(centre_lat) < 80
        du = (their_u - ours[:, 0] + pano_w / 2) % pano_w - pano_w / 2
        worst = max(worst, np.abs(du[inner]).max(), np.abs(their_v - ours[:, 1])[inner].max())
    assert worst < 2.5


def test_eval_with_the_hstar_preset_records_its_settings_and_is_never_mixed_with_another_run(tmp_path, capsys):
    save_image(tmp_path / "pano.png", smooth_panorama(128))
    item = {"image": "pano.png", "instruction": "Find the clock.", "kind": "HOS", "yaw_range": [80, 100],
            "pitch_range": [-5, 5], "levels": [0, 1, 2, 2], "id": "clock"}
    (tmp_path / "tasks.jsonl").write_text(json.dumps(item) + "\n")
    command = ["eval", "--agent", "oracle", "--suite", f"jsonl:{tmp_path / 'tasks.jsonl'}", "--out", str(tmp_path / "run"),
               "--limit", "2", "--quiet"]
    assert main([*command, "--preset", "hstar"]) == 0
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert (run["view_size"], run["crosshair"], run["strict"], run["max_turns"]) == ([1920, 1080], 10, "hstar", 10)
    assert "--preset hstar" in run["command"]
    assert main([*command, "--view-size", "1920x1080"]) == 2  # same views, other parser and crosshair
    assert "holds a different run" in capsys.readouterr().err
    assert main([*command, "--preset", "hstar", "--strict"]) == 2
    assert "--preset hstar fixes --strict" in capsys.readouterr().err


def test_text_actions_in_hstar_mode_pass_the_gymnasium_checker():
    tasks = [make_task("hos", panorama=smooth_panorama(64)), make_task("hps", "HPS", panorama=smooth_panorama(64))]
    for prompt_format in PROMPT_FORMATS:
        env = TextActions(PanoramaSearchEnv(tasks, view_size=(16, 9)), strict=HSTAR, prompt_format=prompt_format)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            check_env(env, skip_render_check=True)
        assert all("is different from the unwrapped version" in str(w.message) for w in caught)
