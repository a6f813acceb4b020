"""Task validation: bad annotations fail where they are read, naming task and field."""

from __future__ import annotations

import numpy as np
import pytest

from panoseek.envs.task import HOS, HPS, Task, TaskError

from conftest import make_task


def test_valid_task_normalises_starts_and_levels(hos_task: Task) -> None:
    task = make_task(start_yaws=(-90, -270, 0, 359.5), levels=(0, 1, 2, 2))
    assert task.start_yaws == (270.0, 90.0, 0.0, 359.5)
    assert task.levels == (0, 1, 2, 2)
    assert task.level_name(1) == "Medium"
    assert hos_task.n_starts == 4


@pytest.mark.parametrize(
    "overrides, field",
    [
        (dict(kind="XYZ"), "kind"),
        (dict(instruction="  "), "instruction"),
        (dict(yaw_range=(0, float("nan"))), "yaw_range"),
        (dict(yaw_range=(10,)), "yaw_range"),
        (dict(yaw_range="ab"), "yaw_range"),
        (dict(pitch_range=None), "pitch_range"),
        (dict(pitch_range=(-100, 0)), "pitch_range"),
        (dict(levels=(0, 1)), "levels"),
        (dict(levels=(0, 1, 2, 3)), "level 3"),
        (dict(start_yaws=()), "start_yaws"),
        (dict(start_yaws=(0, "east", 1, 2)), "start_yaws"),
        (dict(yaw_range=(True, False)), "yaw_range' holds a non-number True"),
        (dict(yaw_range=("9", "0")), "yaw_range' holds a non-number '9'"),
        (dict(yaw_range=(0, 720)), "yaw_range' must start within"),
        (dict(yaw_range=(1e300, 1e300)), "yaw_range' must start within"),
        (dict(pitch_range=(500, 900)), "pitch_range' must lie in"),
        (dict(start_yaws=(1e308, 0, 0, 0)), "start_yaws' must lie in"),
        (dict(start_yaws=90), "start_yaws' must be a list"),
        (dict(panorama=42), "panorama"),
    ],
)
def test_invalid_fields_are_named(overrides: dict, field: str) -> None:
    with pytest.raises(TaskError, match=field) as error:
        make_task("bad-task", **{"kind": HOS, **overrides})
    assert "bad-task" in str(error.value)


def test_hps_levels_go_to_extreme_and_pitch_is_optional() -> None:
    task = make_task("p", HPS, levels=(3, 3, 3, 3))
    assert task.pitch_range is None
    assert task.level_name(0) == "Extreme"
    with pytest.raises(TaskError, match="level 3"):
        make_task("h", HOS, levels=(3, 0, 0, 0))


def test_panorama_sources_path_array_and_callable(tmp_path, textured_panorama) -> None:
    import cv2

    path = tmp_path / "pano.png"
    cv2.imwrite(str(path), cv2.cvtColor(textured_panorama, cv2.COLOR_RGB2BGR))
    calls = []

    def lazy() -> np.ndarray:
        calls.append(1)
        return textured_panorama

    for source in (textured_panorama, path, str(path), lazy):
        loaded = make_task(panorama=source).load_panorama()
        assert loaded.shape == textured_panorama.shape
        np.testing.assert_array_equal(loaded, textured_panorama)
    assert calls == [1]


def test_angle_bounds_allow_every_usual_convention() -> None:
    assert make_task(yaw_range=(350.0, 710.0)).yaw_range == (350.0, 710.0)  # the full circle
    make_task(yaw_range=(274.74514250453325, 274.74514250453325 + 360))  # 360.00000000000006 apart in floats
    assert make_task(yaw_range=np.array([-180.0, 180.0])).yaw_range == (-180.0, 180.0)
    assert make_task(start_yaws=(-360, 360, -180, 359.5)).start_yaws == (0.0, 0.0, 180.0, 359.5)
    with pytest.raises(TaskError, match="field 'pitch_range' must lie in"):
        make_task("p", HPS, pitch_range=(500, 900))  # an HPS pitch, when given, too
