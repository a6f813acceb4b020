"""The object library: procedurally drawn object categories with attributes.

Every object is a flat sprite drawn with OpenCV into an RGBA image from an
:class:`ObjectSpec` (category + colour + pattern + printed text + a drawing seed), so
the same spec draws the same picture in any process and at any size. Attributes are
what instructions use to single one object out among look-alikes.

Drawings use unit coordinates: ``x`` and ``y`` in [0, 1] across the sprite, ``y``
downwards. The *body* of an object is painted in its colour and pattern; details
(wheels, screens, handles) use fixed or accent colours.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable

import cv2
import numpy as np

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (200, 40, 40),
    "orange": (235, 130, 30),
    "yellow": (235, 205, 40),
    "green": (50, 150, 60),
    "blue": (40, 80, 190),
    "purple": (120, 60, 160),
    "pink": (235, 130, 170),
    "white": (235, 235, 230),
    "black": (35, 35, 38),
    "grey": (130, 130, 135),
    "brown": (120, 75, 40),
    "teal": (30, 140, 140),
}
PATTERNS = ("plain", "striped", "dotted", "checked")
PATTERN_ADJECTIVES = {"plain": "plain", "striped": "striped", "dotted": "polka-dot", "checked": "checked"}

REFERENCE_HEIGHT = 400  # px: text sizes are measured on a sprite this high (they scale with it)
# Mount decides where an object stands: on the floor, on a wall at eye height, or high up.
FLOOR, WALL, HIGH = "floor", "wall", "high"


@dataclass(frozen=True)
class ObjectSpec:
    """What to draw: everything an instruction may refer to, plus a seed for details.

    ``lines`` holds the rows of a direction sign as ``(arrow, pictogram, text)`` with
    arrow in {"", "up", "left", "right"} and pictogram a key of :data:`PICTOGRAMS` or "".
    """

    category: str
    colour: str = "grey"
    pattern: str = "plain"
    text: str = ""
    seed: int = 0
    lines: tuple[tuple[str, str, str], ...] = ()

    def to_dict(self) -> dict:
        data = {"category": self.category, "colour": self.colour, "pattern": self.pattern, "seed": self.seed}
        if self.text:
            data["text"] = self.text
        if self.lines:
            data["lines"] = [list(line) for line in self.lines]
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "ObjectSpec":
        lines = tuple(tuple(line) for line in data.get("lines", ()))
        return cls(data["category"], data["colour"], data["pattern"], data.get("text", ""), int(data["seed"]), lines)


@dataclass(frozen=True)
class Category:
    """An object category: its noun, physical size (metres), mount, and drawing."""

    name: str
    noun: str
    size: tuple[float, float]  # width, height in metres
    mount: str
    draw: Callable[["Painter", ObjectSpec], None]
    texts: tuple[str, ...] = ()  # printed texts it can carry (empty: none)
    patterned: bool = True  # whether the body takes a pattern
    colours: tuple[str, ...] = tuple(COLOURS)
    outdoor_only: bool = False
    text_phrase: str = "that says"  # "the clock showing 4:30"

    @property
    def aspect(self) -> float:
        return self.size[0] / self.size[1]


# --------------------------------------------------------------------------- painter


class Painter:
    """Draws shapes in unit coordinates onto an RGBA canvas (anti-aliased OpenCV calls)."""

    def __init__(self, width: int, height: int, colour: tuple[int, int, int], pattern: str, rng: np.random.Generator):
        self.w, self.h = width, height
        self.canvas = np.zeros((height, width, 4), dtype=np.uint8)
        self.colour = colour
        self.rng = rng
        self._body_fill = np.dstack([_pattern_image(width, height, colour, pattern), np.full((height, width), 255, np.uint8)])
        self._thick = max(1, round(min(width, height) / 60))
        self.text_caps: list[float] = []  # cap height of every text written, as a fraction of the height

    def _pt(self, x: float, y: float) -> tuple[int, int]:
        # 4 fractional bits: smooth placement of small shapes.
        return round(x * self.w * 16), round(y * self.h * 16)

    def _px(self, length: float, axis: str = "w") -> int:
        return max(1, round(length * (self.w if axis == "w" else self.h) * 16))

    def _target(self, body: bool) -> np.ndarray:
        return np.zeros((self.h, self.w), np.uint8) if body else self.canvas

    def _finish(self, body: bool, mask: np.ndarray) -> None:
        if body:
            cv2.copyTo(self._body_fill, mask, self.canvas)

    @staticmethod
    def _rgba(colour) -> tuple:
        return (255,) if colour is None else (*[int(c) for c in colour], 255)

    def rect(self, x0, y0, x1, y1, colour=None, body=False) -> None:
        target = self._target(body)
        cv2.rectangle(target, self._pt(x0, y0), self._pt(x1, y1), self._rgba(colour), -1, cv2.LINE_AA, 4)
        self._finish(body, target)

    def poly(self, points, colour=None, body=False) -> None:
        target = self._target(body)
        pts = np.array([self._pt(x, y) for x, y in points], np.int32)
        cv2.fillPoly(target, [pts], self._rgba(colour), cv2.LINE_AA, 4)
        self._finish(body, target)

    def ellipse(self, cx, cy, rx, ry, colour=None, body=False, start=0, end=360) -> None:
        target = self._target(body)
        axes = (self._px(rx, "w"), self._px(ry, "h"))
        cv2.ellipse(target, self._pt(cx, cy), axes, 0, start, end, self._rgba(colour), -1, cv2.LINE_AA, 4)
        self._finish(body, target)

    def ring(self, cx, cy, rx, ry, colour, width: float = 0.03) -> None:
        thickness = max(1, round(width * min(self.w, self.h)))
        axes = (self._px(rx, "w"), self._px(ry, "h"))
        cv2.ellipse(self.canvas, self._pt(cx, cy), axes, 0, 0, 360, self._rgba(colour), thickness, cv2.LINE_AA, 4)

    def line(self, x0, y0, x1, y1, colour, width: float = 0.03) -> None:
        thickness = max(1, round(width * min(self.w, self.h)))
        cv2.line(self.canvas, self._pt(x0, y0), self._pt(x1, y1), self._rgba(colour), thickness, cv2.LINE_AA, 4)

    def text(self, text: str, x0, y0, x1, y1, colour) -> None:
        """Write ``text`` centred and as large as fits in the box (Hershey font)."""
        if not text:
            return
        box_w, box_h = (x1 - x0) * self.w, (y1 - y0) * self.h
        font = cv2.FONT_HERSHEY_DUPLEX
        (tw, th), base = cv2.getTextSize(text, font, 1.0, 1)
        scale = min(box_w / max(tw, 1), box_h / max(th + base, 1))
        thickness = max(1, round(scale * 1.6))
        (tw, th), base = cv2.getTextSize(text, font, scale, thickness)
        self.text_caps.append(th / self.h)
        org = (round(x0 * self.w + (box_w - tw) / 2), round(y0 * self.h + (box_h + th) / 2 - base / 3))
        cv2.putText(self.canvas, text, org, font, scale, self._rgba(colour), thickness, cv2.LINE_AA)


def _pattern_image(width: int, height: int, colour: tuple[int, int, int], pattern: str) -> np.ndarray:
    """The body colour with its pattern, over the whole canvas."""
    image = np.empty((height, width, 3), np.uint8)
    image[:] = colour
    contrast = np.array([255, 255, 255]) if sum(colour) < 300 else np.array([30, 30, 30])
    second = tuple(int(c) for c in (0.45 * np.array(colour) + 0.55 * contrast))
    step = max(4, round(min(width, height) / 5))
    yy, xx = np.mgrid[0:height, 0:width]
    if pattern == "striped":
        mask = ((xx + yy) // (step // 2)) % 2 == 0
    elif pattern == "checked":
        mask = ((xx // step) + (yy // step)) % 2 == 0
    elif pattern == "dotted":
        mask = ((xx % step - step / 2) ** 2 + (yy % step - step / 2) ** 2) < (step / 4.2) ** 2
    else:
        return image
    image[mask] = second
    return image


def _shade(colour, factor: float) -> tuple[int, int, int]:
    return tuple(int(min(255, max(0, c * factor))) for c in colour)


DARK = (30, 30, 34)
METAL = (150, 152, 158)
WHITE = (240, 240, 236)
GLASS = (120, 160, 185)
SCREEN = (20, 35, 70)
GREENERY = (45, 115, 50)

# ------------------------------------------------------------------------ pictograms
# Glyphs used on signs (HPS cues) and as stand-alone pictogram signs; drawn in a unit box.


def _picto_person(p: Painter, x0, y0, s, c, dress: bool = False) -> None:
    k = p.h / p.w
    p.ellipse(x0 + 0.5 * s * k, y0 + 0.13 * s, 0.11 * s * k, 0.11 * s, c)
    if dress:
        p.poly([(x0 + 0.5 * s * k, y0 + 0.27 * s), (x0 + 0.8 * s * k, y0 + 0.7 * s), (x0 + 0.2 * s * k, y0 + 0.7 * s)], c)
    else:
        p.rect(x0 + 0.32 * s * k, y0 + 0.28 * s, x0 + 0.68 * s * k, y0 + 0.62 * s, c)
    p.rect(x0 + 0.36 * s * k, y0 + 0.6 * s, x0 + 0.47 * s * k, y0 + 0.97 * s, c)
    p.rect(x0 + 0.53 * s * k, y0 + 0.6 * s, x0 + 0.64 * s * k, y0 + 0.97 * s, c)


def _picto_toilets(p, x0, y0, s, c):
    k = p.h / p.w
    _picto_person(p, x0 - 0.2 * s * k, y0, s, c)
    p.line(x0 + 0.5 * s * k, y0 + 0.05 * s, x0 + 0.5 * s * k, y0 + 0.95 * s, c, 0.03 * s)
    _picto_person(p, x0 + 0.2 * s * k, y0, s, c, dress=True)


def _picto_vehicle(p, x0, y0, s, c, tall: float, windows: int):
    k = p.h / p.w
    p.rect(x0 + 0.05 * s * k, y0 + (0.8 - tall) * s, x0 + 0.95 * s * k, y0 + 0.8 * s, c)
    for i in range(windows):
        a = x0 + (0.12 + i * 0.8 / windows) * s * k
        p.rect(a, y0 + (0.86 - tall) * s, a + 0.6 / windows * s * k, y0 + (0.86 - tall + tall * 0.4) * s, WHITE)
    for wx in (0.25, 0.75):
        p.ellipse(x0 + wx * s * k, y0 + 0.82 * s, 0.09 * s * k, 0.09 * s, c)


def _picto_train(p, x0, y0, s, c):
    _picto_vehicle(p, x0, y0, s, c, 0.65, 1)


def _picto_bus(p, x0, y0, s, c):
    _picto_vehicle(p, x0, y0, s, c, 0.55, 3)


def _picto_taxi(p, x0, y0, s, c):
    k = p.h / p.w
    _picto_vehicle(p, x0, y0, s, c, 0.3, 2)
    p.rect(x0 + 0.38 * s * k, y0 + 0.35 * s, x0 + 0.62 * s * k, y0 + 0.48 * s, c)


def _picto_plane(p, x0, y0, s, c):
    k = p.h / p.w
    p.poly([(x0 + 0.45 * s * k, y0 + 0.05 * s), (x0 + 0.55 * s * k, y0 + 0.05 * s), (x0 + 0.55 * s * k, y0 + 0.95 * s),
            (x0 + 0.45 * s * k, y0 + 0.95 * s)], c)
    p.poly([(x0 + 0.05 * s * k, y0 + 0.55 * s), (x0 + 0.5 * s * k, y0 + 0.3 * s), (x0 + 0.95 * s * k, y0 + 0.55 * s)], c)
    p.poly([(x0 + 0.3 * s * k, y0 + 0.95 * s), (x0 + 0.5 * s * k, y0 + 0.8 * s), (x0 + 0.7 * s * k, y0 + 0.95 * s)], c)


def _picto_exit(p, x0, y0, s, c):
    k = p.h / p.w
    p.rect(x0 + 0.55 * s * k, y0 + 0.05 * s, x0 + 0.95 * s * k, y0 + 0.95 * s, c)
    p.rect(x0 + 0.62 * s * k, y0 + 0.12 * s, x0 + 0.88 * s * k, y0 + 0.95 * s, WHITE)
    p.line(x0 + 0.05 * s * k, y0 + 0.5 * s, x0 + 0.5 * s * k, y0 + 0.5 * s, c, 0.06 * s)
    p.poly([(x0 + 0.5 * s * k, y0 + 0.32 * s), (x0 + 0.72 * s * k, y0 + 0.5 * s), (x0 + 0.5 * s * k, y0 + 0.68 * s)], c)


def _picto_lift(p, x0, y0, s, c):
    k = p.h / p.w
    p.rect(x0 + 0.15 * s * k, y0 + 0.05 * s, x0 + 0.85 * s * k, y0 + 0.95 * s, c)
    p.poly([(x0 + 0.3 * s * k, y0 + 0.42 * s), (x0 + 0.5 * s * k, y0 + 0.15 * s), (x0 + 0.7 * s * k, y0 + 0.42 * s)], WHITE)
    p.poly([(x0 + 0.3 * s * k, y0 + 0.58 * s), (x0 + 0.5 * s * k, y0 + 0.85 * s), (x0 + 0.7 * s * k, y0 + 0.58 * s)], WHITE)


def _picto_stairs(p, x0, y0, s, c):
    k = p.h / p.w
    pts = [(x0 + 0.05 * s * k, y0 + 0.95 * s)]
    for i in range(4):
        pts += [(x0 + (0.05 + 0.225 * i) * s * k, y0 + (0.75 - 0.2 * i) * s),
                (x0 + (0.05 + 0.225 * (i + 1)) * s * k, y0 + (0.75 - 0.2 * i) * s)]
    pts.append((x0 + 0.95 * s * k, y0 + 0.95 * s))
    p.poly(pts, c)


def _picto_cafe(p, x0, y0, s, c):
    k = p.h / p.w
    p.rect(x0 + 0.15 * s * k, y0 + 0.3 * s, x0 + 0.7 * s * k, y0 + 0.85 * s, c)
    p.ring(x0 + 0.75 * s * k, y0 + 0.55 * s, 0.12 * s * k, 0.14 * s, c, 0.05 * s)
    p.rect(x0 + 0.1 * s * k, y0 + 0.88 * s, x0 + 0.8 * s * k, y0 + 0.95 * s, c)


def _picto_first_aid(p, x0, y0, s, c):
    k = p.h / p.w
    p.rect(x0 + 0.38 * s * k, y0 + 0.1 * s, x0 + 0.62 * s * k, y0 + 0.9 * s, c)
    p.rect(x0 + 0.1 * s * k, y0 + 0.38 * s, x0 + 0.9 * s * k, y0 + 0.62 * s, c)


def _picto_info(p, x0, y0, s, c):
    k = p.h / p.w
    p.ring(x0 + 0.5 * s * k, y0 + 0.5 * s, 0.42 * s * k, 0.42 * s, c, 0.08 * s)
    p.ellipse(x0 + 0.5 * s * k, y0 + 0.27 * s, 0.07 * s * k, 0.07 * s, c)
    p.rect(x0 + 0.44 * s * k, y0 + 0.4 * s, x0 + 0.56 * s * k, y0 + 0.76 * s, c)


def _picto_parking(p, x0, y0, s, c):
    k = p.h / p.w
    p.rect(x0 + 0.1 * s * k, y0 + 0.05 * s, x0 + 0.9 * s * k, y0 + 0.95 * s, c)
    p.text("P", x0 + 0.15 * s * k, y0 + 0.1 * s, x0 + 0.85 * s * k, y0 + 0.9 * s, WHITE)


def _picto_bike(p, x0, y0, s, c):
    k = p.h / p.w
    for wx in (0.25, 0.75):
        p.ring(x0 + wx * s * k, y0 + 0.65 * s, 0.2 * s * k, 0.2 * s, c, 0.05 * s)
    for a, b in (((0.25, 0.65), (0.45, 0.35)), ((0.45, 0.35), (0.75, 0.65)), ((0.45, 0.35), (0.65, 0.35)),
                 ((0.5, 0.65), (0.65, 0.35)), ((0.25, 0.65), (0.5, 0.65))):
        p.line(x0 + a[0] * s * k, y0 + a[1] * s, x0 + b[0] * s * k, y0 + b[1] * s, c, 0.04 * s)


PICTOGRAMS: dict[str, Callable] = {
    "toilets": _picto_toilets,
    "trains": _picto_train,
    "buses": _picto_bus,
    "taxis": _picto_taxi,
    "flights": _picto_plane,
    "exit": _picto_exit,
    "lifts": _picto_lift,
    "stairs": _picto_stairs,
    "cafe": _picto_cafe,
    "first aid": _picto_first_aid,
    "information": _picto_info,
    "parking": _picto_parking,
    "bicycles": _picto_bike,
}


def _arrow(p: Painter, x0, y0, s, direction: str, c) -> None:
    k = p.h / p.w
    cx, cy = x0 + 0.5 * s * k, y0 + 0.5 * s
    if direction == "up":
        pts = [(0, -0.45), (0.4, 0.0), (0.15, 0.0), (0.15, 0.45), (-0.15, 0.45), (-0.15, 0.0), (-0.4, 0.0)]
    else:
        sign = 1 if direction == "right" else -1
        pts = [(0.45 * sign, 0), (0, 0.4), (0, 0.15), (-0.45 * sign, 0.15), (-0.45 * sign, -0.15), (0, -0.15), (0, -0.4)]
    p.poly([(cx + dx * s * k, cy + dy * s) for dx, dy in pts], c)


# --------------------------------------------------------------------------- drawings


def _board(p: Painter, o: ObjectSpec) -> None:
    p.rect(0, 0, 1, 1, DARK)
    p.rect(0.03, 0.06, 0.97, 0.94, body=True)
    p.text(o.text, 0.08, 0.16, 0.92, 0.84, WHITE if sum(p.colour) < 450 else DARK)


def _direction_sign(p: Painter, o: ObjectSpec) -> None:
    """A hanging wayfinding sign: rows of (arrow, pictogram, text)."""
    p.rect(0, 0, 1, 1, DARK)
    p.rect(0.01, 0.03, 0.99, 0.97, body=True)
    fg = WHITE if sum(p.colour) < 450 else DARK
    lines = o.lines or (("up", "", o.text),)
    row_h = 0.94 / len(lines)
    for i, (arrow, picto, text) in enumerate(lines):
        y0 = 0.03 + i * row_h
        s = row_h * 0.8
        k = p.h / p.w
        x = 0.02
        if arrow:
            _arrow(p, x, y0 + row_h * 0.1, s, arrow, fg)
            x += s * k * 1.15
        if picto:
            p.rect(x, y0 + row_h * 0.08, x + s * k * 1.05, y0 + row_h * 0.92, WHITE)
            PICTOGRAMS[picto](p, x + s * k * 0.05, y0 + row_h * 0.12, s * 0.9, DARK)
            x += s * k * 1.25
        if text:
            p.text(text, x, y0 + row_h * 0.12, 0.98, y0 + row_h * 0.88, fg)
        if i:
            p.line(0.02, y0, 0.98, y0, fg, 0.01)


def _pictogram_sign(p, o):
    p.rect(0, 0, 1, 1, body=True)
    PICTOGRAMS[o.text](p, 0.1, 0.1, 0.8, WHITE if sum(p.colour) < 450 else DARK)


def _poster(p, o):
    p.rect(0, 0, 1, 1, METAL)
    p.rect(0.04, 0.03, 0.96, 0.97, body=True)
    p.rect(0.08, 0.06, 0.92, 0.3, WHITE)
    p.text(o.text, 0.1, 0.08, 0.9, 0.28, DARK)
    p.ellipse(0.5, 0.65, 0.28, 0.2, _shade(p.colour, 0.6))


def _screen(p, o):
    p.rect(0, 0, 1, 1, body=True)
    p.rect(0.05, 0.08, 0.95, 0.92, SCREEN)
    p.text(o.text, 0.1, 0.15, 0.9, 0.5, (250, 220, 90))
    for i in range(2):
        p.rect(0.1, 0.6 + i * 0.14, 0.1 + 0.3 + 0.4 * p.rng.random(), 0.67 + i * 0.14, (150, 190, 230))


def _clock(p, o):
    p.ellipse(0.5, 0.5, 0.5, 0.5, body=True)
    p.ellipse(0.5, 0.5, 0.42, 0.42, WHITE)
    for i in range(12):
        a = i * math.pi / 6
        p.line(0.5 + 0.34 * math.sin(a), 0.5 - 0.34 * math.cos(a), 0.5 + 0.4 * math.sin(a), 0.5 - 0.4 * math.cos(a), DARK, 0.03)
    hours, minutes = (int(v) for v in o.text.split(":"))
    minute_angle = minutes / 60 * 2 * math.pi
    hour_angle = ((hours % 12) + minutes / 60) / 12 * 2 * math.pi
    # Hands thick enough that a 1-px crosshair line over them never hides one (see legibility.py).
    p.line(0.5, 0.5, 0.5 + 0.24 * math.sin(hour_angle), 0.5 - 0.24 * math.cos(hour_angle), DARK, 0.09)
    p.line(0.5, 0.5, 0.5 + 0.36 * math.sin(minute_angle), 0.5 - 0.36 * math.cos(minute_angle), DARK, 0.06)


def _banner(p, o):
    p.line(0.5, 0, 0.5, 0.05, METAL, 0.05)
    p.rect(0, 0.05, 1, 0.95, body=True)
    fg = WHITE if sum(p.colour) < 450 else DARK
    letters = o.text[:6]
    for i, ch in enumerate(letters):
        p.text(ch, 0.1, 0.1 + i * 0.8 / len(letters), 0.9, 0.1 + (i + 1) * 0.8 / len(letters), fg)


def _menu_board(p, o):
    p.rect(0, 0, 1, 1, body=True)
    p.rect(0.06, 0.06, 0.94, 0.94, (40, 50, 45))
    p.text(o.text, 0.12, 0.1, 0.88, 0.3, WHITE)
    for i in range(4):
        p.line(0.15, 0.42 + i * 0.13, 0.15 + 0.4 + 0.25 * p.rng.random(), 0.42 + i * 0.13, (220, 220, 200), 0.02)


def _exit_sign(p, o):
    p.rect(0, 0, 1, 1, (20, 140, 70))
    _picto_person(p, 0.05, 0.1, 0.8, WHITE)
    p.text("EXIT", 0.35, 0.15, 0.95, 0.85, WHITE)


def _street_sign(p, o):
    p.rect(0.47, 0.2, 0.53, 1, METAL)
    p.rect(0, 0, 1, 0.2, body=True)
    p.text(o.text, 0.04, 0.02, 0.96, 0.18, WHITE if sum(p.colour) < 450 else DARK)


def _backpack(p, o):
    p.rect(0.15, 0.05, 0.85, 0.95, body=True)
    p.ellipse(0.5, 0.1, 0.35, 0.1, body=True)
    p.rect(0.25, 0.55, 0.75, 0.88, _shade(p.colour, 0.7))
    p.line(0.25, 0.55, 0.75, 0.55, DARK, 0.04)


def _handbag(p, o):
    p.ring(0.5, 0.35, 0.25, 0.3, DARK, 0.06)
    p.poly([(0.1, 0.4), (0.9, 0.4), (1.0, 1.0), (0.0, 1.0)], body=True)
    p.rect(0.45, 0.5, 0.55, 0.58, METAL)


def _suitcase(p, o):
    p.rect(0.35, 0.0, 0.65, 0.12, DARK)
    p.rect(0.05, 0.1, 0.95, 0.92, body=True)
    for x in (0.3, 0.7):
        p.line(x, 0.12, x, 0.9, _shade(p.colour, 0.7), 0.04)
    for x in (0.2, 0.8):
        p.ellipse(x, 0.95, 0.06, 0.05, DARK)


def _shopping_bag(p, o):
    p.ring(0.5, 0.2, 0.2, 0.18, DARK, 0.04)
    p.rect(0.05, 0.2, 0.95, 1.0, body=True)
    p.text(o.text, 0.15, 0.45, 0.85, 0.75, WHITE if sum(p.colour) < 450 else DARK)


def _trash_bin(p, o):
    p.poly([(0.1, 0.12), (0.9, 0.12), (0.82, 1.0), (0.18, 1.0)], body=True)
    p.rect(0.05, 0.04, 0.95, 0.14, _shade(p.colour, 0.7))
    for x in (0.35, 0.5, 0.65):
        p.line(x, 0.25, x, 0.9, _shade(p.colour, 0.75), 0.03)


def _recycling_bin(p, o):
    p.rect(0.05, 0.1, 0.95, 1.0, body=True)
    p.rect(0.0, 0.0, 1.0, 0.12, _shade(p.colour, 0.7))
    p.poly([(0.5, 0.35), (0.72, 0.72), (0.28, 0.72)], WHITE)
    p.poly([(0.5, 0.47), (0.62, 0.66), (0.38, 0.66)], _shade(p.colour, 1.0))


def _bicycle(p, o):
    for x in (0.2, 0.8):
        p.ring(x, 0.7, 0.19, 0.28, DARK, 0.06)
    frame = [((0.2, 0.7), (0.42, 0.35)), ((0.42, 0.35), (0.8, 0.7)), ((0.42, 0.35), (0.72, 0.35)),
             ((0.5, 0.7), (0.72, 0.35)), ((0.2, 0.7), (0.5, 0.7)), ((0.72, 0.35), (0.8, 0.7))]
    for a, b in frame:
        p.line(*a, *b, p.colour, 0.1)
    p.line(0.38, 0.25, 0.48, 0.25, DARK, 0.08)
    p.line(0.7, 0.22, 0.78, 0.18, DARK, 0.08)


def _car(p, o):
    p.poly([(0.0, 0.55), (0.18, 0.5), (0.3, 0.15), (0.72, 0.15), (0.85, 0.5), (1.0, 0.55), (1.0, 0.85), (0.0, 0.85)], body=True)
    p.poly([(0.34, 0.22), (0.5, 0.22), (0.5, 0.48), (0.25, 0.48)], GLASS)
    p.poly([(0.53, 0.22), (0.69, 0.22), (0.78, 0.48), (0.53, 0.48)], GLASS)
    for x in (0.2, 0.8):
        p.ellipse(x, 0.85, 0.09, 0.15, DARK)
        p.ellipse(x, 0.85, 0.04, 0.07, METAL)


def _bus(p, o):
    p.rect(0.0, 0.05, 1.0, 0.88, body=True)
    for i in range(6):
        p.rect(0.04 + i * 0.155, 0.15, 0.17 + i * 0.155, 0.45, GLASS)
    p.rect(0.02, 0.07, 0.2, 0.14, DARK)
    p.text(o.text, 0.03, 0.075, 0.19, 0.135, (250, 200, 60))
    for x in (0.18, 0.82):
        p.ellipse(x, 0.88, 0.06, 0.12, DARK)


def _scooter(p, o):
    p.ellipse(0.2, 0.85, 0.15, 0.15, DARK)
    p.ellipse(0.82, 0.85, 0.15, 0.15, DARK)
    p.poly([(0.25, 0.5), (0.7, 0.5), (0.8, 0.8), (0.2, 0.8)], body=True)
    p.line(0.8, 0.8, 0.7, 0.1, METAL, 0.06)
    p.line(0.6, 0.1, 0.8, 0.1, DARK, 0.06)


def _person(p, o):
    skin = [(235, 195, 160), (190, 140, 100), (120, 80, 55)][o.seed % 3]
    p.ellipse(0.5, 0.08, 0.2, 0.075, skin)
    p.poly([(0.2, 0.17), (0.8, 0.17), (0.85, 0.55), (0.15, 0.55)], body=True)
    trousers = [(40, 45, 70), (50, 50, 50), (110, 100, 80)][o.seed % 3]
    p.rect(0.25, 0.53, 0.48, 1.0, trousers)
    p.rect(0.52, 0.53, 0.75, 1.0, trousers)
    p.rect(0.05, 0.2, 0.17, 0.55, skin)
    p.rect(0.83, 0.2, 0.95, 0.55, skin)


def _potted_plant(p, o):
    for _ in range(7):
        x, y = 0.3 + 0.4 * p.rng.random(), 0.1 + 0.4 * p.rng.random()
        p.ellipse(x, y, 0.22, 0.15, _shade(GREENERY, 0.8 + 0.4 * p.rng.random()))
    p.poly([(0.25, 0.6), (0.75, 0.6), (0.68, 1.0), (0.32, 1.0)], body=True)


def _tree(p, o):
    p.rect(0.45, 0.5, 0.55, 1.0, (90, 60, 35))
    for _ in range(9):
        x, y = 0.25 + 0.5 * p.rng.random(), 0.12 + 0.35 * p.rng.random()
        p.ellipse(x, y, 0.25, 0.16, _shade((60, 130, 50), 0.7 + 0.5 * p.rng.random()))


def _bench(p, o):
    p.rect(0.02, 0.3, 0.98, 0.5, body=True)
    p.rect(0.0, 0.58, 1.0, 0.72, body=True)
    for x in (0.08, 0.88):
        p.rect(x, 0.5, x + 0.05, 1.0, DARK)


def _chair(p, o):
    p.rect(0.15, 0.0, 0.85, 0.5, body=True)
    p.rect(0.1, 0.5, 0.9, 0.6, body=True)
    for x in (0.12, 0.8):
        p.rect(x, 0.6, x + 0.08, 1.0, DARK)


def _table(p, o):
    p.rect(0.0, 0.0, 1.0, 0.12, body=True)
    for x in (0.05, 0.88):
        p.rect(x, 0.12, x + 0.07, 1.0, _shade(p.colour, 0.6))


def _door(p, o):
    p.rect(0, 0, 1, 1, DARK)
    p.rect(0.05, 0.03, 0.95, 1.0, body=True)
    p.rect(0.15, 0.08, 0.85, 0.28, WHITE)
    p.text(o.text, 0.18, 0.09, 0.82, 0.27, DARK)
    p.ellipse(0.82, 0.55, 0.05, 0.025, METAL)


def _counter(p, o):
    p.rect(0.0, 0.0, 1.0, 0.12, (200, 195, 185))
    p.rect(0.02, 0.12, 0.98, 1.0, body=True)
    p.rect(0.05, 0.3, 0.95, 0.36, _shade(p.colour, 0.75))


def _shelf(p, o):
    p.rect(0, 0, 1, 1, body=True)
    for row in range(4):
        y0 = 0.04 + row * 0.24
        p.rect(0.04, y0, 0.96, y0 + 0.2, (70, 65, 60))
        x = 0.06
        while x < 0.92:
            w = 0.05 + 0.07 * p.rng.random()
            c = tuple(int(v) for v in p.rng.integers(40, 240, 3))
            p.rect(x, y0 + 0.2 - (0.1 + 0.08 * p.rng.random()), min(x + w, 0.94), y0 + 0.2, c)
            x += w + 0.01


def _crate(p, o):
    p.rect(0, 0, 1, 1, body=True)
    p.rect(0.42, 0.0, 0.58, 1.0, (210, 200, 170))
    p.line(0, 0.02, 1, 0.02, _shade(p.colour, 0.7), 0.04)


def _vending_machine(p, o):
    p.rect(0, 0, 1, 1, body=True)
    p.rect(0.06, 0.12, 0.68, 0.85, GLASS)
    for r in range(4):
        for c in range(4):
            col = tuple(int(v) for v in p.rng.integers(50, 240, 3))
            p.rect(0.09 + c * 0.15, 0.15 + r * 0.17, 0.19 + c * 0.15, 0.28 + r * 0.17, col)
    p.rect(0.72, 0.3, 0.94, 0.45, DARK)
    p.text(o.text, 0.04, 0.0, 0.96, 0.115, WHITE if sum(p.colour) < 450 else DARK)


def _atm(p, o):
    p.rect(0, 0, 1, 1, body=True)
    p.rect(0.15, 0.18, 0.85, 0.42, SCREEN)
    p.text(o.text, 0.06, 0.01, 0.94, 0.17, WHITE if sum(p.colour) < 450 else DARK)
    for r in range(3):
        for c in range(3):
            p.rect(0.3 + c * 0.14, 0.5 + r * 0.08, 0.4 + c * 0.14, 0.56 + r * 0.08, METAL)


def _street_lamp(p, o):
    p.rect(0.45, 0.08, 0.55, 1.0, body=True)
    p.rect(0.2, 0.0, 0.8, 0.08, body=True)
    p.rect(0.3, 0.08, 0.7, 0.11, (255, 240, 190))


def _umbrella(p, o):
    p.line(0.5, 0.3, 0.5, 1.0, DARK, 0.04)
    p.ellipse(0.5, 0.32, 0.5, 0.3, body=True, start=180, end=360)


def _fire_extinguisher(p, o):
    p.rect(0.2, 0.2, 0.8, 1.0, body=True)
    p.ellipse(0.5, 0.2, 0.3, 0.1, body=True)
    p.rect(0.4, 0.02, 0.6, 0.12, DARK)
    p.line(0.6, 0.05, 0.95, 0.35, DARK, 0.08)
    p.rect(0.25, 0.45, 0.75, 0.65, WHITE)


def _flag(p, o):
    p.rect(0.0, 0.0, 0.06, 1.0, METAL)
    p.rect(0.06, 0.02, 1.0, 0.55, body=True)


def _balloon(p, o):
    p.line(0.5, 0.75, 0.5, 1.0, DARK, 0.03)
    p.ellipse(0.5, 0.38, 0.48, 0.37, body=True)


def _traffic_cone(p, o):
    p.poly([(0.5, 0.0), (0.85, 0.9), (0.15, 0.9)], body=True)
    p.poly([(0.38, 0.35), (0.62, 0.35), (0.69, 0.5), (0.31, 0.5)], WHITE)
    p.rect(0.0, 0.9, 1.0, 1.0, DARK)


def _road_sign(p, o):
    p.rect(0.46, 0.45, 0.54, 1.0, METAL)
    p.ellipse(0.5, 0.24, 0.48, 0.24, body=True)
    p.ellipse(0.5, 0.24, 0.35, 0.175, WHITE)
    p.text(o.text, 0.22, 0.12, 0.78, 0.36, DARK)


def _mailbox(p, o):
    p.rect(0.15, 0.1, 0.85, 0.9, body=True)
    p.ellipse(0.5, 0.12, 0.35, 0.1, body=True)
    p.rect(0.3, 0.3, 0.7, 0.35, DARK)
    p.rect(0.1, 0.9, 0.9, 1.0, DARK)


def _ticket_machine(p, o):
    p.rect(0.05, 0, 0.95, 1, body=True)
    p.rect(0.2, 0.22, 0.8, 0.5, SCREEN)
    p.text(o.text, 0.1, 0.03, 0.9, 0.17, WHITE if sum(p.colour) < 450 else DARK)
    p.rect(0.35, 0.6, 0.65, 0.65, DARK)


def _painting(p, o):
    p.rect(0, 0, 1, 1, (150, 110, 50))
    p.rect(0.07, 0.07, 0.93, 0.93, body=True)
    for _ in range(3):
        c = tuple(int(v) for v in p.rng.integers(30, 230, 3))
        p.ellipse(0.2 + 0.6 * p.rng.random(), 0.2 + 0.6 * p.rng.random(), 0.1 + 0.15 * p.rng.random(), 0.1 + 0.15 * p.rng.random(), c)


def _vase(p, o):
    p.poly([(0.35, 0.0), (0.65, 0.0), (0.6, 0.15), (0.9, 0.5), (0.7, 1.0), (0.3, 1.0), (0.1, 0.5), (0.4, 0.15)], body=True)


def _stroller(p, o):
    p.ellipse(0.45, 0.45, 0.4, 0.32, body=True, start=180, end=360)
    p.rect(0.05, 0.45, 0.85, 0.7, body=True)
    p.line(0.85, 0.5, 1.0, 0.1, DARK, 0.05)
    for x in (0.2, 0.7):
        p.ellipse(x, 0.88, 0.1, 0.11, DARK)


def _phone_booth(p, o):
    p.rect(0, 0, 1, 1, body=True)
    p.rect(0.15, 0.12, 0.85, 0.9, GLASS)
    p.text("PHONE", 0.1, 0.01, 0.9, 0.1, WHITE if sum(p.colour) < 450 else DARK)


def _kiosk(p, o):
    p.rect(0.0, 0.0, 1.0, 0.22, body=True)
    p.text(o.text, 0.05, 0.03, 0.95, 0.19, WHITE if sum(p.colour) < 450 else DARK)
    p.rect(0.05, 0.22, 0.95, 0.6, (60, 55, 50))
    p.rect(0.0, 0.6, 1.0, 1.0, body=True)


def _hydrant(p, o):
    p.rect(0.3, 0.2, 0.7, 0.9, body=True)
    p.ellipse(0.5, 0.2, 0.2, 0.12, body=True)
    p.rect(0.1, 0.4, 0.9, 0.52, body=True)
    p.rect(0.2, 0.9, 0.8, 1.0, DARK)


def _fountain(p, o):
    p.rect(0.0, 0.65, 1.0, 1.0, body=True)
    p.rect(0.42, 0.2, 0.58, 0.65, _shade(p.colour, 0.8))
    p.ellipse(0.5, 0.2, 0.3, 0.15, (170, 200, 230))


def _luggage_trolley(p, o):
    p.rect(0.1, 0.3, 0.9, 0.85, body=True)
    p.line(0.1, 0.85, 0.0, 0.0, METAL, 0.05)
    for x in (0.2, 0.8):
        p.ellipse(x, 0.92, 0.08, 0.08, DARK)


def _lamp(p, o):
    p.poly([(0.2, 0.0), (0.8, 0.0), (1.0, 0.35), (0.0, 0.35)], body=True)
    p.rect(0.45, 0.35, 0.55, 0.92, METAL)
    p.rect(0.2, 0.92, 0.8, 1.0, DARK)


def _bollard(p, o):
    p.rect(0.2, 0.1, 0.8, 1.0, body=True)
    p.ellipse(0.5, 0.1, 0.3, 0.1, body=True)
    p.rect(0.2, 0.2, 0.8, 0.28, WHITE)


def _cup(p, o):
    p.poly([(0.05, 0.1), (0.8, 0.1), (0.72, 1.0), (0.13, 1.0)], body=True)
    p.ring(0.85, 0.5, 0.15, 0.2, DARK, 0.08)


SHOP_NAMES = ("BAKERY", "PHARMACY", "BOOKS", "COFFEE", "FLOWERS", "SHOES", "OPTICS", "TOYS", "DELI", "MUSIC",
              "SALON", "SPORTS", "TAILOR", "CAMERAS", "TEA", "PIZZA", "SUSHI", "GIFTS", "BANK", "POST")
POSTER_TITLES = ("JAZZ NIGHT", "SALE 50%", "CIRCUS", "OPEN DAY", "MARATHON", "SUMMER", "ART FAIR", "CONCERT",
                 "FILM FEST", "THEATRE", "EXPO", "BOOK CLUB")
SCREEN_TEXTS = ("DEPARTURES", "ARRIVALS", "GATE 12", "PLATFORM 4", "DELAYED", "NEXT: 14:25", "WELCOME", "ON TIME",
                "BOARDING", "CLOSED", "NEWS", "WEATHER")
CLOCK_TIMES = ("1:00", "2:30", "3:15", "4:45", "6:00", "7:30", "9:00", "10:15", "11:45", "12:30", "5:20", "8:40")
ROOM_NUMBERS = tuple(str(n) for n in (101, 102, 104, 110, 115, 201, 203, 208, 212, 305, 310, 318))
BANNER_WORDS = ("SALE", "OPEN", "NEW", "MUSEUM", "EXPO", "WELCOME", "SUMMER", "MARKET")
STREET_NAMES = ("OAK ST", "ELM ST", "PARK AVE", "MILL RD", "HIGH ST", "RIVER RD", "KING ST", "LAKE AVE", "BAY ST",
                "PINE ST")
MENU_TITLES = ("MENU", "TODAY", "SPECIALS", "DRINKS", "SOUPS", "DESSERTS")
BRANDS = ("SNACKS", "DRINKS", "FRESH", "COLA", "JUICE", "CANDY")
ROAD_SIGN_TEXTS = ("20", "30", "40", "50", "60", "STOP")
BUS_ROUTES = tuple(str(n) for n in (3, 7, 12, 21, 34, 48, 55, 61, 72, 90))

_C = Category
CATEGORIES: dict[str, Category] = {
    c.name: c
    for c in (
        _C("shop_sign", "shop sign", (2.4, 0.6), HIGH, _board, SHOP_NAMES, patterned=False),
        _C("direction_sign", "direction sign", (2.0, 0.5), HIGH, _direction_sign, patterned=False,
           colours=("blue", "green", "black", "yellow", "white", "teal")),
        _C("pictogram_sign", "pictogram sign", (0.6, 0.6), HIGH, _pictogram_sign, tuple(PICTOGRAMS), patterned=False,
           colours=("blue", "green", "black", "teal"), text_phrase="showing the pictogram for"),
        _C("poster", "poster", (0.8, 1.2), WALL, _poster, POSTER_TITLES),
        _C("screen", "screen", (1.4, 0.8), HIGH, _screen, SCREEN_TEXTS, patterned=False,
           colours=("black", "grey", "white")),
        _C("clock", "clock", (0.6, 0.6), HIGH, _clock, CLOCK_TIMES, patterned=False, text_phrase="showing"),
        _C("banner", "banner", (0.8, 2.6), HIGH, _banner, BANNER_WORDS, patterned=False),
        _C("menu_board", "menu board", (1.0, 0.8), WALL, _menu_board, MENU_TITLES, patterned=False),
        _C("exit_sign", "exit sign", (0.8, 0.3), HIGH, _exit_sign, patterned=False, colours=("green",)),
        _C("street_sign", "street sign", (1.0, 2.8), FLOOR, _street_sign, STREET_NAMES, patterned=False,
           colours=("green", "blue", "white", "black"), outdoor_only=True),
        _C("backpack", "backpack", (0.35, 0.5), FLOOR, _backpack),
        _C("handbag", "handbag", (0.4, 0.35), FLOOR, _handbag),
        _C("suitcase", "suitcase", (0.45, 0.7), FLOOR, _suitcase),
        _C("shopping_bag", "shopping bag", (0.4, 0.45), FLOOR, _shopping_bag, SHOP_NAMES[:8]),
        _C("trash_bin", "trash bin", (0.5, 0.9), FLOOR, _trash_bin),
        _C("recycling_bin", "recycling bin", (0.6, 1.0), FLOOR, _recycling_bin, patterned=False),
        _C("bicycle", "bicycle", (1.7, 1.0), FLOOR, _bicycle, patterned=False),
        _C("car", "car", (4.2, 1.5), FLOOR, _car, patterned=False, outdoor_only=True),
        _C("bus", "bus", (10.0, 3.0), FLOOR, _bus, BUS_ROUTES, patterned=False, outdoor_only=True,
           text_phrase="with route number"),
        _C("scooter", "scooter", (1.6, 1.1), FLOOR, _scooter, patterned=False),
        _C("person", "person", (0.55, 1.75), FLOOR, _person),
        _C("child", "child", (0.4, 1.15), FLOOR, _person),
        _C("potted_plant", "potted plant", (0.8, 1.3), FLOOR, _potted_plant),
        _C("tree", "tree", (4.0, 6.0), FLOOR, _tree, patterned=False, outdoor_only=True, colours=("brown",)),
        _C("bench", "bench", (1.8, 0.9), FLOOR, _bench),
        _C("chair", "chair", (0.5, 0.9), FLOOR, _chair),
        _C("table", "table", (1.2, 0.75), FLOOR, _table),
        _C("door", "door", (1.0, 2.1), FLOOR, _door, ROOM_NUMBERS, text_phrase="numbered"),
        _C("counter", "counter", (2.5, 1.1), FLOOR, _counter),
        _C("shelf", "shelf", (2.0, 2.0), FLOOR, _shelf, patterned=False),
        _C("crate", "box", (0.6, 0.5), FLOOR, _crate, colours=("brown", "white", "grey", "yellow", "green", "blue")),
        _C("vending_machine", "vending machine", (1.0, 1.9), FLOOR, _vending_machine, BRANDS, patterned=False),
        _C("atm", "cash machine", (0.8, 1.6), FLOOR, _atm, ("BANK", "CASH", "ATM", "MONEY"), patterned=False),
        _C("street_lamp", "street lamp", (0.8, 4.5), FLOOR, _street_lamp, patterned=False, outdoor_only=True,
           colours=("black", "grey", "green")),
        _C("umbrella", "umbrella", (1.0, 1.0), FLOOR, _umbrella),
        _C("fire_extinguisher", "fire extinguisher", (0.3, 0.6), FLOOR, _fire_extinguisher, patterned=False,
           colours=("red", "yellow", "black", "blue")),
        _C("flag", "flag", (1.5, 1.6), HIGH, _flag),
        _C("balloon", "balloon", (0.5, 0.8), HIGH, _balloon),
        _C("traffic_cone", "traffic cone", (0.4, 0.7), FLOOR, _traffic_cone, colours=("orange", "red", "yellow")),
        _C("road_sign", "road sign", (0.7, 2.4), FLOOR, _road_sign, ROAD_SIGN_TEXTS, patterned=False,
           colours=("red", "blue"), outdoor_only=True),
        _C("mailbox", "post box", (0.5, 1.3), FLOOR, _mailbox, patterned=False),
        _C("ticket_machine", "ticket machine", (0.9, 1.8), FLOOR, _ticket_machine, ("TICKETS", "PARKING", "METRO"),
           patterned=False),
        _C("painting", "painting", (1.2, 0.9), WALL, _painting),
        _C("vase", "vase", (0.4, 0.7), FLOOR, _vase),
        _C("stroller", "pram", (0.9, 1.0), FLOOR, _stroller),
        _C("phone_booth", "phone booth", (1.0, 2.3), FLOOR, _phone_booth, patterned=False),
        _C("kiosk", "kiosk", (2.5, 2.6), FLOOR, _kiosk, SHOP_NAMES, patterned=False),
        _C("hydrant", "fire hydrant", (0.45, 0.8), FLOOR, _hydrant, patterned=False, outdoor_only=True),
        _C("fountain", "fountain", (3.0, 1.8), FLOOR, _fountain, patterned=False, colours=("grey", "white", "brown")),
        _C("luggage_trolley", "luggage trolley", (0.8, 1.1), FLOOR, _luggage_trolley),
        _C("lamp", "floor lamp", (0.5, 1.6), FLOOR, _lamp),
        _C("bollard", "bollard", (0.25, 0.9), FLOOR, _bollard, patterned=False),
        _C("cup", "coffee cup", (0.12, 0.15), FLOOR, _cup),
    )
}

def category(name: str) -> Category:
    """The category called ``name``; the error lists the valid names."""
    try:
        return CATEGORIES[name]
    except KeyError:
        raise KeyError(f"unknown object category {name!r}; known: {', '.join(sorted(CATEGORIES))}") from None


def draw_object(spec: ObjectSpec, height_px: int, aspect: float | None = None) -> np.ndarray:
    """RGBA sprite of ``spec``, ``height_px`` high; ``aspect`` (width / height) defaults to the category's."""
    cat = category(spec.category)
    height = max(4, int(height_px))
    width = max(4, round(height * (cat.aspect if aspect is None else aspect)))
    painter = Painter(width, height, COLOURS[spec.colour], spec.pattern, np.random.default_rng(spec.seed))
    cat.draw(painter, spec)
    return painter.canvas


def cap_fraction(spec: ObjectSpec, aspect: float) -> float:
    """Smallest cap height of the text ``spec`` prints, as a fraction of the object's height (0: none)."""
    painter = Painter(max(4, round(REFERENCE_HEIGHT * aspect)), REFERENCE_HEIGHT, COLOURS[spec.colour], "plain",
                      np.random.default_rng(spec.seed))
    category(spec.category).draw(painter, spec)
    return min(painter.text_caps, default=0.0)


@lru_cache(maxsize=1024)
def text_cap_fraction(name: str, text: str) -> float:
    """:func:`cap_fraction` of ``text`` on a ``name`` object of its usual shape (cached)."""
    cat = category(name)
    return cap_fraction(ObjectSpec(name, cat.colours[0], "plain", text), cat.aspect)


def describe(spec: ObjectSpec, *, colour: bool = True, pattern: bool = False) -> str:
    """Noun phrase for an object, e.g. ``"green striped backpack"``."""
    cat = category(spec.category)
    words = []
    if colour:
        words.append(spec.colour)
    if pattern and spec.pattern != "plain":
        words.append(PATTERN_ADJECTIVES[spec.pattern])
    words.append(cat.noun)
    return " ".join(words)
