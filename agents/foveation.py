"""Eccentricity-dependent blur: a view as a foveated eye sees it.

Sharp within the fovea, blurrier with angle from the view's centre, as in eccNET
("Visual Search Asymmetry", NeurIPS 2021), whose sampling grows coarser with
eccentricity. Each pixel blends the two nearest levels of a Gaussian pyramid chosen
by its eccentricity, so blur grows smoothly; the blend weights depend only on the
camera and are computed once per (fov, size).
"""

from __future__ import annotations

import cv2
import numpy as np

from panoseek.envs import geometry


def eccentricity_deg(fov_deg: float, width: int, height: int) -> np.ndarray:
    """Angle in degrees between each pixel's ray and the optical axis, ``(H, W)``."""
    rays = geometry.camera_rays(float(fov_deg), int(width), int(height))
    return np.degrees(np.arccos(1.0 / np.linalg.norm(rays, axis=-1)))


class Foveator:
    """Blurs views of one size by eccentricity.

    Args:
        fov_deg, size: the camera of the views (horizontal field of view, (width, height)).
        fovea_deg: radius of the sharp centre.
        degrees_per_level: eccentricity that adds one pyramid level (a halving of
            resolution) beyond the fovea.
        levels: pyramid levels above the sharp image (the coarsest blur).
    """

    def __init__(self, fov_deg: float, size: tuple[int, int], *, fovea_deg: float = 10.0, degrees_per_level: float = 12.0, levels: int = 3) -> None:
        width, height = size
        self.size = (int(width), int(height))
        self.levels = levels
        eccentricity = eccentricity_deg(fov_deg, width, height)
        self.level = np.clip((eccentricity - fovea_deg) / degrees_per_level, 0.0, float(levels)).astype(np.float32)
        lower = np.floor(self.level).astype(np.int32)
        upper_weight = self.level - lower
        # weights[k] is each pixel's share of pyramid level k (two neighbours blended).
        self.weights = np.zeros((levels + 1, height, width, 1), dtype=np.float32)
        for k in range(levels + 1):
            self.weights[k, ..., 0] = np.where(lower == k, 1.0 - upper_weight, 0.0) + np.where(lower + 1 == k, upper_weight, 0.0)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """The foveated ``(H, W, 3)`` uint8 view."""
        height, width = image.shape[:2]
        if (width, height) != self.size:
            raise ValueError(f"view is {width}x{height}, this foveator was built for {self.size[0]}x{self.size[1]}")
        out = image.astype(np.float32) * self.weights[0]
        level = image
        for k in range(1, self.levels + 1):
            level = cv2.pyrDown(level)
            if self.weights[k].any():
                out += cv2.resize(level, (width, height), interpolation=cv2.INTER_LINEAR).astype(np.float32) * self.weights[k]
        return np.clip(out + 0.5, 0, 255).astype(np.uint8)
