"""The H* success rule, the rewards, and the three faults of the released H* code."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import make_task

from panoseek.envs import judge
from panoseek.envs.env import PanoramaSearchEnv
from panoseek.envs.wrappers import TextActions

PANO = np.full((32, 64, 3), 128, np.uint8)  # content is irrelevant to the judge


def _task(kind="HOS", yaw_range=(80.0, 100.0), pitch_range=(-5.0, 5.0), task_id="t"):
    return make_task(task_id, kind, panorama=PANO, yaw_range=yaw_range, pitch_range=pitch_range if kind == "HOS" else None)


def test_narrow_hos_range_widens_to_tolerances():
    task = _task()  # yaw [80, 100] is narrower than 2 * 30, pitch [-5, 5] narrower than 2 * 20
    assert judge.is_success(task, 90 + 30, 0) and not judge.is_success(task, 90 + 30.5, 0)
    assert judge.is_success(task, 90 - 30, 20) and not judge.is_success(task, 90, 20.5)
    assert not judge.is_success(task, 90, -21)


def test_wide_range_keeps_its_own_edges():
    task = _task(yaw_range=(0.0, 200.0), pitch_range=(-60.0, 10.0))
    assert judge.is_success(task, 199.0, -59.0)
    assert not judge.is_success(task, 201.0, 0.0)  # beyond the range, which is wider than 2 tau
    assert not judge.is_success(task, 100.0, 11.0)


def test_hos_needs_both_angles():
    task = _task()
    assert not judge.is_success(task, 90.0, 45.0)
    assert not judge.is_success(task, 270.0, 0.0)
    assert judge.is_success(task, 90.0, 0.0)


def test_hps_ignores_pitch_and_uses_tau_yaw_10():
    task = _task("HPS", yaw_range=(90.0, 92.0))
    assert judge.is_success(task, 101.0, 89.0) and judge.is_success(task, 81.0, -90.0)
    assert not judge.is_success(task, 101.5, 0.0)
    assert judge.pitch_window(task) is None
    assert judge.angular_errors(task, 91.0, 70.0) == (0.0, 0.0)


def test_yaw_window_wraps_through_zero():
    task = _task(yaw_range=(350.0, 10.0))  # 20 wide around 0
    for yaw in (331.0, 0.0, 359.9, 29.0, -25.0, 385.0):
        assert judge.is_success(task, yaw, 0.0), yaw
    for yaw in (329.0, 31.0, 180.0):
        assert not judge.is_success(task, yaw, 0.0), yaw


def test_angular_errors_and_centre_offsets():
    task = _task()
    assert judge.angular_errors(task, 130.0, 0.0) == pytest.approx((10.0, 0.0))
    assert judge.angular_errors(task, 90.0, -30.0) == pytest.approx((0.0, 10.0))
    assert judge.angular_errors(task, 270.0, 0.0) == pytest.approx((150.0, 0.0))
    assert judge.centre_offsets(task, 80.0, 4.0) == pytest.approx((10.0, 4.0))
    assert judge.centre_offsets(task, 350.0, 0.0) == pytest.approx((100.0, 0.0))  # wrapped, not 260


def test_progress_is_the_closed_miss_of_the_windows():
    task = _task()  # HOS, yaw window 60..120 after widening, pitch window -20..20
    assert judge.progress(task, (180.0, 0.0), (150.0, 0.0)) == pytest.approx(30.0)  # toward the target
    assert judge.progress(task, (150.0, 0.0), (180.0, 0.0)) == pytest.approx(-30.0)  # away from it
    assert judge.progress(task, (90.0, 0.0), (110.0, 10.0)) == 0.0  # inside both windows
    assert judge.progress(task, (90.0, -50.0), (90.0, -20.0)) == pytest.approx(30.0)  # pitch counts for HOS
    hps = _task(kind="HPS")
    assert judge.progress(hps, (90.0, -50.0), (90.0, 0.0)) == 0.0  # pitch is not judged for HPS
    assert judge.progress(hps, (330.0, 0.0), (30.0, 0.0)) == pytest.approx(60.0)  # wrapped through 0


def test_target_direction_is_signed_and_wrapped():
    task = _task()  # windows centred at yaw 90, pitch 0
    assert judge.target_direction(task, 30.0, 10.0) == pytest.approx((60.0, -10.0))  # turn right and down
    assert judge.target_direction(task, 200.0, 0.0) == pytest.approx((-110.0, 0.0))  # left is shorter
    assert judge.target_direction(_task(kind="HPS"), 90.0, 45.0) == pytest.approx((0.0, 0.0))  # pitch not judged


def test_final_reward_is_success_plus_format():
    task = _task()
    assert judge.final_reward(task, 90.0, 0.0, well_formed=True) == 1.0
    assert judge.final_reward(task, 90.0, 0.0, well_formed=False) == 0.5
    assert judge.final_reward(task, 270.0, 0.0, well_formed=True) == 0.5
    assert judge.final_reward(task, 270.0, 0.0, well_formed=False) == 0.0


def test_distance_reward_matches_the_paper_formula():
    task = _task()  # yaw window 90 +- 30, pitch window 0 +- 20
    inside = (2 * math.pi - math.radians(60) - math.radians(40)) / (2 * math.pi)
    assert judge.distance_reward(task, 90.0, 0.0) == pytest.approx(inside)
    assert judge.distance_reward(task, 70.0, 15.0) == pytest.approx(inside)  # d = 2 tau anywhere inside
    # 10 degrees beyond the yaw edge: d(yaw) = |130 - 60| + |130 - 120| = 80 degrees
    beyond = (2 * math.pi - math.radians(80) - math.radians(40)) / (2 * math.pi)
    assert judge.distance_reward(task, 130.0, 0.0) == pytest.approx(beyond)
    # yaw differences wrap: 359 is 91 from the centre, not 269
    assert judge.distance_reward(task, 359.0, 0.0) == pytest.approx(judge.distance_reward(task, 181.0, 0.0))
    hps = _task("HPS", yaw_range=(90.0, 90.0))
    assert judge.distance_reward(hps, 90.0, 80.0) == pytest.approx((2 * math.pi - math.radians(20)) / (2 * math.pi))


def test_distance_shaping_is_off_by_default_and_added_when_asked():
    task = _task()
    plain = judge.final_reward(task, 130.0, 0.0, well_formed=True)
    shaped = judge.final_reward(task, 130.0, 0.0, well_formed=True, shaping=True)
    assert shaped == pytest.approx(plain + judge.distance_reward(task, 130.0, 0.0))


# ------------------------------------------------------ the three faults of the released H* code


def _text_env(tasks):
    return TextActions(PanoramaSearchEnv(tasks, view_size=(32, 18), diagnostics=True), strict=True)


def test_fault_format_reward_reset_and_never_paid():
    """H* sets ``self.format_reward = 0`` in ``reset`` and only ever adds that 0 on
    submission, so a well-formed final answer never earns its 0.5. We pay it."""
    env = _text_env([_task()])
    env.reset(seed=0, options={"task_index": 0, "start_index": 1})  # start at yaw 90, inside
    _, reward, terminated, _, info = env.step("<think>here</think><answer>submit(90,0)</answer>")
    assert terminated and info["success"] and info["well_formed"]
    assert reward == 1.0
    env.reset(seed=1, options={"task_index": 0, "start_index": 0})
    _, reward, _, _, info = env.step("<think>guess</think><answer>submit(270,0)</answer>")
    assert not info["success"] and reward == 0.5, "a well-formed failed answer still earns the format half"
    env.reset(seed=2, options={"task_index": 0, "start_index": 0})
    _, reward, _, _, _ = env.step("<think>t</think><answer>rotate(10,0)</answer>")
    assert reward == 0.0, "only the final answer is paid"


def test_fault_hps_reset_leaves_tau_yaw_10_for_later_hos_episodes():
    """H*'s ``reset`` of a path-search item writes ``config.yaw_tolerance = 10`` on the
    instance and never restores 30, so every later object-search episode is judged with
    a 10-degree yaw tolerance. Our judge reads the tolerance from each task's kind."""
    hps, hos = _task("HPS", task_id="hps"), _task("HOS", task_id="hos")
    env = _text_env([hps, hos])
    env.reset(options={"task_index": 0, "start_index": 0})
    _, _, _, _, info = env.step("<think>t</think><answer>submit(90,0)</answer>")
    assert info["kind"] == "HPS" and info["success"]
    env.reset(options={"task_index": 1, "start_index": 0})
    _, reward, _, _, info = env.step("<think>t</think><answer>submit(115,0)</answer>")  # 25 off: inside 30, not 10
    assert info["kind"] == "HOS" and info["success"] and reward == 1.0
    assert judge.YAW_TOLERANCE == {"HOS": 30.0, "HPS": 10.0}


def test_fault_wrapping_yaw_range_skips_pitch_check():
    """H* tests ``yaw0 <= yaw <= 360 or 0 <= yaw <= yaw1`` for a range through 0/360 and
    declares success without looking at the pitch. We check the pitch there too."""
    task = _task(yaw_range=(350.0, 10.0), pitch_range=(30.0, 40.0))
    assert not judge.is_success(task, 0.0, -60.0)
    assert judge.is_success(task, 0.0, 35.0)
    env = _text_env([task])
    env.reset(options={"task_index": 0, "start_index": 0})
    _, reward, _, _, info = env.step("<think>t</think><answer>submit(0,-60)</answer>")
    assert not info["success"] and info["pitch_error"] == pytest.approx(75.0) and reward == 0.5
