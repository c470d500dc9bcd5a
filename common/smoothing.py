"""A One Euro filter for keypoints on video, one per tracked person (``tools/infer.py --smooth``).

The One Euro filter (Casiez, Roussel and Vogel, CHI 2012) is a low-pass filter whose cutoff
rises with the signal's speed: a person standing still gets a low cutoff (little jitter), a
person moving fast a high one (little lag). Here every joint has its own cutoff, from the speed
of its own (x, y) point, and speeds are measured in person sizes per second (the box's
``sqrt(w * h)``), so that ``beta`` means the same at any resolution or distance to the camera.
Time is in seconds (frame number / frame rate), so the cutoffs are in Hz.

A person walking across the picture moves all joints at once, and any low-pass filter lags
behind such a motion (at 200 px/s, a 3 Hz cutoff trails by about 10 px). ``PoseSmoother``
therefore filters the pose relative to the person's centre (the mean of its joints) and leaves
the centre itself as measured: averaged over all joints, its noise is already small, and the
limbs relative to the body move far less than the body does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class OneEuroSettings:
    """``min_cutoff`` (Hz): the cutoff at rest, lower is smoother and lags more when slow;
    ``beta`` (per person size per second): how fast the cutoff rises with speed, higher lags
    less when fast; ``d_cutoff`` (Hz): the cutoff of the speed estimate itself."""

    min_cutoff: float = 1.0
    beta: float = 3.0
    d_cutoff: float = 1.0

    def __post_init__(self) -> None:
        for name in ("min_cutoff", "beta", "d_cutoff"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0 or (value == 0 and name != "beta"):
                raise ValueError(f"One Euro {name} must be a finite number "
                                 f"{'>= 0' if name == 'beta' else '> 0'}, got {value}")


def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray | float:
    """The smoothing factor of a first-order low-pass filter at ``cutoff`` Hz, step ``dt`` s."""
    tau = 1.0 / (2.0 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """Filters one person's (J, 2) keypoints frame after frame; the first frame passes as is.
    Frames may be skipped (a track that missed a detection): the step is the time between
    the calls."""

    def __init__(self, settings: OneEuroSettings) -> None:
        self.settings = settings
        self._value: np.ndarray | None = None
        self._speed: np.ndarray | None = None
        self._time = 0.0

    def __call__(self, points: np.ndarray, time: float, scale: float = 1.0) -> np.ndarray:
        """The filtered copy of ``points`` (J, 2) seen at ``time`` seconds; ``scale`` is the
        person's size in pixels (speeds are divided by it before ``beta`` applies)."""
        points = np.asarray(points, dtype=np.float64)
        if self._value is None:
            self._value, self._speed, self._time = points.copy(), np.zeros_like(points), time
            return points.copy()
        dt = time - self._time
        if not dt > 0:
            raise ValueError(f"One Euro filter: time must increase, got {time} after {self._time}")
        raw_speed = (points - self._value) / dt
        self._speed = self._speed + _alpha(self.settings.d_cutoff, dt) * (raw_speed - self._speed)
        speed = np.linalg.norm(self._speed, axis=-1, keepdims=True) / max(scale, 1e-6)
        cutoff = self.settings.min_cutoff + self.settings.beta * speed
        self._value = self._value + _alpha(cutoff, dt) * (points - self._value)
        self._time = time
        return self._value.copy()


class PoseSmoother:
    """One person's (J, 2) keypoints filtered frame after frame: the centre (mean joint) as
    measured, the pose around it through a One Euro filter."""

    def __init__(self, settings: OneEuroSettings) -> None:
        self._relative = OneEuroFilter(settings)

    def __call__(self, points: np.ndarray, time: float, scale: float = 1.0) -> np.ndarray:
        points = np.asarray(points, dtype=np.float64)
        centre = points.mean(axis=0, keepdims=True)
        return centre + self._relative(points - centre, time, scale)
