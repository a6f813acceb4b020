"""The bundled ``synth`` suites: procedural scenes turned into benchmark tasks.

Every split is a list of scene seeds; each scene asks :data:`OBJECT_PER_SCENE` object
tasks and :data:`PATH_PER_SCENE` path tasks, so task ``i`` of a split belongs to scene
``i // TASKS_PER_SCENE`` and a split can be listed lazily (``synth:train`` builds
scenes only when its tasks are read). Panoramas are callables that generate on first
use, through a small process-wide cache and an optional on-disk cache
(:mod:`panoseek.scenes.cache`).

=============  ======  =============================  ==============================
split          scenes  tasks (HOS + HPS)              scene types
=============  ======  =============================  ==============================
train          1200    3600 + 2400 = 6000             12 seen types
val            80      240 + 160 = 400                12 seen types
test           200     600 + 400 = 1000 (x4 starts)   12 seen types
test-unseen    100     300 + 200 = 500                6 types never in train
=============  ======  =============================  ==============================
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np

from panoseek.envs.task import HOS, HPS, Task
from panoseek.scenes.cache import cached_render
from panoseek.scenes.catalog import SEEN_TYPES, UNSEEN_TYPES, scene_type
from panoseek.scenes.layout import Placement
from panoseek.scenes.library import ObjectSpec, draw_object
from panoseek.scenes.raster import DEFAULT_WIDTH
from panoseek.scenes.scene import GENERATOR_VERSION, Scene, build_scene, generator_digest
from panoseek.scenes.suite import Suite, SuiteError, fingerprint

OBJECT_PER_SCENE = 3
PATH_PER_SCENE = 2
TASKS_PER_SCENE = OBJECT_PER_SCENE + PATH_PER_SCENE
MIN_OPENINGS = 3  # every split's scenes have 3-5 openings (add_openings may fall short in small rooms)
_MAX_ATTEMPTS = 50  # seeds tried for one scene slot before giving up (never reached in practice)


@dataclass(frozen=True)
class SplitPlan:
    """Which scenes a split holds: a seed base, a count and the scene types it cycles through."""

    seed_base: int
    scenes: int
    types: tuple[str, ...]


SPLITS = {
    "train": SplitPlan(1_000_000, 1200, SEEN_TYPES),
    "val": SplitPlan(2_000_000, 80, SEEN_TYPES),
    "test": SplitPlan(3_000_000, 200, SEEN_TYPES),
    "test-unseen": SplitPlan(4_000_000, 100, UNSEEN_TYPES),
}


@dataclass(frozen=True)
class ScenePanorama:
    """Zero-argument callable producing a scene's panorama (picklable, for worker processes)."""

    seed: int
    scene_type: str
    width: int = DEFAULT_WIDTH

    def __call__(self) -> np.ndarray:
        return cached_render(
            self.seed, self.scene_type, self.width, lambda: scene(self.seed, self.scene_type).render(self.width)
        )


@lru_cache(maxsize=256)
def scene(seed: int, type_name: str) -> Scene:
    """The scene of a seed (layouts are cheap but not free: keep the recent ones)."""
    return build_scene(seed, type_name, OBJECT_PER_SCENE, PATH_PER_SCENE)


def scene_slot(split: str, index: int) -> tuple[int, str]:
    """(seed, scene type) of scene ``index`` of a split: the first seed giving a full scene (tasks, openings)."""
    plan = SPLITS[split]
    type_name = plan.types[index % len(plan.types)]
    for attempt in range(_MAX_ATTEMPTS):
        seed = plan.seed_base + index + attempt * 100_000_000
        built = scene(seed, type_name)
        full = len(built.object_tasks) == OBJECT_PER_SCENE and len(built.path_tasks) == PATH_PER_SCENE
        if full and len(built.layout.openings) >= MIN_OPENINGS:
            return seed, type_name
    raise RuntimeError(f"synth:{split}: scene {index} found no full layout in {_MAX_ATTEMPTS} seeds")


def scene_tasks(split: str, index: int) -> tuple[Task, ...]:
    """The tasks of scene ``index`` of a split (object tasks first, then path tasks)."""
    seed, type_name = scene_slot(split, index)
    built = scene(seed, type_name)
    panorama = ScenePanorama(seed, type_name)
    style = scene_type(type_name)
    common = {"scene_seed": seed, "scene_type": type_name, "macro": style.macro, "scene_label": style.label,
              "split": split, "generator_version": GENERATOR_VERSION}
    tasks = []
    for k, spec in enumerate(built.object_tasks):
        target: Placement = built.layout.placements[spec.target]
        tasks.append(Task(
            id=f"synth-{split}-{index:05d}-hos{k}",
            kind=HOS,
            instruction=spec.instruction,
            panorama=panorama,
            panorama_id=f"synth:{seed}",
            yaw_range=tuple(round(v, 3) for v in target.yaw_range),
            pitch_range=tuple(round(v, 3) for v in target.pitch_range),
            start_yaws=spec.start_yaws,
            levels=spec.levels,
            metadata={**common, "instruction_type": spec.kind, "category": spec.attributes["category"],
                      "attributes": spec.attributes, "target_index": spec.target, "object": target.to_dict()},
        ))
    openings = [[round(v, 3) for v in o.yaw_range] for o in built.layout.openings]
    for k, spec in enumerate(built.path_tasks):
        opening = built.layout.openings[spec.opening]
        tasks.append(Task(
            id=f"synth-{split}-{index:05d}-hps{k}",
            kind=HPS,
            instruction=spec.instruction,
            panorama=panorama,
            panorama_id=f"synth:{seed}",
            yaw_range=tuple(round(v, 3) for v in opening.yaw_range),
            start_yaws=spec.start_yaws,
            levels=(spec.level,) * len(spec.start_yaws),
            metadata={**common, "category": "path", "goal": spec.goal, "goal_sign_text": spec.sign_text, "openings": openings,
                      "goal_opening": spec.opening, "cue_opening": spec.cue_opening},
        ))
    return tuple(tasks)


class SynthTasks(Sequence[Task]):
    """The tasks of a split, built scene by scene on first access (immutable)."""

    def __init__(self, split: str) -> None:
        self.split = split
        self._scenes = SPLITS[split].scenes

    def __len__(self) -> int:
        return self._scenes * TASKS_PER_SCENE

    def __getitem__(self, index):
        if isinstance(index, slice):
            return tuple(self[i] for i in range(*index.indices(len(self))))
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"synth:{self.split} has {len(self)} tasks, index {index} is out of range")
        return _scene_tasks_cached(self.split, index // TASKS_PER_SCENE)[index % TASKS_PER_SCENE]


@lru_cache(maxsize=256)
def _scene_tasks_cached(split: str, index: int) -> tuple[Task, ...]:
    return scene_tasks(split, index)


def split_fingerprint(split: str) -> str:
    """Generator version and source digest, the split's seeds and scene types, and the pixel-changing libraries."""
    plan = SPLITS[split]
    return fingerprint({
        "suite": f"synth:{split}",
        "generator_version": GENERATOR_VERSION,
        "generator_source": generator_digest(),
        "seed_base": plan.seed_base,
        "scenes": plan.scenes,
        "types": list(plan.types),
        "tasks_per_scene": [OBJECT_PER_SCENE, PATH_PER_SCENE],
        "numpy": np.__version__,
        "opencv": cv2.__version__,
    })


def synth_suite(split: str) -> Suite:
    """The suite ``synth:SPLIT``; train is lazy, the others are built at once."""
    if split not in SPLITS:
        raise SuiteError(f"unknown synth split {split!r}; valid splits: {', '.join(SPLITS)}")
    tasks = SynthTasks(split)
    if split != "train":
        tasks = tuple(task for i in range(SPLITS[split].scenes) for task in scene_tasks(split, i))
    return Suite(f"synth:{split}", tasks, split_fingerprint(split))


def exemplar_image(task: Task, height: int = 160) -> np.ndarray:
    """A clean RGB picture of an object task's target on a neutral background.

    For template-guided agents: the same drawing as in the scene, without perspective,
    lighting or clutter.
    """
    data = task.metadata.get("object")
    if task.kind != HOS or not data:
        raise ValueError(f"task {task.id!r} has no exemplar: only synth object-search tasks carry one")
    spec = ObjectSpec.from_dict(data["spec"])
    width_m, height_m = data["size"]
    sprite = draw_object(spec, height, aspect=width_m / height_m).astype(np.float32)
    alpha = sprite[..., 3:] / 255.0
    background = np.full(sprite.shape[:2] + (3,), 128.0, np.float32)
    picture = sprite[..., :3] * alpha + background * (1.0 - alpha)
    return np.pad(picture.astype(np.uint8), ((8, 8), (8, 8), (0, 0)), constant_values=128)
