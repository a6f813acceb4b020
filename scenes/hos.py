"""Object search (HOS): targets, look-alike distractors, instructions, start directions.

Four instruction types of growing difficulty:

* ``category``: the only object of its category ("Find the fire extinguisher.");
* ``attribute``: same-category look-alikes differ in colour or pattern
  ("Find the green striped backpack.");
* ``text``: look-alikes differ only in what they say or show
  ("Find the shop sign that says 'BAKERY'.", "Find the clock showing 4:45.");
* ``relation``: an identical twin stands elsewhere; only the relation to a unique
  anchor tells them apart ("Find the red suitcase under the clock.").

Targets and their look-alikes are drawn as large as the legibility rules need
(:mod:`panoseek.scenes.legibility`) and up to 30°. A look-alike (same category, other
attribute or text, or the relation's twin) never comes near the target's judged
window, so an agent that only recognises the category cannot score by submitting it.

Start yaws never look at the target, as in H* Bench: four yaws 90° apart from a
seeded random offset. Each start's level (Easy/Medium/Hard by the target's visibility
in the start view, see :mod:`panoseek.scenes.visibility`) is computed afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from panoseek.envs.geometry import wrap_yaw, yaw_distance
from panoseek.envs.judge import YAW_TOLERANCE
from panoseek.envs.task import HOS
from panoseek.scenes.layout import AngularPlanner, Layout, Placement, place
from panoseek.scenes.legibility import is_legible, min_angular_size
from panoseek.scenes.library import CATEGORIES, FLOOR, PATTERNS, ObjectSpec, category, describe
from panoseek.scenes.visibility import AMBIGUOUS, start_levels

KINDS = ("category", "attribute", "text", "relation")
KIND_WEIGHTS = (0.25, 0.3, 0.25, 0.2)
TARGET_SIZE = (2.0, 30.0)  # degrees, larger angular dimension (raised per object to the legibility minimum)
SIZE_SPREAD = 2.0  # sizes are drawn log-uniformly from an object's legible minimum up to this many times it
# A look-alike keeps this far beyond the target's judged yaw window (covers its own half width, <= 15°).
LOOKALIKE_CLEARANCE = TARGET_SIZE[1] / 2.0 + 1.0
SIGNAGE = {"direction_sign", "pictogram_sign", "exit_sign"}  # reserved for path cues
ANCHORS = ("clock", "painting", "poster", "screen", "vending_machine", "potted_plant", "atm", "kiosk",
           "fire_extinguisher", "menu_board", "ticket_machine", "phone_booth", "mailbox", "flag", "banner", "door")
# Categories that look alike under one name: a task on one keeps all of them out of the clutter.
FAMILIES = ({"person", "child"},)
# Categories whose texts a text task may ask for: at least 4 texts, legible within TARGET_SIZE.
TEXT_CATEGORIES = tuple(name for name, cat in CATEGORIES.items() if len(cat.texts) >= 4 and name not in SIGNAGE
                        and max(min_angular_size(ObjectSpec(name, text=t), "text") for t in cat.texts) <= TARGET_SIZE[1])
FIND = ("Find the {}.", "Look at the {}.", "Where is the {}? Face it.", "Turn towards the {}.")


@dataclass
class ObjectTaskSpec:
    """One object task of a scene (before it becomes a :class:`~panoseek.envs.task.Task`)."""

    instruction: str
    kind: str
    target: int  # index into layout.placements
    start_yaws: tuple[float, ...] = ()
    levels: tuple[int, ...] = ()
    attributes: dict = field(default_factory=dict)


def allowed_categories(layout: Layout, used: set[str]) -> list[str]:
    """Categories that may appear in this scene and are not yet taken by another task."""
    indoor = layout.room.indoor
    return [name for name, cat in CATEGORIES.items()
            if name not in used and name not in SIGNAGE and (not cat.outdoor_only or not indoor)]


def make_object_task(layout: Layout, planner: AngularPlanner, rng: np.random.Generator, used: set[str]) -> ObjectTaskSpec | None:
    """Add one HOS task (target, distractors, anchor) to the layout; None if nothing fits."""
    kind = KINDS[int(rng.choice(len(KINDS), p=KIND_WEIGHTS))]
    builder = {"category": _category_task, "attribute": _attribute_task, "text": _text_task,
               "relation": _relation_task}[kind]
    for _ in range(4):
        mark = len(layout.placements)
        trial = set(used)
        spec = builder(layout, planner, rng, trial)
        if spec is not None:
            spec.start_yaws = blind_starts(rng)
            levels = start_levels(layout.placements[spec.target], np.array(spec.start_yaws))
            if AMBIGUOUS not in levels:  # a start on the view's edge has no level: drop the task, not the start
                used.update(trial)
                spec.levels = tuple(int(v) for v in levels)
                return spec
        del layout.placements[mark:]  # a failed attempt leaves nothing behind (planner regions stay reserved)
    return None


def blind_starts(rng: np.random.Generator, n: int = 4) -> tuple[float, ...]:
    """``n`` integer start yaws evenly spaced from a random offset; they never depend on the target."""
    offset = int(rng.integers(0, 360 // n))
    return tuple(float((offset + k * 360 // n) % 360) for k in range(n))


def _use(used: set[str], name: str) -> None:
    """Reserve a category (and its look-alike family) for this scene's task."""
    used.add(name)
    for family in FAMILIES:
        if name in family:
            used.update(family)


def _pick(rng, options, scene_pool, bias: float = 0.6) -> str | None:
    """A category from ``options``, preferring those typical of the scene."""
    if not options:
        return None
    typical = [o for o in options if o in scene_pool]
    pool = typical if typical and rng.random() < bias else options
    return pool[int(rng.integers(len(pool)))]


def _spec(rng, name: str, colour: str | None = None, pattern: str | None = None, text: str | None = None) -> ObjectSpec:
    cat = category(name)
    colour = colour or cat.colours[int(rng.integers(len(cat.colours)))]
    if pattern is None:
        pattern = PATTERNS[int(rng.integers(len(PATTERNS)))] if cat.patterned and rng.random() < 0.4 else "plain"
    if text is None:
        text = cat.texts[int(rng.integers(len(cat.texts)))] if cat.texts else ""
    return ObjectSpec(name, colour, pattern, text, int(rng.integers(1 << 30)))


def _target(layout, planner, rng, spec, kind, role="target", **kwargs) -> Placement | None:
    """Place an object a task asks about, at a legible size (targets, look-alikes and anchors alike)."""
    low = max(TARGET_SIZE[0], min_angular_size(spec, kind))
    if low > TARGET_SIZE[1]:
        return None
    return place(layout, planner, rng, spec, role=role, angular_size=(low, min(TARGET_SIZE[1], SIZE_SPREAD * low)),
                 accept=lambda card: is_legible(card, kind), **kwargs)


def _lookalike(layout, planner, rng, spec, kind, target: Placement, keep_off=None) -> Placement | None:
    """Place a look-alike of ``target`` wholly outside its judged yaw window.

    ``keep_off(card)`` may refuse a spot (the relation's twin must stay away from the anchor).
    """
    reach = max(target.half_yaw, YAW_TOLERANCE[HOS]) + LOOKALIKE_CLEARANCE
    for _ in range(6):
        yaw = wrap_yaw(target.yaw + reach + rng.uniform(0.0, 360.0 - 2.0 * reach))
        card = _target(layout, planner, rng, spec, kind, role="distractor", yaw=yaw, tries=2)
        if card is None:
            continue
        if keep_off is not None and keep_off(card):
            layout.placements.remove(card)
            continue
        return card
    return None


def _index(layout: Layout, placement: Placement) -> int:
    return len(layout.placements) - 1 - layout.placements[::-1].index(placement)


def _category_task(layout, planner, rng, used):
    name = _pick(rng, allowed_categories(layout, used), layout.scene_type.clutter)
    if name is None:
        return None
    target = _target(layout, planner, rng, _spec(rng, name), "category")
    if target is None:
        return None
    _use(used, name)
    noun = category(name).noun
    return ObjectTaskSpec(FIND[int(rng.integers(len(FIND)))].format(noun), "category", _index(layout, target),
                          attributes={"category": name, "colour": target.spec.colour})


def _attribute_task(layout, planner, rng, used):
    options = [n for n in allowed_categories(layout, used) if len(category(n).colours) >= 3]
    name = _pick(rng, options, layout.scene_type.clutter)
    if name is None:
        return None
    cat = category(name)
    spec = _spec(rng, name)
    n_distractors = int(rng.integers(2, 4))
    distractors = []
    use_pattern = cat.patterned and rng.random() < 0.5
    for _ in range(n_distractors):
        if use_pattern and rng.random() < 0.5:
            others = [p for p in PATTERNS if p != spec.pattern]
            distractors.append(_spec(rng, name, spec.colour, others[int(rng.integers(len(others)))]))
        else:
            others = [c for c in cat.colours if c != spec.colour]
            distractors.append(_spec(rng, name, others[int(rng.integers(len(others)))]))
    target = _target(layout, planner, rng, spec, "attribute")
    if target is None:
        return None
    if sum(_lookalike(layout, planner, rng, d, "attribute", target) is not None for d in distractors) < 2:
        return None
    same_colour = any(d.colour == spec.colour for d in distractors)
    _use(used, name)
    phrase = describe(spec, colour=True, pattern=same_colour or (spec.pattern != "plain" and rng.random() < 0.5))
    return ObjectTaskSpec(FIND[int(rng.integers(len(FIND)))].format(phrase), "attribute", _index(layout, target),
                          attributes={"category": name, "colour": spec.colour, "pattern": spec.pattern})


def _text_task(layout, planner, rng, used):
    options = [n for n in allowed_categories(layout, used) if n in TEXT_CATEGORIES]
    name = _pick(rng, options, layout.scene_type.clutter, bias=0.5)
    if name is None:
        return None
    cat = category(name)
    texts = list(rng.permutation(cat.texts))
    spec = _spec(rng, name, text=str(texts[0]))
    target = _target(layout, planner, rng, spec, "text")
    if target is None:
        return None
    placed = 0
    for text in texts[1 : 1 + int(rng.integers(2, 4))]:
        colour = spec.colour if rng.random() < 0.6 else None
        placed += _lookalike(layout, planner, rng, _spec(rng, name, colour, text=str(text)), "text", target) is not None
    if placed < 2:
        return None
    _use(used, name)
    quoted = spec.text if name in ("clock", "door", "bus") else f"'{spec.text}'"
    instruction = f"Find the {cat.noun} {cat.text_phrase} {quoted}."
    return ObjectTaskSpec(instruction, "text", _index(layout, target),
                          attributes={"category": name, "colour": spec.colour, "text": spec.text})


def _relation_task(layout, planner, rng, used):
    allowed = allowed_categories(layout, used)
    anchor_name = _pick(rng, [a for a in ANCHORS if a in allowed], layout.scene_type.clutter)
    target_options = [n for n in allowed if n != anchor_name and category(n).mount == FLOOR and n not in ANCHORS
                      and category(n).size[1] < 2.0]
    target_name = _pick(rng, target_options, layout.scene_type.clutter)
    if anchor_name is None or target_name is None:
        return None
    anchor = _target(layout, planner, rng, _spec(rng, anchor_name), "relation", role="anchor")
    if anchor is None:
        return None
    spec = _spec(rng, target_name)
    anchor_floor = category(anchor_name).mount != FLOOR
    relation = "under" if anchor_floor and rng.random() < 0.5 else ("left of" if rng.random() < 0.5 else "right of")
    target = None
    for gap in (1.5, 3.0, 5.0):
        if relation == "under":
            at = anchor.yaw
        else:
            # Beside the anchor: its half width + the target's (estimated at ~5°) + a gap.
            side = -1.0 if relation == "left of" else 1.0
            at = anchor.yaw + side * (anchor.half_yaw + gap + 3.0)
        target = _target(layout, planner, rng, spec, "relation", yaw=wrap_yaw(at), tries=6)
        if target is not None:
            break
    if target is None:
        return None
    if relation != "under" and yaw_distance(target.yaw, anchor.yaw) > anchor.half_yaw + target.half_yaw + 8.0:
        return None
    twin = ObjectSpec(spec.category, spec.colour, spec.pattern, spec.text, int(rng.integers(1 << 30)))
    # Near the anchor the relation would not tell the twins apart.
    if _lookalike(layout, planner, rng, twin, "relation", target,
                  keep_off=lambda card: yaw_distance(card.yaw, anchor.yaw) < anchor.half_yaw + 25.0) is None:
        return None
    _use(used, anchor_name)
    _use(used, target_name)
    phrase = describe(spec, colour=True, pattern=spec.pattern != "plain")
    anchor_noun = category(anchor_name).noun
    where = {"under": "under", "left of": "to the left of", "right of": "to the right of"}[relation]
    instruction = f"Find the {phrase} {where} the {anchor_noun}."
    return ObjectTaskSpec(instruction, "relation", _index(layout, target),
                          attributes={"category": target_name, "colour": spec.colour, "pattern": spec.pattern,
                                      "anchor": anchor_name, "relation": relation})
