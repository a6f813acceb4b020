"""Reports: tables recomputed from hand-written episode records, curves, trajectory pictures, compare mode."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from conftest import make_task

from panoseek.cli import main
from panoseek.envs.panorama import save_image
from panoseek.envs.eval.figures import sample_episodes, trajectory_picture
from panoseek.envs.eval.report import ReportError, load_results, write_report
from panoseek.envs.eval.stats import (
    by_level, group_stats, mean_and_stderr, paired_difference, routine_stats, success_by_turn,
)
from panoseek.envs.task import HOS, HPS
from panoseek.scenes import load_suite


def record(task_id: str, start: int, kind: str, level: int, success: bool, turns: int, headings=None, submitted=(90.0, 0.0)):
    """An episode record in the runner's schema (only what a report reads is filled in)."""
    names = ("Easy", "Medium", "Hard") if kind == HOS else ("Easy", "Medium", "Hard", "Extreme")
    headings = headings or [[0.0, 0.0]] + [[30.0 * (t + 1), 0.0] for t in range(turns - 1)]
    actions = [
        {"turn": t, "raw": "rotate(30,0)", "parsed": {"kind": "rotate", "yaw": 30.0, "pitch": 0.0}, "valid": True, "heading": h}
        for t, h in enumerate(headings[1:])
    ]
    return {
        "episode_id": f"{task_id}#{start}", "task_id": task_id, "kind": kind, "level": level,
        "level_name": names[level], "start_index": start, "start_yaw": headings[0][0], "actions": actions,
        "headings": headings, "submitted": list(submitted) if submitted is not None else None,
        "success": success, "turns": turns, "yaw_error": 0.0 if success else 45.0,
        "pitch_error": None if kind == HPS else 0.0, "reward": 1.0 if success else 0.5,
        "timings": {}, "error": None,
    }  # fmt: skip


# 10 HOS episodes and 8 HPS episodes with known successes per level.
RECORDS = (
    [record(f"h{i}", 0, HOS, 0, i < 3, 2) for i in range(4)]        # Easy 3/4
    + [record(f"h{i}", 1, HOS, 1, i < 5, 3) for i in range(4, 6)]   # Medium 1/2
    + [record(f"h{i}", 2, HOS, 2, False, 10, submitted=None) for i in range(6, 10)]  # Hard 0/4
    + [record(f"p{i}", i % 4, HPS, i % 4, i % 4 != 3, 1 + i % 4) for i in range(8)]  # 2/2, 2/2, 2/2, 0/2
)  # fmt: skip


def write_results(directory, records=RECORDS, agent="sweep", suite="jsonl:tasks.jsonl", fingerprint="abc123", tail=""):
    directory.mkdir(parents=True, exist_ok=True)
    lines = "".join(json.dumps(r) + "\n" for r in records)
    (directory / "episodes.jsonl").write_text(lines + tail)
    (directory / "run.json").write_text(json.dumps({"agent": agent, "suite": suite, "fingerprint": fingerprint, "max_turns": 10}))
    return directory


def table_row(markdown: str, label: str) -> list[str]:
    """Cells of the success table's row for ``label`` (after the agent column)."""
    section = markdown[markdown.index("## Success rate") :]
    row = next(line for line in section.splitlines() if line.startswith(f"| {label} |"))
    return [cell.strip() for cell in row.strip("|").split("|")][1:]


def counts(records):
    stats = group_stats(records)
    return stats["episodes"], stats["successes"]


def test_table_counts_match_records():
    hos = [r for r in RECORDS if r["kind"] == HOS]
    assert counts(hos) == (10, 4)
    assert {name: counts(group) for name, group in by_level(hos, HOS).items()} == {"Easy": (4, 3), "Medium": (2, 1), "Hard": (4, 0)}
    hps = [r for r in RECORDS if r["kind"] == HPS]
    assert counts(hps) == (8, 6)
    assert [counts(group) for group in by_level(hps, HPS).values()] == [(2, 2)] * 3 + [(2, 0)]


def test_efficiency_statistics_count_rotation_and_first_sight():
    from panoseek.envs.eval.stats import seen_by_turn

    records = [
        {**record("a", 0, HOS, 0, True, 3), "rotation_deg": 60.0, "first_seen_turn": 0},
        {**record("b", 0, HOS, 2, False, 10, submitted=None), "rotation_deg": 300.0, "first_seen_turn": 4},
        {**record("c", 0, HOS, 2, False, 2), "rotation_deg": 30.0, "first_seen_turn": None},
    ]
    stats = group_stats(records)
    assert stats["mean_rotation_deg"] == 130.0 and stats["seen_rate"] == pytest.approx(2 / 3)
    assert stats["mean_first_seen_turn"] == 2.0 and stats["submitted_rate"] == pytest.approx(2 / 3)
    np.testing.assert_allclose(seen_by_turn(records, 5), [1 / 3, 1 / 3, 1 / 3, 1 / 3, 2 / 3])
    assert seen_by_turn(RECORDS, 5) is None  # records from before these fields: no curve, no guess


def test_success_by_turn_counts_successes_within_t_turns():
    curve = success_by_turn(RECORDS, 10)
    # successes: HOS 3 at turn 2, 1 at turn 3; HPS turns 1+i%4 for i%4 in 0..2 -> 2 each at turns 1, 2, 3
    expected_counts = np.array([2, 7, 10, 10, 10, 10, 10, 10, 10, 10])
    np.testing.assert_allclose(curve, expected_counts / len(RECORDS))


def test_mean_and_stderr_over_seeds():
    result = mean_and_stderr([0.1, 0.2, 0.3])
    assert result["n"] == 3 and result["mean"] == pytest.approx(0.2)
    assert result["stderr"] == pytest.approx(0.1 / np.sqrt(3))  # sample stdev 0.1
    assert mean_and_stderr([0.4, None, float("nan")]) == {"n": 1, "mean": 0.4, "stderr": None}


def test_report_markdown_and_pictures(tmp_path):
    results = load_results(write_results(tmp_path / "run"))
    out = write_report(results, trajectories=0)
    text = out.read_text()
    assert out == tmp_path / "run" / "report.md"
    assert "abc123" in text and "jsonl:tasks.jsonl" in text
    assert table_row(text, "sweep") == ["40.0", "75.0", "50.0", "0.0", "75.0", "100.0", "100.0", "100.0", "0.0"]
    assert table_row(text, "*episodes*") == ["10", "4", "2", "4", "8", "2", "2", "2", "2"]
    curve = tmp_path / "run" / "report_files" / "success_by_turn.png"
    assert curve.stat().st_size > 10_000
    image = load_panorama_like(curve)
    assert image.shape[0] >= 300 and image.shape[1] >= 800 and image.std() > 10


def load_panorama_like(path):
    """Any PNG as an RGB array (the curve is not a panorama, so read it with OpenCV)."""
    import cv2

    return cv2.imread(str(path))


def test_trajectory_picture_shows_target_path_and_views(tmp_path):
    panorama = np.full((256, 512, 3), 90, dtype=np.uint8)
    task = make_task("h0", HOS, panorama=panorama, yaw_range=(170.0, 190.0), pitch_range=(-5.0, 5.0))
    # Path crossing the seam: 150 -> 210 (through 180) -> submit 180.
    episode = record("h0", 0, HOS, 2, True, 3, headings=[[150.0, 0.0], [210.0, 0.0], [180.0, 10.0]], submitted=(180.0, 0.0))
    picture = trajectory_picture(episode, task, width=1200)
    assert picture.shape[1] == 1200 and picture.dtype == np.uint8
    pano_part = picture[54 : 54 + 600]
    # The target window (yaw 150..210, pitch -20..20) straddles the seam: it tints both edges, not the middle.
    yellowish = (pano_part[..., 0].astype(int) - pano_part[..., 2] > 30)
    assert yellowish[350, :50].all() and yellowish[350, -50:].all()
    assert not yellowish[350, 550:650].any()
    # The gaze path is drawn on both sides of the seam, never across the middle.
    cyan = (pano_part[..., 1] > 200) & (pano_part[..., 2] > 200) & (pano_part[..., 0] < 80)
    assert cyan[:, :100].any() and cyan[:, -100:].any()
    assert not cyan[:, 400:800].any()
    # A strip of 4 views (3 headings + submit) below the panorama.
    assert picture.shape[0] > 54 + 600 + 100


def test_cli_report_with_trajectories(tmp_path):
    panorama = np.full((256, 512, 3), 120, dtype=np.uint8)
    panorama[100:156, 300:340] = (200, 30, 30)
    save_image(tmp_path / "pano.png", panorama)
    manifest = tmp_path / "tasks.jsonl"
    lines = [
        {"id": f"t{i}", "image": "pano.png", "instruction": f"Find the red box {i}.", "kind": "HOS",
         "yaw_range": [90, 110], "pitch_range": [-5, 5], "start_yaws": [0], "levels": [2]}
        for i in range(3)
    ]  # fmt: skip
    manifest.write_text("".join(json.dumps(line) + "\n" for line in lines))
    suite = load_suite(f"jsonl:{manifest}")
    records = [record(f"t{i}", 0, HOS, 2, i == 0, 3) for i in range(3)]
    results = write_results(tmp_path / "run", records, suite=f"jsonl:{manifest}", fingerprint=suite.fingerprint)
    assert main(["report", str(results), "--trajectories", "2"]) == 0
    text = (results / "report.md").read_text()
    pictures = re.findall(r"\((report_files/trajectory_[^)]+\.png)\)", text)
    assert len(pictures) == 2
    for picture in pictures:
        image = load_panorama_like(results / picture)
        assert image.shape[1] == 1200 and image.shape[0] > 700 and image.std() > 10


def test_trajectories_left_out_without_tasks(tmp_path):
    results = load_results(write_results(tmp_path / "run"))
    text = write_report(results, tmp_path / "elsewhere" / "r.md", trajectories=3).read_text()
    assert "could not be loaded" in text
    assert (tmp_path / "elsewhere" / "r_files" / "success_by_turn.png").is_file()


def test_compare_mode_one_row_per_agent(tmp_path):
    first = write_results(tmp_path / "a", agent="sweep")
    second = write_results(tmp_path / "b", [dict(r, success=True) for r in RECORDS], agent="oracle")
    out = tmp_path / "cmp.md"
    assert main(["report", str(first), str(second), "--compare", "--out", str(out)]) == 0
    text = out.read_text()
    assert table_row(text, "sweep")[0] == "40.0"
    assert table_row(text, "oracle")[:2] == ["100.0", "100.0"]
    assert "not comparable" not in text
    assert (tmp_path / "cmp_files" / "success_by_turn.png").stat().st_size > 10_000


def test_routine_stats_by_hand():
    # record() turns by rotate(30,0) each turn from yaw 0 and submits (90, 0)
    same = [record(f"a{i}", 0, HOS, 0, True, 4) for i in range(3)]  # headings 0, 30, 60, 90: submits where it looks
    other = record("b", 0, HOS, 0, False, 2, headings=[[0.0, 0.0], [-40.0, 0.0]], submitted=(200.0, 0.0))
    other["actions"][0]["parsed"] = {"kind": "rotate", "yaw": -40.0, "pitch": 0.0}
    stats = routine_stats(same + [other])
    assert stats["top_opening"] == ["rotate(30,0)"] * 3 and stats["top_opening_rate"] == 0.75
    assert stats["turns_mode_rate"] == 0.75
    assert stats["submitted_at_heading_rate"] == 0.75  # (200, 0) is not where b looks (-40 = 320)
    near = dict(same[0], submitted=[94.0, -4.0])
    assert routine_stats([near])["submitted_at_heading_rate"] == 1.0  # within 5 degrees each way
    assert routine_stats([dict(near, submitted=[96.0, 0.0])])["submitted_at_heading_rate"] == 0.0
    across_seam = dict(near, headings=near["headings"][:-1] + [[358.0, 0.0]], submitted=[2.0, 0.0])
    assert routine_stats([across_seam])["submitted_at_heading_rate"] == 1.0  # 4 degrees apart through 0
    path = dict(near, kind=HPS, submitted=[90.0, -30.0])  # HPS: pitch is not judged, nor compared
    assert routine_stats([path])["submitted_at_heading_rate"] == 1.0
    assert routine_stats([dict(path, kind=HOS)])["submitted_at_heading_rate"] == 0.0
    unread = dict(near, actions=[dict(near["actions"][0], parsed={"kind": "invalid", "yaw": None, "pitch": None})])
    assert routine_stats([unread])["top_opening"] == ["invalid(0,0)"]
    assert routine_stats([])["top_opening_rate"] is None


def test_paired_difference_by_hand():
    baseline = [{"episode_id": f"e{i}", "success": won} for i, won in enumerate([True, False, False, True])]
    other = [{"episode_id": f"e{i}", "success": won} for i, won in enumerate([True, True, False, False])]
    diff = paired_difference(baseline, other)
    # differences 0, +1, 0, -1: mean 0, stdev sqrt(2/3), s.e. sqrt(2/3) / 2
    assert diff["episodes"] == 4 and diff["difference"] == 0.0
    assert diff["stderr"] == pytest.approx((2 / 3) ** 0.5 / 2)
    assert (diff["gained"], diff["lost"]) == (1, 1)
    assert paired_difference(baseline, list(reversed(other))) == diff  # matched by episode id, not order
    better = paired_difference(baseline, [dict(r, success=True) for r in baseline])
    assert better["difference"] == 0.5 and better["stderr"] == pytest.approx(((4 * 0.25) / 3) ** 0.5 / 2)


def test_paired_difference_refuses_other_episodes():
    runs = [{"episode_id": "a#0", "success": True}, {"episode_id": "b#0", "success": False}]
    with pytest.raises(ValueError, match=r"different episodes \(2 not in both"):
        paired_difference(runs, [{"episode_id": "a#1", "success": True}, {"episode_id": "b#0", "success": True}])
    with pytest.raises(ValueError, match="occurs twice"):
        paired_difference(runs, [runs[0], runs[0], runs[1]])


def test_compare_page_has_paired_differences_on_the_same_episodes(tmp_path):
    first = write_results(tmp_path / "a", agent="sweep")
    second = write_results(tmp_path / "b", [dict(r, success=True) for r in RECORDS], agent="oracle")
    other_episodes = write_results(tmp_path / "c", [dict(r, episode_id=r["episode_id"] + "x") for r in RECORDS], agent="x")
    out = tmp_path / "cmp.md"
    assert main(["report", str(first), str(second), "--compare", "--out", str(out)]) == 0
    row = next(line for line in out.read_text().splitlines() if line.startswith("| oracle | +"))
    # 8 of 18 episodes gained (HOS 6 of 10, HPS 2 of 8), none lost
    overall = (8 * (1 - 8 / 18) ** 2 + 10 * (8 / 18) ** 2) / 17
    hos, hps = (6 * 0.4**2 + 4 * 0.6**2) / 9, (2 * 0.75**2 + 6 * 0.25**2) / 7
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells == ["oracle", f"+44.4 ± {100 * (overall / 18) ** 0.5:.1f}", f"+60.0 ± {100 * (hos / 10) ** 0.5:.1f}",
                     f"+25.0 ± {100 * (hps / 8) ** 0.5:.1f}", "8 / 0"]
    assert main(["report", str(first), str(other_episodes), "--compare", "--out", str(out)]) == 0
    assert "Left out: the folders did not play the same episodes" in out.read_text()
    relabelled = write_results(tmp_path / "d", [dict(RECORDS[0], kind=HPS)] + list(RECORDS[1:]))
    assert main(["report", str(first), str(relabelled), "--compare", "--out", str(out)]) == 0
    assert "Left out: the folders did not play the same episodes" in out.read_text()
    other_suite = write_results(tmp_path / "e", fingerprint="other")
    assert main(["report", str(first), str(other_suite), "--compare", "--out", str(out)]) == 0
    assert "Left out: the folders come from different suites" in out.read_text()


def test_compare_warns_on_different_fingerprints_and_labels_same_agents(tmp_path):
    first = load_results(write_results(tmp_path / "a", fingerprint="one"))
    second = load_results(write_results(tmp_path / "b", fingerprint="two"))
    from panoseek.envs.eval.report import write_comparison

    text = write_comparison([first, second], tmp_path / "c.md").read_text()
    assert "not comparable" in text
    assert table_row(text, "sweep (a)") and table_row(text, "sweep (b)")


def test_half_written_last_line_is_skipped(tmp_path):
    results = load_results(write_results(tmp_path / "run", tail='{"episode_id": "x#0", "task'))
    assert len(results.episodes) == len(RECORDS)


@pytest.mark.parametrize(
    "content, message",
    [
        ('{"episode_id": "a#0"\n', r"episodes.jsonl: line 1 is not an episode record"),
        ("[1, 2]\n", r"episodes.jsonl: line 1 is not an episode record"),
        ('{"episode_id": "a#0", "task_id": "a", "kind": "HOS", "success": true}\n', r"record 1 \('a#0'\): record lacks field 'turns'"),
        ('{"episode_id": "a#0", "task_id": "a", "kind": "XYZ", "success": true, "turns": 1}\n', r"field 'kind' must be one of"),
        ('{"episode_id": "a#0", "task_id": "a", "kind": "HOS", "success": true, "turns": 1, "level_name": "Extreme"}\n', r"unknown level 'Extreme' for HOS"),
    ],
)
def test_bad_records_name_file_line_and_field(tmp_path, content, message):
    (tmp_path / "episodes.jsonl").write_text(content)
    with pytest.raises(ReportError, match=message):
        load_results(tmp_path)


def test_duplicate_episode_and_missing_folder_are_errors(tmp_path, capsys):
    write_results(tmp_path / "run", RECORDS[:2] + RECORDS[:1])
    with pytest.raises(ReportError, match=r"episode 'h0#0' appears on lines 1 and 3"):
        load_results(tmp_path / "run")
    assert main(["report", str(tmp_path / "nowhere")]) == 2
    assert "not a results folder" in capsys.readouterr().err


def test_sample_is_deterministic_and_spread_over_kinds():
    picked = sample_episodes(list(reversed(RECORDS)), 4)
    assert picked == sample_episodes(RECORDS, 4)
    assert {r["kind"] for r in picked} == {HOS, HPS}


@pytest.mark.parametrize("turn, drawn", [(200.0, 200.0), (-160.0, -160.0), (None, -160.0)])
def test_gaze_path_follows_the_turn_taken(turn, drawn):
    """A +200 turn is drawn rightwards and a -160 turn leftwards; without an action, the shortest way."""
    from panoseek.envs.eval.figures import _unwrapped_path

    episode = record("h0", 0, HOS, 0, False, 2, headings=[[0.0, 0.0], [200.0, 0.0]])
    if turn is None:
        episode["actions"] = []
    else:
        episode["actions"][0]["parsed"]["yaw"] = turn
    np.testing.assert_allclose(_unwrapped_path(episode), [[0.0, 0.0], [drawn, 0.0]])
