"""Track ids, jitter and lag on synthetic videos of two people crossing, with and without the
``--smooth`` filter of ``tools/infer.py`` (the same ``common.tracking.track_people`` call).

Each video (``common.synthetic.crossing``, one per seed) has the true keypoints of both people
in every frame. The "detections" (``simulated_detections``) are what a keypoint model gives,
with realistic faults:

- every joint: the truth plus Gaussian noise of sd ``--noise`` x the body size (the drawing's
  torso length; 0.06 is 4.6 px at 960x540), joint score 0.9;
- joints of the person behind that lie inside the front person's box (hidden): three times that
  noise, joint score 0.1;
- the box: the true box, each side moved by noise of sd 2% of its size;
- the detector misses the person behind in frames where the two true boxes overlap with IoU
  >= ``--miss-iou`` (0.5: a few frames of the crossing), so tracks must survive a gap.

Measures, in pixels, over both people, all joints and the frames in which the person was found
(e_t: estimate minus truth of one joint in frame t; g_t: its true position):

- **jitter**: the RMS of |e_t - e_(t-1)| over consecutive found frames, how much the error
  changes from one frame to the next. A constant offset has none; independent noise of sd s
  per coordinate gives 2 s. This is what shakes on screen.
- **lag**: the mean of -e_t . u_t over joints that truly move >= 1 px in that frame, u_t the
  direction of g_t - g_(t-1): how far the estimate trails behind the true motion (noise alone
  gives about 0; a filter that is too slow gives the speed times its delay).
- **RMSE**: the root mean square of |e_t|.
- **ids**: the number of distinct track ids each true person got over the video (1 and 1: both
  kept their identity through the crossing; the table sums them), and id switches (frames in
  which a person's id differs from its previous one).

``python benchmarks/video_tracking.py [--seeds 0 1 2] [--frames 72] [--out output/crossing]``
writes ``OUT/crossing.mp4`` and ``OUT/crossing_truth.json`` (first seed; ``tools/infer.py
--boxes`` reads the truth file), ``OUT/crossing_frames.jpg`` (frames drawn raw and smoothed,
colour by track id), ``OUT/video_tracking.json`` and prints the table.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np
from _bootstrap import ROOT  # noqa: F401

from common.keypoints import load_keypoint_set
from common.smoothing import OneEuroSettings
from common.synthetic.crossing import (
    CrossingVideo,
    crossing_video,
    simulated_detections,
    write_crossing_video,
)
from common.tracking import PeopleTracker, TrackerSettings, track_people
from common.visualize import contact_sheet, draw_people


def measure(video: CrossingVideo, found: list, estimates: np.ndarray,
            ids: np.ndarray) -> dict[str, float]:
    """Jitter, lag, RMSE (px) and id counts of ``estimates`` (K, J, 2) for the K ``found``."""
    steps, lags, errors, id_sets, switches = [], [], [], {0: [], 1: []}, 0
    last: dict[int, tuple[int, np.ndarray, int]] = {}
    for (frame, person, *_), estimate, track_id in zip(found, estimates, ids, strict=True):
        truth = video.keypoints[frame, person]
        error = estimate - truth
        errors.append(np.linalg.norm(error, axis=1))
        if person in last:
            previous_frame, previous_error, previous_id = last[person]
            switches += int(track_id != previous_id)
            if previous_frame == frame - 1:
                steps.append(np.linalg.norm(error - previous_error, axis=1))
        if frame > 0:
            motion = truth - video.keypoints[frame - 1, person]
            speed = np.linalg.norm(motion, axis=1)
            moving = speed >= 1.0
            lags.append(-(error * motion).sum(axis=1)[moving] / speed[moving])
        id_sets[person].append(int(track_id))
        last[person] = (frame, error, int(track_id))
    return {"jitter": float(np.sqrt(np.mean(np.concatenate(steps) ** 2))),
            "lag": float(np.mean(np.concatenate(lags))),
            "rmse": float(np.sqrt(np.mean(np.concatenate(errors) ** 2))),
            "ids": sum(len(set(v)) for v in id_sets.values()), "switches": switches}


def run_tracker(video: CrossingVideo, found: list, settings: TrackerSettings,
                smoothing: OneEuroSettings | None) -> tuple[np.ndarray, np.ndarray]:
    sigmas = load_keypoint_set("motion24").sigmas
    tracker = PeopleTracker(sigmas, settings, smoothing, video.fps)
    frames = np.array([f for f, *_ in found])
    return track_people(tracker, frames, np.array([b for _, _, b, _, _ in found]),
                        np.array([k for *_, k, _ in found]), np.array([s for *_, s in found]))


def picture(video: CrossingVideo, found: list, raw: tuple, smooth: tuple,
            frames: list[int]) -> np.ndarray:
    """The chosen frames drawn raw (top row) and smoothed (bottom row), colour by track id."""
    skeleton = load_keypoint_set("motion24").skeleton
    rows = []
    for ids, estimates in (raw, smooth):
        for frame in frames:
            people = [(int(ids[k]), estimates[k], found[k][4], found[k][2])
                      for k in range(len(found)) if found[k][0] == frame]
            rows.append(draw_people(video.frames[frame], people, 0.3, skeleton, tracked=True))
    titles = [f"{kind} frame {frame}" for kind in ("raw", "--smooth") for frame in frames]
    return contact_sheet(rows, columns=len(frames), cell_width=640, titles=titles)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--frames", type=int, default=72)
    parser.add_argument("--width", type=int, default=960)
    parser.add_argument("--height", type=int, default=540)
    parser.add_argument("--noise", type=float, default=0.06, help="joint noise sd, body sizes")
    parser.add_argument("--miss-iou", type=float, default=0.5)
    parser.add_argument("--min-cutoff", type=float, default=OneEuroSettings.min_cutoff)
    parser.add_argument("--beta", type=float, default=OneEuroSettings.beta)
    parser.add_argument("--out", type=Path, default=Path("output/crossing"))
    args = parser.parse_args(argv)
    smoothing = OneEuroSettings(args.min_cutoff, args.beta)
    variants = {"raw": (TrackerSettings(), None), "--smooth": (TrackerSettings(), smoothing),
                "raw, IoU only": (TrackerSettings(iou_weight=1.0), None)}
    results: dict[str, list[dict]] = {name: [] for name in variants}
    args.out.mkdir(parents=True, exist_ok=True)
    for index, seed in enumerate(args.seeds):
        video = crossing_video(args.frames, args.width, args.height, seed)
        found = simulated_detections(video, args.noise, args.miss_iou, seed)
        outputs = {name: run_tracker(video, found, *variant)
                   for name, variant in variants.items()}
        for name, (ids, estimates) in outputs.items():
            results[name].append({"seed": seed, **measure(video, found, estimates, ids)})
        if index == 0:
            write_crossing_video(video, args.out)
            middle = args.frames // 2
            sheet = picture(video, found, outputs["raw"], outputs["--smooth"],
                            [middle - 8, middle, middle + 8])
            cv2.imwrite(str(args.out / "crossing_frames.jpg"), sheet,
                        [cv2.IMWRITE_JPEG_QUALITY, 80])
    summary = {name: {key: float(np.mean([r[key] for r in runs])) for key in runs[0]
                      if key != "seed"} for name, runs in results.items()}
    print(f"{len(args.seeds)} videos of {args.frames} frames at {args.width}x{args.height}, "
          f"joint noise {args.noise} body sizes, One Euro min_cutoff {args.min_cutoff} Hz, "
          f"beta {args.beta}")
    print(f"{'':16}{'jitter px':>10}{'lag px':>8}{'RMSE px':>9}{'ids/video':>10}{'switches':>9}")
    for name, row in summary.items():
        print(f"{name:16}{row['jitter']:10.2f}{row['lag']:8.2f}{row['rmse']:9.2f}"
              f"{row['ids']:10.2f}{row['switches']:9.2f}")
    (args.out / "video_tracking.json").write_text(
        json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "summary": summary,
                    "runs": results}, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
