"""The scene generator: catalogue, layouts, and panoramas drawn with correct geometry."""

from __future__ import annotations

import numpy as np
import pytest

from panoseek.envs.geometry import lonlat_to_pixel, yaw_to_lon
from panoseek.scenes.catalog import FLOORS, MACROS, SCENE_TYPES, SEEN_TYPES, UNSEEN_TYPES, WALLS
from panoseek.scenes.layout import Placement
from panoseek.scenes.library import CATEGORIES, PICTOGRAMS, ObjectSpec
from panoseek.scenes.raster import render_layout
from panoseek.scenes.scene import build_scene

WIDTH = 512  # small panoramas keep these tests fast; geometry is resolution independent


def test_catalogue_has_six_macros_and_eighteen_types_with_held_out_types():
    assert len(MACROS) == 6 and len(SCENE_TYPES) == 18
    assert {"transport hub", "retail", "street", "public institution"} <= set(MACROS)
    assert not set(SEEN_TYPES) & set(UNSEEN_TYPES)
    assert {SCENE_TYPES[name].macro for name in UNSEEN_TYPES} == set(MACROS)  # one held out per macro


@pytest.mark.parametrize("type_name", sorted(SCENE_TYPES))
def test_scene_types_only_name_known_materials_objects_and_pictograms(type_name):
    style = SCENE_TYPES[type_name]
    assert set(style.floors) <= set(FLOORS) and set(style.walls) <= set(WALLS)
    assert set(style.clutter) <= set(CATEGORIES)
    assert set(style.services) <= set(PICTOGRAMS)
    assert len(style.services) >= 4  # enough distinct destinations for 3-5 openings


@pytest.mark.parametrize("type_name", sorted(SCENE_TYPES))
def test_every_scene_type_builds_tasks_and_renders(type_name):
    scene = build_scene(17, type_name)
    assert len(scene.object_tasks) >= 2 and len(scene.path_tasks) >= 1
    assert len(scene.layout.openings) >= 3
    image = scene.render(WIDTH)
    assert image.shape == (WIDTH // 2, WIDTH, 3) and image.dtype == np.uint8
    assert image.std() > 10  # not a flat fill


def test_same_seed_same_layout_and_pixels_different_seed_different_scene():
    a, b, c = build_scene(5, "library"), build_scene(5, "library"), build_scene(6, "library")
    assert [p.to_dict() for p in a.layout.placements] == [p.to_dict() for p in b.layout.placements]
    assert [t.instruction for t in a.object_tasks] == [t.instruction for t in b.object_tasks]
    assert np.array_equal(a.render(WIDTH), b.render(WIDTH))
    assert not np.array_equal(a.render(WIDTH), c.render(WIDTH))


def _changed_columns(layout, card_index, width=WIDTH):
    with_card = render_layout(layout, width).astype(int)
    without = render_layout(layout, width, exclude=(card_index,)).astype(int)
    changed = np.abs(with_card - without).sum(axis=2) > 30
    return changed


def _lone_card(yaw: float, bottom: float, distance: float = 4.0, width: float = 1.2) -> tuple:
    scene = build_scene(3, "open_office")
    layout = scene.layout
    layout.placements[:] = [Placement(ObjectSpec("poster", "red"), yaw, distance, bottom, width, 1.2,
                                      layout.room.camera_height, "target")]
    return layout


def test_an_object_on_the_seam_is_drawn_on_both_edges():
    layout = _lone_card(yaw=180.0, bottom=1.0)
    changed = _changed_columns(layout, 0)
    columns = np.flatnonzero(changed.any(axis=0))
    assert columns.min() < 10 and columns.max() > WIDTH - 10
    assert not changed[:, WIDTH // 4: 3 * WIDTH // 4].any()


def test_an_object_lands_where_its_angular_extent_says():
    layout = _lone_card(yaw=40.0, bottom=1.0)
    card = layout.placements[0]
    changed = _changed_columns(layout, 0)
    rows, cols = np.nonzero(changed)
    u0, v1 = lonlat_to_pixel(yaw_to_lon(card.yaw) - card.half_yaw, card.pitch_range[0], WIDTH, WIDTH // 2)
    u1, v0 = lonlat_to_pixel(yaw_to_lon(card.yaw) + card.half_yaw, card.pitch_range[1], WIDTH, WIDTH // 2)
    assert u0 - 3 <= cols.min() and cols.max() <= u1 + 3
    assert v0 - 3 <= rows.min() and rows.max() <= v1 + 3
    assert cols.max() - cols.min() > 0.8 * (u1 - u0)  # it fills its box


def _top_edge_sag(changed: np.ndarray) -> int:
    """Rows by which the card's top edge is lower at its side columns than at its centre."""
    columns = np.flatnonzero(changed.any(axis=0))
    top = [np.flatnonzero(changed[:, c]).min() for c in columns[2:-2]]
    return int(max(top[0], top[-1]) - min(top))


def test_objects_high_up_curve_like_an_equirectangular_image():
    # A wide card seen ~65 degrees up: its straight top edge bends towards the horizon at
    # the sides (constant height, growing distance); a card whose top is at eye level
    # (the horizon) keeps a straight top edge.
    eye = build_scene(3, "open_office").layout.room.camera_height
    high = _changed_columns(_lone_card(yaw=0.0, bottom=4.6, distance=1.6, width=2.4), 0)
    level = _changed_columns(_lone_card(yaw=0.0, bottom=eye - 1.2, distance=1.6, width=2.4), 0)
    assert _top_edge_sag(high) >= 4  # ~4.5 degrees at 1.4 rows per degree
    assert _top_edge_sag(high) > 2 * _top_edge_sag(level)


def test_bad_width_is_refused():
    with pytest.raises(ValueError, match="width"):
        build_scene(1, "library").render(30)
    with pytest.raises(KeyError, match="'castle'"):
        build_scene(1, "castle")
