"""The object library: enough categories, each drawable, attributes visible in pixels."""

from __future__ import annotations

import numpy as np
import pytest

from panoseek.scenes.library import CATEGORIES, COLOURS, PATTERNS, PICTOGRAMS, ObjectSpec, category, describe, draw_object


def test_at_least_forty_categories_with_attributes():
    assert len(CATEGORIES) >= 40
    assert sum(bool(c.texts) for c in CATEGORIES.values()) >= 10  # signs, screens, clocks, doors ...
    assert sum(c.patterned for c in CATEGORIES.values()) >= 15
    assert len(COLOURS) >= 10 and len(PATTERNS) == 4


@pytest.mark.parametrize("name", sorted(CATEGORIES))
def test_every_category_draws_an_opaque_shape_at_small_and_large_sizes(name):
    cat = CATEGORIES[name]
    spec = ObjectSpec(name, cat.colours[0], "plain", cat.texts[0] if cat.texts else "", seed=3)
    for height in (12, 160):
        sprite = draw_object(spec, height)
        assert sprite.dtype == np.uint8 and sprite.shape[0] == height and sprite.shape[2] == 4
        covered = (sprite[..., 3] > 0).mean()
        assert 0.05 < covered <= 1.0, f"{name} at {height}px covers {covered:.2f}"


def test_same_spec_draws_the_same_pixels():
    spec = ObjectSpec("shelf", "red", "plain", "", seed=11)
    assert np.array_equal(draw_object(spec, 90), draw_object(spec, 90))


@pytest.mark.parametrize(
    "a, b",
    [
        (ObjectSpec("backpack", "red", "plain"), ObjectSpec("backpack", "blue", "plain")),
        (ObjectSpec("backpack", "red", "plain"), ObjectSpec("backpack", "red", "striped")),
        (ObjectSpec("shop_sign", "blue", text="BAKERY"), ObjectSpec("shop_sign", "blue", text="BOOKS")),
        (ObjectSpec("clock", "black", text="3:15"), ObjectSpec("clock", "black", text="9:00")),
    ],
)
def test_each_attribute_changes_the_drawing(a, b):
    assert not np.array_equal(draw_object(a, 100), draw_object(b, 100))


def test_direction_sign_draws_arrows_pictograms_and_text_rows():
    lines = (("up", "trains", "Platforms 1-4"), ("left", "", "Gate 12"), ("right", "taxis", ""))
    one = draw_object(ObjectSpec("direction_sign", "blue", lines=lines[:1]), 120, aspect=5.0)
    three = draw_object(ObjectSpec("direction_sign", "blue", lines=lines), 120, aspect=5.0)
    assert one.shape == three.shape and not np.array_equal(one, three)
    assert set(PICTOGRAMS) >= {"toilets", "trains", "taxis", "exit", "lifts"}


def test_describe_names_the_attributes():
    spec = ObjectSpec("backpack", "green", "striped")
    assert describe(spec, colour=True, pattern=True) == "green striped backpack"
    assert describe(spec, colour=True, pattern=False) == "green backpack"


def test_unknown_category_is_named_in_the_error():
    with pytest.raises(KeyError, match="'spaceship'"):
        category("spaceship")
    with pytest.raises(KeyError, match="spaceship"):
        draw_object(ObjectSpec("spaceship"), 50)
