"""One procedural scene from a seed: room, openings, signs, tasks and clutter.

``build_scene(seed, scene_type)`` is pure: the same arguments give the same layout
and tasks in any process (one ``numpy.random.default_rng(seed)``, no global state).
Several tasks share a scene, so a suite draws far fewer panoramas than it has tasks.
"""

from __future__ import annotations

import hashlib
import importlib.util
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from panoseek.scenes.catalog import SceneType, scene_type
from panoseek.scenes.hos import ObjectTaskSpec, allowed_categories, make_object_task
from panoseek.scenes.hps import LEVEL_WEIGHTS as HPS_LEVEL_WEIGHTS, PathTaskSpec, add_openings, make_path_tasks
from panoseek.scenes.layout import AngularPlanner, Layout, Room, place
from panoseek.scenes.library import ObjectSpec, category
from panoseek.scenes.raster import DEFAULT_WIDTH, render_layout

# Bump whenever a change alters layouts, tasks or pixels: it is part of every synth fingerprint.
GENERATOR_VERSION = "2.0"
# Modules whose code decides layouts, tasks, levels or pixels (see generator_digest).
GENERATOR_MODULES = tuple(
    f"panoseek.scenes.{name}"
    for name in ("catalog", "hos", "hps", "layout", "legibility", "levels", "library", "raster", "scene", "synth",
                 "visibility")
) + ("panoseek.envs.geometry",)


@dataclass
class Scene:
    """A layout and the tasks asked in it."""

    layout: Layout
    object_tasks: list[ObjectTaskSpec]
    path_tasks: list[PathTaskSpec]

    def render(self, width: int = DEFAULT_WIDTH, exclude: tuple[int, ...] = ()) -> np.ndarray:
        return render_layout(self.layout, width, exclude=exclude)


def build_scene(seed: int, type_name: str, n_object: int = 3, n_path: int = 2) -> Scene:
    """Build scene ``seed`` of type ``type_name`` with up to that many tasks of each kind."""
    rng = np.random.default_rng(seed)
    style = scene_type(type_name)
    layout = _layout(seed, style, rng)
    planner = AngularPlanner()
    add_openings(layout, planner, rng)
    levels = [int(rng.choice(4, p=HPS_LEVEL_WEIGHTS)) for _ in range(min(n_path, len(layout.openings)))]
    path_tasks = make_path_tasks(layout, planner, rng, levels)
    used: set[str] = set()
    object_tasks = []
    for _ in range(n_object * 3):
        if len(object_tasks) == n_object:
            break
        task = make_object_task(layout, planner, rng, used)
        if task is not None:
            object_tasks.append(task)
    _add_clutter(layout, planner, rng, used)
    return Scene(layout, object_tasks, path_tasks)


def _layout(seed: int, style: SceneType, rng: np.random.Generator) -> Layout:
    if style.indoor:
        half_x, half_z = rng.uniform(*style.half_extent, size=2)
    else:  # streets are long and narrow; squares and parks wide
        half_x = rng.uniform(*style.half_extent)
        wide = style.name in ("town_square", "city_park")
        half_z = half_x * (rng.uniform(0.8, 1.3) if wide else rng.uniform(3.0, 6.0))
    room = Room(
        half_x=float(half_x),
        half_z=float(half_z),
        offset_x=float(rng.uniform(-0.4, 0.4) * half_x),
        offset_z=float(rng.uniform(-0.4, 0.4) * half_z),
        rotation=float(rng.uniform(0, 360)),
        height=float(rng.uniform(*style.ceiling)),
        camera_height=float(rng.uniform(1.45, 1.8)),
        indoor=style.indoor,
    )
    warm = rng.uniform(-0.06, 0.06)
    return Layout(
        seed=seed,
        scene_type=style,
        room=room,
        floor=str(rng.choice(style.floors)),
        wall=str(rng.choice(style.walls)),
        wall_tone=tuple(style.wall_tones[int(rng.integers(len(style.wall_tones)))]),
        floor_tone=tuple(style.floor_tones[int(rng.integers(len(style.floor_tones)))]),
        ceiling_tone=tuple(int(v) for v in rng.integers(200, 240, 3)),
        sky_tone=(int(rng.integers(110, 160)), int(rng.integers(160, 200)), int(rng.integers(215, 245))),
        brightness=float(rng.uniform(0.85, 1.08)),
        tint=(1.0 + warm, 1.0, 1.0 - warm),
    )


def _add_clutter(layout: Layout, planner: AngularPlanner, rng: np.random.Generator, used: set[str]) -> None:
    """Typical objects of the place, none of a category a task relies on being unique."""
    pool = [name for name in layout.scene_type.clutter if name in allowed_categories(layout, used)]
    if not pool:
        return
    for _ in range(int(rng.integers(14, 30))):
        name = pool[int(rng.integers(len(pool)))]
        cat = category(name)
        colour = cat.colours[int(rng.integers(len(cat.colours)))]
        text = cat.texts[int(rng.integers(len(cat.texts)))] if cat.texts else ""
        pattern = "plain" if not cat.patterned or rng.random() < 0.7 else ("striped", "dotted", "checked")[int(rng.integers(3))]
        spec = ObjectSpec(name, colour, pattern, text, int(rng.integers(1 << 30)))
        place(layout, planner, rng, spec, angular_size=(1.0, 40.0), tries=4, margin=0.3)


@lru_cache(maxsize=1)
def generator_digest() -> str:
    """Short hash of the generator's source code.

    Part of every synth fingerprint and on-disk cache key, so a code change that could
    alter tasks or pixels changes them even when ``GENERATOR_VERSION`` is not bumped
    (a comment edit changes it too: a false alarm is safer than a silent mismatch).
    """
    digest = hashlib.sha256()
    for name in GENERATOR_MODULES:
        origin = importlib.util.find_spec(name).origin
        with open(origin, "rb") as source:
            digest.update(name.encode() + b"\0" + source.read())
    return digest.hexdigest()[:12]
