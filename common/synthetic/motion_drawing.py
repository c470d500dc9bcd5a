"""Drawing for the synthetic motion set: figures whose every keypoint can be read from the
pixels, cluttered backgrounds and sensor noise (cv2, sub-pixel coordinates)."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from common.synthetic.motion_sequences import NECK, WAIST, J

_SHIFT = 4  # cv2 sub-pixel bits: coordinates drawn to 1/16 pixel
_ONE = 1 << _SHIFT


def _fixed(points: np.ndarray) -> np.ndarray:
    return np.round(np.asarray(points, dtype=np.float64) * _ONE).astype(np.int32)


def _hsv(hue: float, saturation: float, value: float) -> tuple[int, int, int]:
    """A BGR colour from OpenCV hue (0-180), saturation and value (0-255)."""
    pixel = np.uint8([[[int(hue) % 180, int(saturation), int(value)]]])
    b, g, r = cv2.cvtColor(pixel, cv2.COLOR_HSV2BGR)[0, 0]
    return int(b), int(g), int(r)


def _shade(colour: tuple[int, int, int], factor: float) -> tuple[int, int, int]:
    return tuple(int(np.clip(c * factor, 0, 255)) for c in colour)


def _disc(image: np.ndarray, centre: np.ndarray, radius: float, colour: tuple) -> None:
    cv2.circle(
        image,
        tuple(_fixed(centre)),
        max(int(round(radius * _ONE)), _ONE // 2),
        colour,
        -1,
        cv2.LINE_AA,
        _SHIFT,
    )


def _ring(
    image: np.ndarray, centre: np.ndarray, radius: float, colour: tuple, thickness: int
) -> None:
    cv2.circle(
        image,
        tuple(_fixed(centre)),
        max(int(round(radius * _ONE)), _ONE),
        colour,
        max(thickness, 1),
        cv2.LINE_AA,
        _SHIFT,
    )


def _tapered(
    image: np.ndarray,
    start: np.ndarray,
    end: np.ndarray,
    width_start: float,
    width_end: float,
    colour: tuple,
) -> None:
    """A limb: a quadrilateral from ``start`` to ``end`` with round ends, narrowing."""
    direction = end - start
    length = float(np.hypot(*direction))
    if length > 1e-6:
        normal = np.array([-direction[1], direction[0]]) / length
        corners = np.array(
            [
                start + normal * width_start / 2,
                end + normal * width_end / 2,
                end - normal * width_end / 2,
                start - normal * width_start / 2,
            ]
        )
        cv2.fillConvexPoly(image, _fixed(corners), colour, cv2.LINE_AA, _SHIFT)
    _disc(image, start, width_start / 2, colour)
    _disc(image, end, width_end / 2, colour)


def _shaded_limb(
    image: np.ndarray,
    start: np.ndarray,
    end: np.ndarray,
    width_start: float,
    width_end: float,
    colour: tuple,
) -> None:
    """A limb with a dark rim and a lit middle stripe, so it reads as a rounded solid."""
    _tapered(image, start, end, width_start, width_end, _shade(colour, 0.55))
    _tapered(image, start, end, width_start * 0.72, width_end * 0.72, colour)
    _tapered(image, start, end, width_start * 0.25, width_end * 0.25, _shade(colour, 1.25))


@dataclass(frozen=True)
class FigureStyle:
    """Colours of one subject. Left limbs are always warm (red-yellow), right limbs cool."""

    left_arm: tuple[int, int, int]
    left_leg: tuple[int, int, int]
    right_arm: tuple[int, int, int]
    right_leg: tuple[int, int, int]
    torso: tuple[int, int, int]
    skin: tuple[int, int, int]
    hair: tuple[int, int, int]

    @classmethod
    def sample(cls, rng: np.random.Generator) -> FigureStyle:
        warm = rng.uniform(0, 14)  # OpenCV hue: red..orange
        cool = rng.uniform(98, 118)  # blue..azure
        saturation = rng.uniform(170, 250)
        torso_hue = rng.choice([rng.uniform(40, 80), rng.uniform(135, 165)])  # green or purple
        skin = rng.uniform(0.55, 1.0)
        return cls(
            left_arm=_hsv(warm, saturation, rng.uniform(200, 255)),
            left_leg=_hsv(warm + 12, saturation, rng.uniform(150, 210)),
            right_arm=_hsv(cool, saturation, rng.uniform(200, 255)),
            right_leg=_hsv(cool - 12, saturation, rng.uniform(150, 210)),
            torso=_hsv(torso_hue, rng.uniform(60, 160), rng.uniform(90, 200)),
            skin=(int(150 * skin + 40), int(175 * skin + 40), int(205 * skin + 45)),
            hair=_hsv(rng.uniform(0, 30), rng.uniform(40, 160), rng.uniform(20, 90)),
        )


def render_figure(
    image: np.ndarray,
    keypoints: np.ndarray,
    body_unit: float,
    style: FigureStyle,
    left_in_front: bool = True,
) -> None:
    """Draw one person in place so that each of the 24 keypoints can be read off the pixels.

    Joints sit at the centres of darker joint discs, palms and insteps are blobs at the ends of
    hands and feet, the neck and spine points are ringed marks on a stripe down the torso, and
    the face has ears (coloured by side), eyes (iris coloured by side) and a red nose.
    ``body_unit`` (pixels, about a torso length) sets widths and the head's size.
    """
    k = np.asarray(keypoints, dtype=np.float64)
    t = max(float(body_unit), 4.0)
    sides = {
        "left": (style.left_arm, style.left_leg),
        "right": (style.right_arm, style.right_leg),
    }
    order = ("right", "left") if left_in_front else ("left", "right")

    def leg(side: str) -> None:
        colour = sides[side][1]
        hip, knee, ankle, instep = (J[f"{side}_{n}"] for n in ("hip", "knee", "ankle", "instep"))
        _shaded_limb(image, k[hip], k[knee], 0.38 * t, 0.28 * t, colour)
        _shaded_limb(image, k[knee], k[ankle], 0.28 * t, 0.18 * t, _shade(colour, 0.85))
        _shaded_limb(image, k[ankle], k[instep], 0.17 * t, 0.13 * t, _shade(colour, 0.7))
        _disc(image, k[knee], 0.085 * t, _shade(colour, 0.45))
        _disc(image, k[ankle], 0.06 * t, _shade(colour, 0.45))
        _disc(image, k[instep], 0.075 * t, (40, 40, 40))
        _disc(image, k[instep], 0.045 * t, _shade(colour, 1.3))

    def arm(side: str) -> None:
        colour = sides[side][0]
        shoulder, elbow, wrist, palm = (
            J[f"{side}_{n}"] for n in ("shoulder", "elbow", "wrist", "palm")
        )
        _shaded_limb(image, k[shoulder], k[elbow], 0.26 * t, 0.2 * t, colour)
        _shaded_limb(image, k[elbow], k[wrist], 0.2 * t, 0.15 * t, _shade(colour, 0.85))
        _tapered(image, k[wrist], k[palm], 0.13 * t, 0.16 * t, style.skin)
        _disc(image, k[shoulder], 0.08 * t, _shade(colour, 0.45))
        _disc(image, k[elbow], 0.065 * t, _shade(colour, 0.45))
        _disc(image, k[wrist], 0.05 * t, _shade(colour, 0.45))
        _disc(image, k[palm], 0.08 * t, _shade(style.skin, 0.6))
        _disc(image, k[palm], 0.05 * t, _shade(colour, 1.3))

    for side in order:
        leg(side)
    # Torso: a body between shoulders and hips, plus a thick spine so a side view has a body.
    body = k[[J["left_shoulder"], J["right_shoulder"], J["right_hip"], J["left_hip"]]]
    hull = cv2.convexHull(_fixed(body))
    cv2.fillConvexPoly(image, hull, style.torso, cv2.LINE_AA, _SHIFT)
    _tapered(image, k[NECK], k[J["spine2(back)"]], 0.62 * t, 0.56 * t, style.torso)
    _tapered(image, k[J["spine2(back)"]], k[WAIST], 0.56 * t, 0.52 * t, style.torso)
    for side in ("left", "right"):
        _tapered(image, k[NECK], k[J[f"{side}_shoulder"]], 0.3 * t, 0.28 * t, style.torso)
        _tapered(image, k[WAIST], k[J[f"{side}_hip"]], 0.4 * t, 0.4 * t, style.torso)
        _disc(image, k[J[f"{side}_hip"]], 0.09 * t, _shade(sides[side][1], 0.5))
    stripe = _shade(style.torso, 0.45)
    _tapered(image, k[NECK], k[J["spine2(back)"]], 0.05 * t, 0.05 * t, stripe)
    _tapered(image, k[J["spine2(back)"]], k[WAIST], 0.05 * t, 0.05 * t, stripe)
    for index, mark in (
        (NECK, (255, 255, 255)),
        (J["spine2(back)"], (0, 220, 255)),
        (WAIST, (255, 0, 255)),
    ):
        _disc(image, k[index], 0.075 * t, stripe)
        _disc(image, k[index], 0.045 * t, mark)

    for side in order:
        arm(side)

    # Head: a skull around the face points, a neck up to it, then the face marks.
    face = k[[J["nose"], J["left_eye"], J["right_eye"], J["left_ear"], J["right_ear"]]]
    centre = face.mean(axis=0)
    radius = max(0.3 * t, 1.25 * float(np.max(np.linalg.norm(face - centre, axis=1))))
    _tapered(image, k[NECK], centre, 0.22 * t, 0.2 * t, _shade(style.skin, 0.85))
    _disc(image, centre, radius, _shade(style.hair, 1.0))
    _disc(image, centre, radius * 0.86, style.skin)
    for side, colour in (("left", style.left_arm), ("right", style.right_arm)):
        ear, eye = k[J[f"{side}_ear"]], k[J[f"{side}_eye"]]
        _disc(image, ear, 0.075 * t, _shade(colour, 0.6))
        _disc(image, ear, 0.045 * t, colour)
        _disc(image, eye, 0.05 * t, (250, 250, 250))
        _disc(image, eye, 0.03 * t, colour)
        _disc(image, eye, 0.012 * t, (10, 10, 10))
    _disc(image, k[J["nose"]], 0.045 * t, (30, 30, 120))
    _disc(image, k[J["nose"]], 0.03 * t, (40, 40, 235))


def render_background(
    rng: np.random.Generator, size: tuple[int, int], feet_y: float | None = None
) -> np.ndarray:
    """A cluttered room: a blotchy gradient wall, a floor with seams, shapes, lines and text.

    ``feet_y`` (pixels), the lowest point of the person, puts the wall's foot above it, so the
    person stands or lies on the floor rather than floating in front of the wall.
    """
    width, height = size
    small = (max(width // 32, 2), max(height // 32, 2))
    top = rng.uniform(30, 230, 3)
    bottom = rng.uniform(30, 230, 3)
    ramp = np.linspace(0.0, 1.0, small[1])[:, None, None]
    wall = top * (1 - ramp) + bottom * ramp + rng.normal(0, 12, (small[1], small[0], 3))
    image = cv2.resize(
        np.clip(wall, 0, 255).astype(np.uint8), (width, height), interpolation=cv2.INTER_CUBIC
    )

    horizon = rng.uniform(0.55, 0.8) * height
    if feet_y is not None:
        horizon = float(np.clip(feet_y - rng.uniform(0.05, 0.2) * height, 0.3 * height, horizon))
    floor = tuple(float(v) for v in rng.uniform(40, 200, 3))
    corners = _fixed(
        [
            [0, horizon],
            [width, horizon + rng.normal(0, 0.02) * height],
            [width, height],
            [0, height],
        ]
    )
    cv2.fillConvexPoly(image, corners, floor, cv2.LINE_AA, _SHIFT)
    vanishing = np.array([rng.uniform(0.2, 0.8) * width, horizon - rng.uniform(0.1, 0.5) * height])
    seam = _shade(floor, rng.uniform(0.6, 0.85))
    reach = (horizon - vanishing[1]) / (height - vanishing[1])  # where the seams meet the wall
    for x in np.linspace(-width, 2 * width, int(rng.integers(6, 14))):
        start = vanishing + (np.array([x, height]) - vanishing) * reach
        cv2.line(
            image,
            tuple(_fixed(start)),
            tuple(_fixed([x, height])),
            seam,
            max(1, height // 400),
            cv2.LINE_AA,
            _SHIFT,
        )

    scale = min(width, height)
    for _ in range(int(rng.integers(12, 30))):
        colour = tuple(float(v) for v in rng.uniform(0, 255, 3))
        kind = rng.integers(0, 6)
        centre = rng.uniform([0, 0], [width, height])
        extent = rng.uniform(0.02, 0.25) * scale
        thickness = int(rng.choice([-1, max(1, scale // 200), max(2, scale // 80)]))
        if kind == 0:
            corner = centre + rng.uniform(0.5, 2.0, 2) * extent
            cv2.rectangle(
                image,
                tuple(_fixed(centre)),
                tuple(_fixed(corner)),
                colour,
                thickness,
                cv2.LINE_AA,
                _SHIFT,
            )
        elif kind == 1 and thickness > 0:
            _ring(image, centre, extent / 2, colour, thickness)
        elif kind == 1:
            _disc(image, centre, extent / 2, colour)
        elif kind == 2:
            end = centre + rng.normal(0, 1.5, 2) * extent
            cv2.line(
                image,
                tuple(_fixed(centre)),
                tuple(_fixed(end)),
                colour,
                max(1, abs(thickness)),
                cv2.LINE_AA,
                _SHIFT,
            )
        elif kind == 3:
            points = centre + rng.normal(0, 1.0, (int(rng.integers(3, 7)), 2)) * extent
            cv2.polylines(
                image,
                [_fixed(points)],
                bool(rng.integers(0, 2)),
                colour,
                max(1, abs(thickness)),
                cv2.LINE_AA,
                _SHIFT,
            )
        elif kind == 4:
            axes = rng.uniform(0.3, 1.0, 2) * extent
            cv2.ellipse(
                image,
                tuple(_fixed(centre)),
                tuple(_fixed(axes)),
                float(rng.uniform(0, 180)),
                0.0,
                360.0,
                colour,
                thickness,
                cv2.LINE_AA,
                _SHIFT,
            )
        else:
            letters = "".join(rng.choice(list("ABCDEFGHKMNPRSTUVWXYZ0123456789"), 5))
            cv2.putText(
                image,
                letters,
                tuple(int(v) for v in centre),
                cv2.FONT_HERSHEY_SIMPLEX,
                extent / 40.0,
                colour,
                max(1, scale // 300),
                cv2.LINE_AA,
            )
    return image


def add_sensor_noise(rng: np.random.Generator, image: np.ndarray, strength: float) -> None:
    """Grain and a light blur, in place: the camera's look, and no perfectly sharp edges."""
    height, width = image.shape[:2]
    grain = rng.integers(-strength, strength + 1, size=(height, width, 1), dtype=np.int16)
    noisy = image.astype(np.int16) + grain
    np.clip(noisy, 0, 255, out=noisy)
    cv2.GaussianBlur(noisy.astype(np.uint8), (3, 3), 0.6, dst=image)
