"""Top-down similarity between an exemplar picture of the target and a view.

Two classical cues, both from OpenCV, at a few object sizes (no learned weights):

* colour: histogram intersection (Swain & Ballard, 1991) between the exemplar's
  main colours (hue x saturation bins; greys by brightness) and each object-sized
  window of the view, computed for all windows at once from per-colour
  memberships and box filters. A
  window scores 1 when it holds each of the target's colours in the target's
  proportions, so an object sharing only one colour with the target scores low;
* shape and texture: normalised cross-correlation (``TM_CCOEFF_NORMED``) of the
  exemplar resized to each object size, damped where the window has less contrast
  than the template (normalised correlation alone lets faint smooth patches match).

The map is in [0, 1] per view pixel (at the window's centre): the geometric mean of
the two cues (both must agree), at the best object size.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from panoseek.envs import geometry

HUE_BINS, SAT_BINS, GREY_BINS = 18, 8, 6  # coarse, so blur barely moves a colour to another bin
N_COLOURS = HUE_BINS * SAT_BINS + GREY_BINS
MAIN_COLOUR_SHARE = 0.05  # colours below this share of the exemplar are ignored
MAX_COLOURS = 6


def foreground_mask(exemplar: np.ndarray, tolerance: float = 30.0) -> np.ndarray:
    """uint8 mask of the exemplar's object: pixels unlike its border's median colour.

    Exemplars are objects on a plain background; an exemplar without one (the mask
    would be almost empty or almost full) is used whole.
    """
    border = np.concatenate([exemplar[0], exemplar[-1], exemplar[:, 0], exemplar[:, -1]]).astype(np.float32)
    distance = np.linalg.norm(exemplar.astype(np.float32) - np.median(border, axis=0), axis=-1)
    mask = distance > tolerance
    if not 0.05 <= mask.mean() <= 0.98:
        mask[:] = True
    return mask.astype(np.uint8) * 255


def colour_codes(rgb: np.ndarray) -> np.ndarray:
    """Each pixel's colour bin: hue x saturation for colours, brightness for greys.

    Pixels with saturation below 1/8 have no reliable hue; they are binned by value
    instead (black, greys, white), codes ``HUE_BINS * SAT_BINS`` and up.
    """
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)
    hue = hsv[..., 0].astype(np.int32) * HUE_BINS // 180
    sat = hsv[..., 1].astype(np.int32) * SAT_BINS // 256
    value = hsv[..., 2].astype(np.int32) * GREY_BINS // 256
    return np.where(sat == 0, HUE_BINS * SAT_BINS + value, hue * SAT_BINS + sat)


def _membership(code: int) -> np.ndarray:
    """Lookup table over colour codes: 1 at ``code``, 0.5 at its neighbours (hue wraps).

    Soft membership lets a blurred or differently lit colour, shifted by a bin, count.
    """
    table = np.zeros(N_COLOURS, dtype=np.float32)
    if code >= HUE_BINS * SAT_BINS:
        grey = code - HUE_BINS * SAT_BINS
        neighbours = [HUE_BINS * SAT_BINS + g for g in range(grey - 2, grey + 3) if 0 <= g < GREY_BINS]
    else:
        hue, sat = divmod(code, SAT_BINS)
        neighbours = [((hue + dh) % HUE_BINS) * SAT_BINS + sat + ds for dh in (-1, 0, 1) for ds in (-1, 0, 1) if 1 <= sat + ds < SAT_BINS]
    table[neighbours] = 0.5
    table[code] = 1.0
    return table


def _window_mean(values: np.ndarray, w: int, h: int) -> np.ndarray:
    """Mean over every full ``w x h`` window, indexed by its top-left corner (like matchTemplate)."""
    mean = cv2.boxFilter(values, -1, (w, h), anchor=(0, 0), normalize=True, borderType=cv2.BORDER_CONSTANT)
    return mean[: values.shape[0] - h + 1, : values.shape[1] - w + 1]


class TemplateMatcher:
    """Similarity maps of one exemplar against views of one camera.

    Args:
        exemplar: RGB uint8 picture of the target.
        fov_deg, size: the camera of the views.
        sizes_deg: object heights (degrees of visual angle) at which to look for it.
    """

    def __init__(self, exemplar: np.ndarray, fov_deg: float, size: tuple[int, int], sizes_deg: tuple[float, ...] = (2.5, 4.0, 6.5, 10.0, 16.0, 24.0)) -> None:
        if not (isinstance(exemplar, np.ndarray) and exemplar.dtype == np.uint8 and exemplar.ndim == 3 and exemplar.shape[2] == 3 and min(exemplar.shape[:2]) >= 4):
            raise ValueError(
                f"exemplar must be an RGB uint8 (H, W, 3) picture at least 4x4, got "
                f"{getattr(exemplar, 'dtype', type(exemplar).__name__)} {getattr(exemplar, 'shape', None)}"
            )
        self.size = (int(size[0]), int(size[1]))
        mask = foreground_mask(exemplar)
        codes = colour_codes(exemplar)[mask > 0]
        histogram = np.bincount(codes, minlength=N_COLOURS) / max(codes.size, 1)
        main = [c for c in np.argsort(histogram)[::-1][:MAX_COLOURS] if histogram[c] >= MAIN_COLOUR_SHARE]
        # (membership table, share of the exemplar's box) per main colour: the shares sum to
        # the object's coverage of its box, the most of them a matching window can hold.
        self.coverage = float(np.mean(mask > 0))
        total = float(histogram[main].sum())
        self.colours = [(_membership(int(c)), self.coverage * float(histogram[c]) / total) for c in main]
        pixels_per_degree = geometry.focal_length_px(fov_deg, self.size[0]) * math.pi / 180.0
        aspect = exemplar.shape[1] / exemplar.shape[0]
        self.templates = []  # (float32 RGB template, its grey-level std) per object size
        for size_deg in sizes_deg:
            h = max(3, round(size_deg * pixels_per_degree))
            w = max(3, round(h * aspect))
            if h >= self.size[1] or w >= self.size[0]:
                continue
            template = cv2.resize(exemplar, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32)
            inside = cv2.resize(mask, (w, h), interpolation=cv2.INTER_NEAREST) > 0
            if inside.any():
                # Background filled with the object's mean colour: after the mean is
                # subtracted it is ~0, so it barely counts -- a masked match at a
                # quarter of the cost of OpenCV's masked matchTemplate.
                template[~inside] = template[inside].mean(axis=0)
            self.templates.append((template, max(float(template.mean(axis=-1).std()), 1.0)))
        if not self.templates:
            raise ValueError(f"no object size in {sizes_deg} fits in a {self.size[0]}x{self.size[1]} view")

    def colour_memberships(self, view: np.ndarray) -> list[np.ndarray]:
        """Per main exemplar colour, each view pixel's membership in [0, 1] (float32 maps)."""
        codes = colour_codes(view)
        return [table[codes] for table, _ in self.colours]

    def __call__(self, view: np.ndarray) -> np.ndarray:
        """Similarity map ``(H, W)`` float32 in [0, 1]: high where the exemplar seems to be."""
        height, width = view.shape[:2]
        if (width, height) != self.size:
            raise ValueError(f"view is {width}x{height}, this matcher was built for {self.size[0]}x{self.size[1]}")
        memberships = self.colour_memberships(view)
        image = view.astype(np.float32)
        grey = image.mean(axis=-1)
        best = np.zeros((height, width), dtype=np.float32)
        for template, template_std in self.templates:
            h, w = template.shape[:2]
            correlation = cv2.matchTemplate(image, template, cv2.TM_CCOEFF_NORMED)
            correlation = np.nan_to_num(np.clip(correlation, 0.0, 1.0), nan=0.0, posinf=0.0, neginf=0.0)
            local_std = np.sqrt(np.maximum(_window_mean(grey * grey, w, h) - _window_mean(grey, w, h) ** 2, 0.0))
            shape = correlation * np.minimum(local_std / template_std, 1.0)
            colour = sum(np.minimum(_window_mean(m, w, h), share) for m, (_, share) in zip(memberships, self.colours))
            score = np.sqrt(shape * np.minimum(colour / self.coverage, 1.0))
            # Score index (y, x) is the window's top-left corner; place it at the window's centre.
            region = best[h // 2 : h // 2 + score.shape[0], w // 2 : w // 2 + score.shape[1]]
            np.maximum(region, score, out=region)
        return best
