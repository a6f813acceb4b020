"""The synth suites: sizes, splits, metadata, fingerprints, lazy train, caches, CLI."""

from __future__ import annotations

import pickle

import cv2
import numpy as np
import pytest

from panoseek.cli import main
from panoseek.envs.task import HOS, HPS
from panoseek.scenes import exemplar_image, load_suite
from panoseek.scenes.cache import cache_path, cached_render, fill
from panoseek.scenes.catalog import SEEN_TYPES, UNSEEN_TYPES
from panoseek.scenes.suite import SuiteError
from panoseek.scenes.synth import SPLITS, ScenePanorama, scene_tasks, split_fingerprint


@pytest.fixture(scope="module")
def val():
    return load_suite("synth:val")


def test_test_split_is_600_object_and_400_path_tasks_with_four_starts():
    counts = load_suite("synth:test").describe()
    assert counts["kinds"][HOS]["tasks"] == 600 and counts["kinds"][HPS]["tasks"] == 400
    assert counts["episodes"] == 4000
    hos_levels = counts["kinds"][HOS]["levels"]
    hps_levels = counts["kinds"][HPS]["levels"]
    # Starts ignore the target, so HOS levels come out as the geometry gives them (docs/benchmark.md).
    assert hos_levels["Hard"] > hos_levels["Easy"] > hos_levels["Medium"] >= 50, hos_levels
    assert all(n >= 200 for n in hps_levels.values()), hps_levels


def test_val_has_at_least_400_tasks_and_train_6000_listed_lazily(val):
    assert len(val) >= 400
    train = load_suite("synth:train")
    assert len(train) >= 6000
    last = train[len(train) - 1]  # builds one scene only
    assert last.id.startswith("synth-train-") and last.kind in (HOS, HPS)
    assert train[-1] is last


def test_unseen_split_uses_only_types_never_in_train():
    unseen = {task.metadata["scene_type"] for task in scene_tasks("test-unseen", 0) + scene_tasks("test-unseen", 7)}
    assert unseen <= set(UNSEEN_TYPES)
    assert not set(SPLITS["train"].types) & set(UNSEEN_TYPES)
    assert set(SPLITS["train"].types) == set(SEEN_TYPES)


def test_metadata_describes_scene_target_and_openings(val):
    hos = next(t for t in val if t.kind == HOS)
    hps = next(t for t in val if t.kind == HPS)
    for key in ("scene_seed", "scene_type", "macro", "category", "attributes", "object", "instruction_type"):
        assert key in hos.metadata
    assert hos.metadata["instruction_type"] in ("category", "attribute", "text", "relation")
    assert {"openings", "goal_opening", "goal"} <= set(hps.metadata)
    kinds = {t.metadata["instruction_type"] for t in val if t.kind == HOS}
    assert kinds == {"category", "attribute", "text", "relation"}


def test_object_targets_span_their_legible_size_up_to_30_degrees(val):
    sizes = []
    for task in val:
        if task.kind == HOS:
            width = (task.yaw_range[1] - task.yaw_range[0]) % 360
            sizes.append(max(width, task.pitch_range[1] - task.pitch_range[0]))
    assert 4.8 <= min(sizes) and max(sizes) <= 30.1  # >= 16 px at 448 wide (scenes/legibility.py)
    assert np.median(sizes) < 20


def test_tasks_share_scenes_and_panoramas_are_picklable_callables(val):
    first = val[0]
    same_scene = [t for t in val if t.metadata["scene_seed"] == first.metadata["scene_seed"]]
    assert len(same_scene) == 5
    assert isinstance(first.panorama, ScenePanorama)
    assert pickle.loads(pickle.dumps(first.panorama)) == first.panorama


def test_fingerprints_are_stable_and_differ_between_splits(val):
    assert split_fingerprint("val") == val.fingerprint
    assert len({split_fingerprint(split) for split in SPLITS}) == len(SPLITS)


def test_unknown_split_is_refused_with_the_valid_ones():
    with pytest.raises(SuiteError, match="'tset'.*test"):
        load_suite("synth:tset")


def test_exemplar_shows_the_target_and_refuses_path_tasks(val):
    hos = next(t for t in val if t.kind == HOS)
    picture = exemplar_image(hos)
    assert picture.dtype == np.uint8 and picture.ndim == 3 and picture.shape[2] == 3
    assert (np.abs(picture.astype(int) - 128).sum(axis=2) > 20).mean() > 0.05
    with pytest.raises(ValueError, match="exemplar"):
        exemplar_image(next(t for t in val if t.kind == HPS))


def test_disk_cache_round_trips_pixels_exactly(tmp_path, monkeypatch):
    monkeypatch.setenv("PANOSEEK_CACHE", str(tmp_path))
    source = ScenePanorama(*_slot("val", 1), width=256)
    fresh = source()
    assert fill([(source.seed, source.scene_type, 256)], workers=1, progress=False) == 1
    path = cache_path(source.seed, source.scene_type, 256)
    assert path.is_file() and path.parent.parent == tmp_path / "synth"
    assert fill([(source.seed, source.scene_type, 256)], workers=1, progress=False) == 0  # already there
    calls = []
    from_disk = cached_render(source.seed, source.scene_type, 256, lambda: calls.append(1))  # never rendered
    assert np.array_equal(from_disk, fresh) and not calls


def _slot(split, index):
    task = scene_tasks(split, index)[0]
    return task.metadata["scene_seed"], task.metadata["scene_type"]


def test_cli_gallery_writes_a_sheet_and_cache_refuses_non_synth(tmp_path, capsys):
    out = tmp_path / "sheet.png"
    assert main(["scenes", "gallery", "synth:val", "--out", str(out), "--scenes", "1", "--width", "512"]) == 0
    sheet = cv2.imread(str(out))
    assert sheet is not None and sheet.shape[1] > 512
    assert main(["scenes", "cache", "jsonl:tasks.jsonl"]) == 2
    assert "only synth suites" in capsys.readouterr().err
    assert main(["scenes", "cache", "synth:val", "--workers", "0"]) == 2
