"""View scorers for the ``sweep`` agent: ``(view, instruction) -> 2-D score map``.

* ``colour`` (default): finds the colour words of the instruction ("the red clock",
  "a yellow sign") and scores each place of the view by how much of it has that
  colour (HSV ranges), with a little saliency to break ties. With no colour word it
  falls back to ``saliency``. Cheap (a few ms on a 448x252 view) and meaningful for
  attribute instructions; it cannot read text or relations.
* ``saliency``: spectral-residual saliency (Hou and Zhang, CVPR 2007): what stands
  out from the view's own statistics. OpenCV ships it only in the contrib build,
  which headless OpenCV lacks, so the ten lines are written here with numpy's FFT.

Any ``package.module:function`` with the same signature can be plugged in.
"""

from __future__ import annotations

import importlib
import re
from typing import Callable

import cv2
import numpy as np

Scorer = Callable[[np.ndarray, str], np.ndarray]

WORK_WIDTH = 96  # score maps are computed on a view shrunk to this width
PAD = 8  # mirror padding of the saliency FFT, in pixels of the half-size view

# colour word -> list of (hue lo, hue hi, sat lo, sat hi, val lo, val hi), OpenCV HSV (hue 0..180).
COLOUR_RANGES: dict[str, list[tuple[int, int, int, int, int, int]]] = {
    "red": [(0, 8, 110, 255, 70, 255), (170, 180, 110, 255, 70, 255)],
    "orange": [(9, 20, 130, 255, 120, 255)],
    "yellow": [(21, 34, 110, 255, 120, 255)],
    "green": [(35, 85, 80, 255, 50, 255)],
    "cyan": [(86, 100, 80, 255, 60, 255)],
    "blue": [(101, 130, 90, 255, 50, 255)],
    "purple": [(131, 155, 70, 255, 50, 255)],
    "pink": [(150, 172, 50, 200, 130, 255)],
    "brown": [(5, 20, 90, 255, 40, 150)],
    "white": [(0, 180, 0, 35, 200, 255)],
    "black": [(0, 180, 0, 255, 0, 45)],
    "grey": [(0, 180, 0, 35, 70, 190)],
}
SYNONYMS = {"gray": "grey", "silver": "grey", "violet": "purple", "magenta": "pink", "teal": "cyan",
            "turquoise": "cyan", "golden": "yellow", "gold": "yellow", "crimson": "red", "navy": "blue"}
_WORD = re.compile(r"[a-z]+")


def colour_words(instruction: str) -> list[str]:
    """The colour names mentioned in an instruction, canonicalised, in order, unique."""
    found: list[str] = []
    for word in _WORD.findall(instruction.lower()):
        colour = SYNONYMS.get(word, word)
        if colour in COLOUR_RANGES and colour not in found:
            found.append(colour)
    return found


def _shrink(image: np.ndarray) -> np.ndarray:
    """The view shrunk by an integer factor to about WORK_WIDTH (OpenCV's fast area path),
    median-filtered so the thin centre crosshair disappears."""
    height, width = image.shape[:2]
    factor = max(1, round(width / WORK_WIDTH))
    size = (max(1, width // factor), max(1, height // factor))
    small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    return cv2.medianBlur(np.ascontiguousarray(small), 3)


def _saliency(small: np.ndarray) -> np.ndarray:
    """Spectral-residual saliency of a shrunk RGB view, at half its size, in [0, 1]."""
    grey = cv2.cvtColor(cv2.pyrDown(small), cv2.COLOR_RGB2GRAY).astype(np.float32)
    # Mirror padding makes the image periodic, as the FFT assumes; otherwise the
    # jump between opposite borders is what stands out most.
    padded = cv2.copyMakeBorder(grey, PAD, PAD, PAD, PAD, cv2.BORDER_REFLECT_101)
    spectrum = np.fft.fft2(padded - padded.mean())
    log_amplitude = np.log(np.abs(spectrum) + 1e-9).astype(np.float32)
    # exp(residual + i phase) with residual = log|F| - blur(log|F|) is F * exp(-blur(log|F|)).
    flattened = spectrum * np.exp(-cv2.blur(log_amplitude, (3, 3)))
    saliency = (np.abs(np.fft.ifft2(flattened)) ** 2).astype(np.float32)
    saliency = cv2.GaussianBlur(saliency, (0, 0), 1.5)[PAD:-PAD, PAD:-PAD]
    saliency = cv2.resize(saliency, (small.shape[1], small.shape[0]), interpolation=cv2.INTER_LINEAR)
    peak = float(saliency.max())
    return saliency / peak if peak > 0 else saliency


def saliency_scorer(image: np.ndarray, instruction: str = "") -> np.ndarray:
    """Spectral-residual saliency map in [0, 1]."""
    return _saliency(_shrink(image))


def colour_scorer(image: np.ndarray, instruction: str) -> np.ndarray:
    """Share of the instruction's colour around each place, plus 10% saliency for ties."""
    small = _shrink(image)
    saliency = _saliency(small)
    colours = colour_words(instruction)
    if not colours:
        return saliency
    hsv = cv2.cvtColor(small, cv2.COLOR_RGB2HSV)
    mask = np.zeros(hsv.shape[:2], dtype=np.float32)
    for colour in colours:
        for h0, h1, s0, s1, v0, v1 in COLOUR_RANGES[colour]:
            mask += cv2.inRange(hsv, (h0, s0, v0), (h1, s1, v1)) / np.float32(255.0)
    density = cv2.GaussianBlur(mask / len(colours), (0, 0), 2.0)
    return density + 0.1 * saliency


BUILTIN_SCORERS: dict[str, Scorer] = {"colour": colour_scorer, "color": colour_scorer, "saliency": saliency_scorer}


def resolve_scorer(scorer: str | Scorer) -> Scorer:
    """A built-in scorer name, a ``package.module:function`` path, or a callable."""
    if callable(scorer):
        return scorer
    if scorer in BUILTIN_SCORERS:
        return BUILTIN_SCORERS[scorer]
    if isinstance(scorer, str) and ":" in scorer:
        module_name, _, name = scorer.partition(":")
        function = getattr(importlib.import_module(module_name), name, None)
        if callable(function):
            return function
        raise ValueError(f"scorer {scorer!r}: module {module_name!r} has no function {name!r}")
    raise ValueError(f"unknown scorer {scorer!r}; built-in scorers: {', '.join(sorted(BUILTIN_SCORERS))}")
