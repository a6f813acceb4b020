"""The opt-in zoom action: views, turn accounting, cap, refusal under H*, forms, records, no free look."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
from conftest import make_task, smooth_panorama

from panoseek.envs.agent import rotate, submit, zoom
from panoseek.envs.env import PanoramaSearchEnv
from panoseek.envs.eval.records import RecordsError, merge_folders
from panoseek.envs.eval.report import load_results
from panoseek.envs.eval.runner import run_benchmark
from panoseek.envs.protocol import (
    ZOOMS_PER_TURN, ActionProtocol, ParsedAction, check_action, parse_action, parse_structured,
)
from panoseek.envs.render import render_view
from panoseek.envs.rollout import EpisodeSettings, episode_spec, play, take_turn
from panoseek.envs.wrappers import TextActions

VIEW = (48, 27)
PANO = smooth_panorama(128)


def _env(**kwargs):
    task = make_task("hos", panorama=PANO, yaw_range=(80.0, 100.0), pitch_range=(-5.0, 5.0))
    return PanoramaSearchEnv([task], view_size=VIEW, **{"zoom": True, **kwargs})


def _reset(env, start_index=0):
    return env.reset(seed=0, options={"task_index": 0, "start_index": start_index})


def test_a_zoom_view_is_render_view_with_the_narrower_fov_and_keeps_heading_and_turn():
    env = _env(diagnostics=True)
    first, _ = _reset(env, start_index=1)  # start yaw 90
    assert first["zoom"].tolist() == [0.0, 0.0, 0.0]
    obs, reward, terminated, truncated, info = env.step(zoom(100.0, 5.0, 30.0))
    np.testing.assert_array_equal(obs["image"], render_view(PANO, 100.0, 5.0, fov_deg=30.0, size=VIEW))
    assert obs["zoom"].tolist() == [100.0, 5.0, 30.0] and info["zoom"] == (100.0, 5.0, 30.0)
    assert obs["heading"].tolist() == [90.0, 0.0] and info["turn"] == 0 and info["valid_action"]
    assert (reward, terminated, truncated) == (0.0, False, False)
    assert "zoom was carried out" in info["feedback"] and "no turn" in info["feedback"]
    assert env.observation_space.contains(obs)


def test_zooms_use_no_turn_and_the_next_action_shows_the_heading_view_again():
    env = _env(max_turns=2)
    first, _ = _reset(env)
    for _ in range(ZOOMS_PER_TURN):
        _, _, _, truncated, info = env.step(zoom(5.0, 0.0, 20.0))
        assert info["turn"] == 0 and not truncated
    obs, _, _, truncated, info = env.step(rotate(0.0, 0.0))
    assert info["turn"] == 1 and not truncated and obs["zoom"].tolist() == [0.0, 0.0, 0.0]
    np.testing.assert_array_equal(obs["image"], first["image"])
    _, _, _, truncated, info = env.step(zoom(-5.0, 0.0, 20.0))  # the cap starts again after a turn
    assert info["valid_action"] and info["turn"] == 1 and not truncated
    _, _, _, truncated, info = env.step(rotate(10.0, 0.0))
    assert truncated and info["turn"] == 2


def test_a_zoom_beyond_the_cap_is_invalid_and_uses_the_turn():
    env = _env()
    first, _ = _reset(env)
    for _ in range(ZOOMS_PER_TURN):
        env.step(zoom(0.0, 0.0, 10.0))
    obs, _, _, _, info = env.step(zoom(0.0, 0.0, 10.0))
    assert not info["valid_action"] and f"at most {ZOOMS_PER_TURN} zooms" in info["action_error"]
    assert info["turn"] == 1 and obs["heading"].tolist() == [0.0, 0.0]
    np.testing.assert_array_equal(obs["image"], first["image"])


@pytest.mark.parametrize(
    ("action", "error"),
    [
        (zoom(0.0, 0.0, 100.0), "narrower than the view"),
        (zoom(0.0, 0.0, 4.0), "zoom fov 4.0 is not"),
        (zoom(0.0, 95.0, 10.0), "zoom pitch 95"),
        (zoom(180.0, 0.0, 10.0), "outside the current view"),
        ({**zoom(0.0, 0.0, 10.0), "submit": 1}, "both zoom and submit"),
        ({"submit": 0, "yaw": 0.0, "pitch": 0.0, "fov": 10.0}, "expected a dict"),
    ],
)
def test_bad_zooms_are_invalid_actions_naming_the_rule(action, error):
    env = _env()
    _reset(env)
    _, _, _, _, info = env.step(action)
    assert not info["valid_action"] and error in info["action_error"] and info["turn"] == 1


def test_zoom_is_off_by_default_and_refused_under_the_hstar_protocol(tmp_path):
    env = _env(zoom=False)
    _reset(env)
    assert "zoom" not in env.observation_space.spaces and "zoom" not in env.action_space.spaces
    _, _, _, _, info = env.step(zoom(0.0, 0.0, 10.0))
    assert not info["valid_action"] and "not enabled" in info["action_error"]
    with pytest.raises(ValueError, match="refused under the H\\* protocol"):
        EpisodeSettings(zoom=True, strict="hstar")
    with pytest.raises(ValueError, match="refused under the H\\* protocol"):
        TextActions(_env(), strict="hstar")
    spec = episode_spec(env.tasks[0], 0, 0, 0)
    with pytest.raises(ValueError, match="refused under the H\\* protocol"):
        play([_env(diagnostics=True)], [_Zoomer()], [spec], strict="hstar")
    assert not parse_action("<think>a</think><answer>zoom(1,2,30)</answer>", strict="hstar").valid
    from panoseek.evaluate_cli import episode_settings

    args = argparse.Namespace(view_size=(448, 252), max_turns=10, seed=0, strict=False, zoom=True, preset="hstar")
    with pytest.raises(ValueError, match="--zoom .* refused under --preset hstar"):
        episode_settings(args)


def test_text_and_structured_zooms_are_one_action():
    expected = check_action("zoom", 10.0, -5.0, fov=30.0)
    assert expected == ParsedAction("zoom", 10.0, -5.0, 30.0, well_formed=True)
    assert parse_structured(zoom(10, -5, 30)) == expected
    for strict in (True, False):
        assert parse_action("<think>a</think><answer>zoom(10,-5,30)</answer>", strict=strict) == expected
    lenient = parse_action("<answer> Zoom( 10.0 , -5, 30 ).", strict=False)
    assert lenient == ParsedAction("zoom", 10.0, -5.0, 30.0, well_formed=False)
    assert not parse_action("<think>a</think><answer>zoom(10,-5,30.5)</answer>", strict=True).valid
    text_env, dict_env = _env(), _env()
    _reset(text_env), _reset(dict_env)
    by_text = take_turn(text_env, "<think>a</think><answer>zoom(10,-5,30)</answer>", ActionProtocol())
    by_dict = dict_env.step(zoom(10, -5, 30))
    np.testing.assert_array_equal(by_text[0]["image"], by_dict[0]["image"])
    assert by_text[4]["feedback"] == by_dict[4]["feedback"] and by_text[4]["zoom"] == by_dict[4]["zoom"]


def test_the_text_wrapper_explains_zoom_only_where_it_is_allowed():
    with_zoom, _ = TextActions(_env()).reset(seed=0, options={"task_index": 0, "start_index": 0})
    without, _ = TextActions(_env(zoom=False)).reset(seed=0, options={"task_index": 0, "start_index": 0})
    assert "zoom(yaw,pitch,fov)" in with_zoom["prompt"] and "zoom" not in without["prompt"]


def test_a_zoom_shows_only_pixels_the_current_view_already_shows():
    """A panorama dark everywhere but a bright patch just beyond the right edge of the
    start view: no zoom the env accepts can show any of it, and zooms toward it are refused."""
    panorama = np.zeros((256, 512, 3), np.uint8)
    lon = (np.arange(512) + 0.5) / 512 * 360 - 180
    lat = 90 - (np.arange(256) + 0.5) / 256 * 180
    panorama[np.ix_((lat > -20) & (lat < 20), (lon > 56) & (lon < 90))] = 255
    task = make_task("dark", panorama=panorama, start_yaws=(0.0,), levels=(2,))
    env = PanoramaSearchEnv([task], view_size=VIEW, zoom=True, crosshair=False)
    start, _ = env.reset(seed=0, options={"task_index": 0, "start_index": 0})
    assert start["image"].max() == 0
    rng = np.random.default_rng(0)
    accepted = 0
    for _ in range(40):
        env.reset(seed=0, options={"task_index": 0, "start_index": 0})
        action = zoom(rng.uniform(-60, 60), rng.uniform(-35, 35), rng.uniform(5, 99))
        obs, _, _, _, info = env.step(action)
        if info["valid_action"]:
            accepted += 1
            assert obs["image"].max() == 0, action
        else:
            assert "outside the current view" in info["action_error"]
    assert accepted >= 5
    env.reset(seed=0, options={"task_index": 0, "start_index": 0})
    assert not env.step(zoom(70.0, 0.0, 20.0))[4]["valid_action"]


class _Zoomer:
    """Zooms twice toward its heading each turn, turns right 90, and submits after three turns."""

    def reset(self, task_info):
        assert task_info.get("zooms_per_turn", ZOOMS_PER_TURN) == ZOOMS_PER_TURN
        self.calls = 0

    def act(self, observation):
        self.calls += 1
        yaw, pitch = (float(a) for a in observation["heading"])
        if observation["turn"] == 3:
            return submit(yaw, pitch)
        if self.calls % 3:
            return f"<think>look</think><answer>zoom({round(yaw)},{round(pitch)},20)</answer>"
        assert "zoom" not in observation or observation["zoom"][2] == 20.0
        return rotate(90.0, 0.0)


def _run(out, settings):
    tasks = [make_task("a", panorama=PANO), make_task("b", panorama=PANO, yaw_range=(200.0, 220.0))]
    return run_benchmark(tasks, _Zoomer, out, run_info={"suite": "test", "fingerprint": "f0", "agent": "zoomer"},
                         settings=settings, progress=False)


def test_zoom_runs_are_recorded_counted_marked_and_never_merged_with_plain_runs(tmp_path):
    summary = _run(tmp_path / "zoom", EpisodeSettings(view_size=VIEW, zoom=True))
    assert summary["zoom"] is True
    assert json.loads((tmp_path / "zoom" / "summary.json").read_text())["zoom"] is True
    assert json.loads((tmp_path / "zoom" / "run.json").read_text())["zoom"] is True
    records = [json.loads(line) for line in (tmp_path / "zoom" / "episodes.jsonl").read_text().splitlines()]
    for record in records:
        assert record["turns"] == 4 and record["zooms"] == 6 and len(record["actions"]) == 4
        assert len(record["headings"]) == 5 and [view["turn"] for view in record["zoom_views"]] == [0, 0, 1, 1, 2, 2]
    assert load_results(tmp_path / "zoom").label == "zoomer (zoom)"
    plain = _run(tmp_path / "plain", EpisodeSettings(view_size=VIEW))
    assert plain["zoom"] is False and load_results(tmp_path / "plain").label == "zoomer"
    assert plain["overall"]["agent_errors"] == 0 and plain["overall"]["invalid_actions"] > 0  # its zooms: refused
    with pytest.raises(RecordsError, match="zoom: True != False"):
        merge_folders(tmp_path / "mixed", [tmp_path / "zoom", tmp_path / "plain"])
    from panoseek.evaluate_cli import format_summary

    assert format_summary(summary).startswith("zoomer (zoom) on test")


def test_check_env_passes_with_zoom_on():
    import warnings

    from gymnasium.utils.env_checker import check_env

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(_env(), skip_render_check=True)
    assert [str(warning.message) for warning in caught] == []


def test_panoseek_eval_zoom_marks_the_run_and_refuses_the_hstar_preset(tmp_path, capsys):
    from panoseek.cli import main
    from panoseek.envs.panorama import save_image

    save_image(tmp_path / "pano.png", smooth_panorama(128))
    items = [{"image": "pano.png", "instruction": f"Find object {i}.", "kind": "HOS", "yaw_range": [80, 100],
              "pitch_range": [-5, 5], "levels": [0, 1, 2, 2], "id": f"task{i}"} for i in range(2)]
    (tmp_path / "tasks.jsonl").write_text("".join(json.dumps(item) + "\n" for item in items))
    command = ["eval", "--agent", "random", "--suite", f"jsonl:{tmp_path / 'tasks.jsonl'}", "--view-size", "32x18",
               "--quiet", "--out"]
    assert main([*command, str(tmp_path / "zoom"), "--zoom"]) == 0
    assert "random (zoom) on jsonl:" in capsys.readouterr().out
    run = json.loads((tmp_path / "zoom" / "run.json").read_text())
    assert run["zoom"] is True and run["command"].endswith("--zoom")
    assert main([*command, str(tmp_path / "hstar"), "--zoom", "--preset", "hstar"]) == 2
    assert "--zoom is an extension of the protocol and is refused under --preset hstar" in capsys.readouterr().err
