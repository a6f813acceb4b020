"""Loaders of real panoramas (``hstar:`` folders, ``jsonl:`` manifests) on files made here."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from panoseek.envs.panorama import PanoramaError
from panoseek.envs.task import HOS, HPS
from panoseek.scenes.hstar import load_hstar
from panoseek.scenes.jsonl import load_jsonl
from panoseek.scenes.levels import EASY, HARD, MEDIUM, box_visibility, hos_level
from panoseek.scenes.suite import SuiteError, load_suite, task_record

from conftest import smooth_panorama

PANORAMA = smooth_panorama(128)  # 128 x 64 RGB


def write_image(path: Path, image: np.ndarray = PANORAMA) -> Path:
    """Write an RGB (or grey / RGBA) array with cv2, which expects BGR(A) channel order."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if image.ndim == 3 and image.shape[2] == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    elif image.ndim == 3 and image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_RGBA2BGRA)
    assert cv2.imwrite(str(path), image)
    return path


def write_folder(root: Path, name: str, items: list | str, image: str = "pano.png") -> Path:
    """One H* Bench panorama folder: an image and annotation.json (items, or raw text)."""
    folder = root / name
    write_image(folder / image)
    text = items if isinstance(items, str) else json.dumps(items)
    (folder / "annotation.json").write_text(text)
    return folder


def write_manifest(path: Path, lines: list) -> Path:
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    return path


HOS_ITEM = {"task": "Find the red clock.", "yaw": [80, 100], "pitch": [-5, 5],
            "initial yaw": [0, 90, 180, 270], "level": [1, 0, 2, 1]}
HPS_ITEM = {"task": "Go to gate 12.", "yaw": [170, 190], "initial yaw": [0, 180], "level": [2, 3]}


# ---------------------------------------------------------------------------- hstar


def test_hstar_reads_hos_and_hps_folders(tmp_path: Path) -> None:
    write_folder(tmp_path / "hos", "lobby", [HOS_ITEM])
    write_folder(tmp_path / "hps", "station", [HPS_ITEM], image="pano.jpg")
    suite = load_suite(f"hstar:{tmp_path}")
    assert suite.name == f"hstar:{tmp_path}"
    hos, hps = suite
    assert (hos.id, hos.kind, hos.instruction) == ("hos/lobby#0", HOS, "Find the red clock.")
    assert hos.yaw_range == (80.0, 100.0) and hos.pitch_range == (-5.0, 5.0)
    assert hos.start_yaws == (0.0, 90.0, 180.0, 270.0) and hos.levels == (1, 0, 2, 1)
    assert hos.panorama == (tmp_path / "hos/lobby/pano.png").resolve()
    assert (hps.id, hps.kind, hps.pitch_range) == ("hps/station#0", HPS, None)
    assert hps.start_yaws == (0.0, 180.0) and hps.level_name(1) == "Extreme"
    np.testing.assert_array_equal(hos.load_panorama(), PANORAMA)  # lazily read, lossless PNG
    assert hps.load_panorama().shape == (64, 128, 3)


def test_hstar_wrapping_yaw_range_and_missing_initial_yaw(tmp_path: Path) -> None:
    items = [
        {"task": "Find the exit sign.", "yaw": [350, 12], "pitch": [10, 20], "level": 2},
        {"task": "Find the bin.", "yaw": [-20, 5], "pitch": [-30, -20], "level": [0, 1, 2, 2]},
    ]
    write_folder(tmp_path, "p", items)
    first, second = load_hstar(tmp_path)
    assert first.yaw_range == (350.0, 12.0)
    assert first.start_yaws == (0.0, 90.0, 180.0, 270.0) and first.levels == (2, 2, 2, 2)
    assert second.yaw_range == (-20.0, 5.0) and second.levels == (0, 1, 2, 2)


def test_missing_hos_levels_come_from_the_target_box(tmp_path: Path) -> None:
    # A target straddling yaw 0: fully in the start-0 view, behind the start-180 view,
    # and cut by the right edge (50 degrees) of the start-270 view... which sees 220..320: hidden.
    write_folder(tmp_path, "p", [{"task": "Find the clock.", "yaw": [350, 10], "pitch": [-5, 5]},
                                 {"task": "Find the bag.", "yaw": [35, 65], "pitch": [-5, 5],
                                  "initial yaw": [0, 180]}])
    wrapped, half_seen = load_hstar(tmp_path)
    assert wrapped.levels == (EASY, HARD, HARD, HARD)
    assert wrapped.metadata == {"levels_from": "box visibility"}
    assert half_seen.start_yaws == (0.0, 180.0) and half_seen.levels == (MEDIUM, HARD)


def test_a_single_panorama_folder_is_a_suite(tmp_path: Path) -> None:
    write_folder(tmp_path, "lobby", [HOS_ITEM, HOS_ITEM])
    assert [task.id for task in load_hstar(tmp_path / "lobby")] == ["lobby#0", "lobby#1"]


def test_kind_override_and_extra_fields_kept_as_metadata(tmp_path: Path) -> None:
    item = {**HPS_ITEM, "pitch": [-10, 10], "kind": "HPS", "scene": "airport"}
    write_folder(tmp_path, "p", [item])
    (task,) = load_hstar(tmp_path)
    assert task.kind == HPS and task.metadata == {"scene": "airport"}


def test_grey_and_rgba_panoramas_are_converted(tmp_path: Path) -> None:
    grey = PANORAMA[:, :, 1]
    rgba = np.dstack([PANORAMA, np.full(PANORAMA.shape[:2], 7, np.uint8)])
    for name, image in (("grey", grey), ("rgba", rgba)):
        folder = tmp_path / name
        write_image(folder / "pano.png", image)
        (folder / "annotation.json").write_text(json.dumps([HOS_ITEM]))
    grey_task, rgba_task = load_hstar(tmp_path)
    np.testing.assert_array_equal(grey_task.load_panorama(), np.dstack([grey] * 3))
    np.testing.assert_array_equal(rgba_task.load_panorama(), PANORAMA)


def test_corrupt_image_is_refused_naming_the_file(tmp_path: Path) -> None:
    write_folder(tmp_path, "p", [HOS_ITEM])
    image = tmp_path / "p" / "pano.png"
    image.write_bytes(b"this is not a png at all" * 10)
    with pytest.raises(SuiteError, match=f"{image}: not a readable image"):
        load_hstar(tmp_path)


def test_truncated_image_passes_the_header_check_and_fails_on_reading(tmp_path: Path) -> None:
    write_folder(tmp_path, "p", [HOS_ITEM])
    image = tmp_path / "p" / "pano.png"
    data = image.read_bytes()
    image.write_bytes(data[: len(data) // 2])  # header intact, pixels cut
    (task,) = load_hstar(tmp_path)
    with pytest.raises(PanoramaError, match=str(image)):
        task.load_panorama()


def test_corrupt_annotation_names_the_folder_and_line(tmp_path: Path) -> None:
    write_folder(tmp_path, "station", '[\n  {"task": "Go left.",\n   "yaw": [1, 2],,\n}]')
    with pytest.raises(SuiteError, match=r"station/annotation.json: invalid JSON at line 3 column"):
        load_hstar(tmp_path)


@pytest.mark.parametrize(
    "item, message",
    [
        ({"yaw": [1, 2], "pitch": [0, 1], "level": 0}, "item 0: missing field 'task'"),
        ({"task": "Find it.", "pitch": [0, 1], "level": 0}, "item 0: missing field 'yaw'"),
        ({"task": "Find it.", "yaw": [1, 2], "kind": "HOS", "level": 0}, "item 0: missing field 'pitch'"),
        ({"task": "Find it.", "yaw": [1, 2], "kind": "object", "level": 0}, "field 'kind' must be one of HOS, HPS"),
        ({**HOS_ITEM, "level": [0, 1]}, "field 'level' must be one integer or a list with one per start yaw"),
        ({**HOS_ITEM, "initial yaw": []}, "field 'initial yaw' must be a non-empty list"),
        ({**HOS_ITEM, "pitch": [-100, 5]}, "item 0: task 'p#0': field 'pitch' must lie in"),
        ({**HOS_ITEM, "yaw": "east"}, "item 0: task 'p#0': field 'yaw' must be a pair"),
        ({**HOS_ITEM, "level": [0, 1, 2, 5]}, "item 0: task 'p#0': level 5 is not in 0..2"),
        ("just text", "item 0: expected a JSON object"),
    ],
)
def test_bad_items_name_the_folder_item_and_field(tmp_path: Path, item, message: str) -> None:
    write_folder(tmp_path, "p", [item])
    with pytest.raises(SuiteError, match=message) as error:
        load_hstar(tmp_path)
    assert str(tmp_path / "p" / "annotation.json") in str(error.value)


def test_folder_layout_errors(tmp_path: Path) -> None:
    with pytest.raises(SuiteError, match="no panorama folder with an annotation.json"):
        load_hstar(tmp_path)
    folder = write_folder(tmp_path, "p", [HOS_ITEM])
    write_image(folder / "thumbnail.jpg")
    two = f"{folder}: expected exactly one .png/.jpg panorama .* found pano.png, thumbnail.jpg"
    with pytest.raises(SuiteError, match=two):
        load_hstar(tmp_path)
    for image in folder.glob("*.*g"):
        image.unlink()
    with pytest.raises(SuiteError, match=f"{folder}: expected exactly one .* found none"):
        load_hstar(tmp_path)
    write_image(folder / "pano.png")
    write_folder(tmp_path, "q", [])
    with pytest.raises(SuiteError, match="q/annotation.json: expected a non-empty list"):
        load_hstar(tmp_path)


# ---------------------------------------------------------------------------- jsonl


def test_jsonl_reads_a_manifest(tmp_path: Path) -> None:
    write_image(tmp_path / "panos" / "a.png")
    absolute = write_image(tmp_path / "elsewhere" / "b.jpg")
    manifest = write_manifest(tmp_path / "tasks.jsonl", [
        {"image": "panos/a.png", "instruction": "Find the clock.", "kind": "HOS",
         "yaw_range": [355, 15], "pitch_range": [0, 10], "levels": [0, 1, 2, 2], "id": "clock",
         "metadata": {"room": "hall"}},
        "",
        {"image": str(absolute), "instruction": "Go to exit B.", "kind": "HPS",
         "yaw_range": [200, 220], "start_yaws": [45], "levels": [3]},
    ])
    clock, exit_b = load_suite(f"jsonl:{manifest}")
    assert (clock.id, clock.yaw_range, clock.metadata) == ("clock", (355.0, 15.0), {"room": "hall"})
    assert clock.panorama == (tmp_path / "panos" / "a.png").resolve()
    assert (exit_b.id, exit_b.kind, exit_b.start_yaws, exit_b.levels) == ("line-3", HPS, (45.0,), (3,))
    assert exit_b.panorama == absolute.resolve()


@pytest.mark.parametrize(
    "line, message",
    [
        ('{"image": "a.png", "instruction": "x",', "line 2: invalid JSON at column"),
        ("[1, 2]", "line 2: expected a JSON object, got list"),
        ({"image": "a.png", "instruction": "x", "kind": "HPS", "levels": 0}, "line 2: missing field 'yaw_range'"),
        ({"image": "a.png", "instruction": "x", "kind": "HOS", "yaw_range": [0, 1]},
         "line 2: missing field 'pitch_range'"),
        ({"image": "a.png", "instruction": "x", "kind": "HPS", "yaw_range": [0, 1], "level": 0},
         "line 2: unknown field 'level'"),
        ({"image": "a.png", "instruction": "x", "kind": "hps", "yaw_range": [0, 1]}, "line 2: field 'kind' must be"),
        ({"image": "missing.png", "instruction": "x", "kind": "HPS", "yaw_range": [0, 1], "levels": 0},
         r"line 2: .*missing.png: panorama file not found"),
        ({"image": "a.png", "instruction": "x", "kind": "HPS", "yaw_range": [0, 1], "levels": 0, "metadata": [1]},
         "line 2: field 'metadata' must be a JSON object"),
        ({"image": "a.png", "instruction": " ", "kind": "HPS", "yaw_range": [0, 1], "levels": 0},
         "line 2: task 'line-2': field 'instruction'"),
        ({"image": "a.png", "instruction": "x", "kind": "HPS", "yaw_range": [0, 1], "levels": 0, "id": "ok"},
         "task id 'ok' appears more than once"),
    ],
)
def test_bad_manifest_lines_name_the_line_and_field(tmp_path: Path, line, message: str) -> None:
    write_image(tmp_path / "a.png")
    good = {"image": "a.png", "instruction": "Go.", "kind": "HPS", "yaw_range": [0, 10], "levels": 0, "id": "ok"}
    manifest = write_manifest(tmp_path / "tasks.jsonl", [good, line])
    with pytest.raises(SuiteError, match=message) as error:
        load_jsonl(manifest)
    assert "appears more than once" in message or str(manifest) in str(error.value)


# ----------------------------------------------------------------- same data, same tasks


def test_hstar_and_jsonl_of_the_same_data_give_equal_tasks_and_fingerprints(tmp_path: Path) -> None:
    root = tmp_path / "bench"
    write_folder(root, "hos/lobby", [HOS_ITEM, {"task": "Find the bin.", "yaw": [350, 10], "pitch": [-9, 0]}])
    write_folder(root, "hps/station", [HPS_ITEM], image="pano.jpg")
    lines = [
        {"id": "hos/lobby#0", "image": "hos/lobby/pano.png", "instruction": HOS_ITEM["task"], "kind": "HOS",
         "yaw_range": HOS_ITEM["yaw"], "pitch_range": HOS_ITEM["pitch"], "start_yaws": HOS_ITEM["initial yaw"],
         "levels": HOS_ITEM["level"]},
        {"id": "hos/lobby#1", "image": "hos/lobby/pano.png", "instruction": "Find the bin.", "kind": "HOS",
         "yaw_range": [350, 10], "pitch_range": [-9, 0]},
        {"id": "hps/station#0", "image": "hps/station/pano.jpg", "instruction": HPS_ITEM["task"], "kind": "HPS",
         "yaw_range": HPS_ITEM["yaw"], "start_yaws": HPS_ITEM["initial yaw"], "levels": HPS_ITEM["level"]},
    ]
    from_folders = load_suite(f"hstar:{root}")
    from_manifest = load_suite(f"jsonl:{write_manifest(root / 'manifest.jsonl', lines)}")
    assert [task_record(t) for t in from_folders] == [task_record(t) for t in from_manifest]
    assert [t.panorama for t in from_folders] == [t.panorama for t in from_manifest]
    assert from_folders.fingerprint == from_manifest.fingerprint


def test_fingerprint_follows_the_data_not_its_location(tmp_path: Path) -> None:
    write_folder(tmp_path / "a", "p", [HOS_ITEM])
    original = load_hstar(tmp_path / "a").fingerprint
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    assert load_hstar(tmp_path / "b").fingerprint == original
    (tmp_path / "b/p/annotation.json").write_text(json.dumps([{**HOS_ITEM, "yaw": [81, 100]}]))
    assert load_hstar(tmp_path / "b").fingerprint != original
    shutil.copy(tmp_path / "a/p/annotation.json", tmp_path / "b/p/annotation.json")
    write_image(tmp_path / "b/p/pano.png", 255 - PANORAMA)
    assert load_hstar(tmp_path / "b").fingerprint != original


# --------------------------------------------------------------------------- levels


def test_hos_level_thresholds() -> None:
    assert [hos_level(d) for d in (1.0, 0.5, 0.49, 1e-6, 0.0)] == [EASY, EASY, MEDIUM, MEDIUM, HARD]
    with pytest.raises(ValueError, match="visibility must lie in"):
        hos_level(1.5)


def test_box_visibility() -> None:
    np.testing.assert_array_equal(box_visibility((350, 10), (-5, 5), [0.0, 180.0, 90.0]), [1.0, 0.0, 0.0])
    # The 100-degree view at yaw 0 ends at yaw 50 on the horizon: half of 35..65 is in view,
    # and the same half seen from the other side once the box is turned round.
    half = box_visibility((35, 65), (-1, 1), [0.0, 100.0])
    np.testing.assert_allclose(half, [0.5, 0.5], atol=0.02)
    assert box_visibility((215, 245), (-1, 1), [180.0])[0] == pytest.approx(half[0])
    # Vertical field of view of 16:9 at 100 degrees is about 67.4: pitch 40..60 is above it.
    assert box_visibility((-5, 5), (40, 60), [0.0])[0] == 0.0
