"""Hostile input to the real-panorama loaders and the panorama reader.

Each table row is one bad input and a fragment of the one clear error it must raise
(naming file, item and field); add rows here as new hostile inputs turn up.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from panoseek.envs.panorama import PanoramaError, as_panorama, load_panorama
from panoseek.envs.task import HOS, HPS, UNLABELLED
from panoseek.scenes.hstar import load_hstar
from panoseek.scenes.jsonl import load_jsonl
from panoseek.scenes.suite import SuiteError

from conftest import smooth_panorama

PANORAMA = smooth_panorama(128)  # 128 x 64 RGB
GOOD_ITEM = {"task": "Find the red clock.", "yaw": [80, 100], "pitch": [-5, 5], "level": 0}
GOOD_LINE = {"image": "pano.png", "instruction": "Go.", "kind": "HPS", "yaw_range": [0, 10], "levels": 0}


def write_image(path: Path, image: np.ndarray = PANORAMA, **options) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path, **options)
    return path


def write_folder(folder: Path, items: list) -> Path:
    write_image(folder / "pano.png")
    (folder / "annotation.json").write_text(json.dumps(items))
    return folder


def write_manifest(path: Path, lines: list) -> Path:
    write_image(path.parent / "pano.png")
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


# ------------------------------------------------------- values in annotation.json

@pytest.mark.parametrize(
    "bad, message",
    [
        ({"yaw": "90"}, "field 'yaw' must be a pair [a, b] of numbers, got '90'"),
        ({"yaw": [True, False]}, "field 'yaw' holds a non-number True"),
        ({"yaw": [0, "10"]}, "field 'yaw' holds a non-number '10'"),
        ({"yaw": [0, None]}, "field 'yaw' holds a non-number None"),
        ({"yaw": [1, 2, 3]}, "field 'yaw' must be a pair"),
        ({"yaw": {"a": 1, "b": 2}}, "field 'yaw' must be a pair"),
        ({"yaw": [0, 720]}, "field 'yaw' must start within [-360, 360] and end at most one turn"),
        ({"yaw": [1e300, 1e300]}, "field 'yaw' must start within [-360, 360]"),
        ({"yaw": [-400, -390]}, "field 'yaw' must start within [-360, 360]"),
        ({"pitch": [True, 5]}, "field 'pitch' holds a non-number True"),
        ({"pitch": [-5, 95]}, "field 'pitch' must lie in [-90, 90], got 95"),
        ({"kind": "HPS", "pitch": [500, 900]}, "field 'pitch' must lie in [-90, 90], got 500"),
        ({"initial yaw": [1e308]}, "field 'initial yaw' must lie in [-360, 360], got 1e+308"),
        ({"initial yaw": [0, "90"]}, "field 'initial yaw' holds a non-number '90'"),
        ({"initial yaw": 90}, "field 'initial yaw' must be a non-empty list of numbers, got 90"),
        ({"initial yaw": "0"}, "field 'initial yaw' must be a non-empty list of numbers, got '0'"),
        ({"level": "2"}, "field 'level' must be one integer or a list with one per start yaw"),
        ({"level": True}, "field 'level' must be one integer or a list with one per start yaw"),
        ({"level": [0, 1, 2, "2"]}, "level '2' is not in 0..2 for HOS"),
        ({"task": 5}, "field 'task' must be a non-empty string"),
    ],
)
def test_bad_annotation_values_name_file_item_and_field(tmp_path: Path, bad: dict, message: str) -> None:
    annotation = write_folder(tmp_path / "p", [GOOD_ITEM, {**GOOD_ITEM, **bad}]) / "annotation.json"
    with pytest.raises(SuiteError) as error:
        load_hstar(tmp_path)
    assert str(error.value).startswith(f"{annotation} item 1: ")
    assert message in str(error.value)


# ------------------------------------------------------------ values in a manifest

@pytest.mark.parametrize(
    "bad, message",
    [
        ({"yaw_range": "90"}, "field 'yaw_range' must be a pair [a, b] of numbers, got '90'"),
        ({"yaw_range": [True, False]}, "field 'yaw_range' holds a non-number True"),
        ({"yaw_range": [0, 720]}, "field 'yaw_range' must start within [-360, 360]"),
        ({"yaw_range": [1e300, 1e300]}, "field 'yaw_range' must start within [-360, 360]"),
        ({"pitch_range": [500, 900]}, "field 'pitch_range' must lie in [-90, 90], got 500"),
        ({"start_yaws": [1e308]}, "field 'start_yaws' must lie in [-360, 360]"),
        ({"start_yaws": "0"}, "field 'start_yaws' must be a non-empty list of numbers"),
        ({"levels": "1"}, "field 'levels' must be one integer or a list"),
        ({"image": "pano\u0000.png"}, "field 'image' must be a file path, got 'pano\\x00.png'"),
    ],
)
def test_bad_manifest_values_name_file_line_and_field(tmp_path: Path, bad: dict, message: str) -> None:
    manifest = write_manifest(tmp_path / "tasks.jsonl", [GOOD_LINE, {**GOOD_LINE, **bad}])
    with pytest.raises(SuiteError) as error:
        load_jsonl(manifest)
    assert str(error.value).startswith(f"{manifest} line 2: ")
    assert message in str(error.value)


# ------------------------------------------------------------- missing levels

def test_items_without_level_load_hps_unlabelled_and_hos_computed(tmp_path: Path) -> None:
    write_folder(tmp_path / "p", [{"task": "Go to gate 3.", "yaw": [10, 20]},
                                  {"task": "Find the clock.", "yaw": [350, 10], "pitch": [-5, 5]}])
    manifest = write_manifest(tmp_path / "tasks.jsonl", [{**GOOD_LINE, "levels": None}, GOOD_LINE])
    (hps, hos), (unlabelled, labelled) = load_hstar(tmp_path), load_jsonl(manifest)
    assert hps.kind == HPS and hps.levels == (None,) * 4 and hps.level_name(0) == UNLABELLED
    assert "levels_from" not in hps.metadata
    assert hos.kind == HOS and hos.levels == (0, 2, 2, 2) and hos.metadata == {"levels_from": "box visibility"}
    assert unlabelled.levels == (None,) * 4 and labelled.levels == (0,) * 4


# ------------------------------------------------------------- folder layout

def _annotation_folder(folder: Path) -> None:
    write_image(folder / "pano.png")
    (folder / "annotation.json").mkdir()


def _dangling_annotation(folder: Path) -> None:
    write_image(folder / "pano.png")
    (folder / "annotation.json").symlink_to(folder / "gone.json")


def _misnamed_annotation(name: str):
    def make(folder: Path) -> None:
        write_image(folder / "pano.png")
        (folder / name).write_text(json.dumps([GOOD_ITEM]))
    return make


@pytest.mark.parametrize(
    "make, message",
    [
        (_annotation_folder, "p/annotation.json: is a folder; expected a JSON file"),
        (_dangling_annotation, "p/annotation.json: broken symbolic link (to "),
        (_misnamed_annotation("annotation.JSON"), "p/annotation.JSON: an annotation file must be named annotation.json"),
        (_misnamed_annotation("Annotation.json"), "p/Annotation.json: an annotation file must be named annotation.json"),
    ],
)
def test_bad_annotation_files_are_reported_not_skipped(tmp_path: Path, make, message: str) -> None:
    write_folder(tmp_path / "good", [GOOD_ITEM])
    make(tmp_path / "p")
    with pytest.raises(SuiteError, match=message.replace("(", r"\(")):
        load_hstar(tmp_path)


def test_symlinked_folders_are_read_once_under_their_own_path(tmp_path: Path) -> None:
    folder = write_folder(tmp_path / "lobby", [GOOD_ITEM])
    (folder / "loop").symlink_to(folder)  # a link loop inside the panorama folder
    (tmp_path / "alias").symlink_to(folder)  # a second name for it, found first
    with pytest.warns(UserWarning, match="again \\(symbolic link\\); its tasks are read once") as record:
        suite = load_hstar(tmp_path)
    assert [task.id for task in suite] == ["lobby#0"]
    assert sorted(str(w.message).split(" is ")[0] for w in record) == [
        str(tmp_path / "alias"), str(tmp_path / "alias" / "loop"), str(folder / "loop")
    ]


# ------------------------------------------------------------- panorama files

@pytest.mark.parametrize("suffix", [".jpg", ".png"])
@pytest.mark.parametrize("fraction", [0.3, 0.6, 0.9])
def test_truncated_images_are_refused_when_read(tmp_path: Path, suffix: str, fraction: float) -> None:
    noisy = np.random.default_rng(0).integers(0, 256, (64, 128, 3), dtype=np.uint8)  # no tiny compressed file
    image = write_image(tmp_path / "p" / f"pano{suffix}", noisy)
    data = image.read_bytes()
    image.write_bytes(data[: int(len(data) * fraction)])
    (tmp_path / "p" / "annotation.json").write_text(json.dumps([GOOD_ITEM]))
    (task,) = load_hstar(tmp_path)  # the header is intact
    with pytest.raises(PanoramaError, match=f"{image}: not a readable image"):
        task.load_panorama()


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 3  # rotate 180
    plain = load_panorama(write_image(tmp_path / "plain.jpg", PANORAMA, quality=95))
    turned = load_panorama(write_image(tmp_path / "turned.jpg", PANORAMA, quality=95, exif=exif))
    np.testing.assert_array_equal(turned, plain[::-1, ::-1])

    exif[0x0112] = 6  # stored 64 wide x 128 high, shown turned 90 degrees clockwise
    write_image(tmp_path / "p" / "pano.jpg", np.ascontiguousarray(np.rot90(PANORAMA)), quality=95, exif=exif)
    (tmp_path / "p" / "annotation.json").write_text(json.dumps([GOOD_ITEM]))
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        (task,) = load_hstar(tmp_path)
        shown = task.load_panorama()
    assert not [w for w in record if "resampled" in str(w.message)]  # 2:1 once turned
    assert shown.shape == PANORAMA.shape and np.abs(shown.astype(int) - PANORAMA).mean() < 4


@pytest.mark.parametrize("width, height", [(130, 64), (64, 64), (100, 200)])
def test_non_2_to_1_panoramas_are_resampled_with_a_warning(tmp_path: Path, width: int, height: int) -> None:
    pixels = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    image = write_image(tmp_path / "p" / "pano.png", pixels)
    (tmp_path / "p" / "annotation.json").write_text(json.dumps([GOOD_ITEM]))
    expected = f"{image}: .* got {width}x{height}; resampled to {2 * height}x{height}"
    with pytest.warns(UserWarning, match=expected):
        (task,) = load_hstar(tmp_path)
    with pytest.warns(UserWarning, match=expected):
        assert task.load_panorama().shape == (height, 2 * height, 3)


def test_non_2_to_1_arrays_are_resampled_and_tiny_ones_refused() -> None:
    with pytest.warns(UserWarning, match="got 100x64; resampled to 128x64"):
        assert as_panorama(np.zeros((64, 100, 3), np.uint8)).shape == (64, 128, 3)
    with pytest.raises(PanoramaError, match="at least 2x2 pixels, got 2x1"):
        as_panorama(np.zeros((1, 2, 3), np.uint8))


def test_unreadable_panorama_paths_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(PanoramaError, match=f"{tmp_path}: panorama file not found"):
        load_panorama(tmp_path)  # a folder
    with pytest.raises(PanoramaError, match=r"\.png: not a readable image \(embedded null byte\)"):
        load_panorama(str(tmp_path / "pano\0.png"))
