"""Every person's keypoints on an image, a folder of images or a video.

python tools/infer.py --input photos/ --cfg experiments/coco/w48_384x288.yaml \
    --weights pose_hrnet_w48_384x288.pth [--out predictions/] [KEY VALUE ...]

Weights: ``--weights FILE`` (the official pose_hrnet_*.pth, an MMPose td-hm_hrnet checkpoint,
or this project's model_best.pth; same as ``TEST.MODEL_FILE FILE``) or ``--keypoint-output
RUN`` (a run folder holding model_best.pth). Boxes, best first: ``--boxes FILE`` (a JSON list
of ``{file_name | frame | image_id, bbox [x, y, w, h], score}``: this tool's keypoints.json,
hand-written boxes or COCO detection results; or a stage-one ``test_annotation.pkl``), a box
model (``--bbox-cfg`` and ``--bbox-output``), or else the whole picture. ``--det-thr`` drops
boxes scoring below it, ``--max-people`` keeps the best N of each picture. The pictures go
through the chain's one path (``stages.multi_person.people_in_chunks``): stage two on each box,
rescoring, and OKS-NMS on a box model's boxes (a user's ``--boxes`` are kept one person each).

Writes ``OUT/keypoints.json`` (per person: ``file_name`` or ``frame``, ``bbox``, ``keypoints``
[x, y, score] triples in original pixels, ``score``), ``OUT/keypoints.csv``, and the drawn
pictures (``OUT/pictures/``, each under its input's name) or ``OUT/<video>_keypoints.mp4``.
A run that fails leaves no output folder; pictures that cannot be read are named at the end
(exit 2) after the others' results are written. ``KEY VALUE`` overrides go to both configs.

Each person is drawn in its own colour with its number, joints scored below ``--kp-thr`` faint,
and a legend below the picture. On a video every person gets a ``track_id`` (kept across
frames, drawn as its number and colour; ``common/tracking.py``), and ``--smooth`` filters each
track's keypoints (One Euro, ``--smooth-min-cutoff``, ``--smooth-beta``, ``--smooth-d-cutoff``).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import _bootstrap  # noqa: F401
import numpy as np
import torch

from common.cli import ToolParser
from common.config import load_config, positive_int
from common.errors import UserError
from common.keypoint_config import config_keypoint_set
from common.media import iterate_chunks, open_media
from common.progress import progress
from common.seed import seed_everything
from common.tracking import PeopleTracker, add_video_arguments, tracker_from_arguments
from stages.box_sources import WholePicture, given_boxes
from stages.infer_output import PeopleWriter, check_out_folder, staged_folder
from stages.multi_person import (
    PicturePeople,
    StageOneBoxes,
    load_people_models,
    people_in_chunks,
)

CHUNK = 16  # images or frames decoded at a time
# Keys a user may expect infer to read, which it does not (it reads no data set): what to do.
UNREAD_KEYS = {
    "TEST.USE_GT_BBOX": "infer's boxes come from --boxes, --bbox-cfg or the whole picture",
    "TEST.BOX_SOURCE": "infer's boxes come from --boxes, --bbox-cfg or the whole picture",
    "TEST.COCO_BBOX_FILE": "give the detections to infer as --boxes FILE",
    "DATASET.BOX_FILE": "give the box file to infer as --boxes FILE",
}


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


def _keypoint_config(args: argparse.Namespace):
    opts = list(args.opts)
    if args.weights is not None:
        opts += ["TEST.MODEL_FILE", str(args.weights)]
    cfg = load_config(args.keypoint_cfg, opts, unread=UNREAD_KEYS)
    if args.keypoint_output is None and not cfg.TEST.MODEL_FILE:
        raise UserError("no weights given: pass --weights FILE (a checkpoint) or "
                        "--keypoint-output RUN (a run folder holding model_best.pth)")
    if args.keypoint_output is not None and not args.keypoint_output.is_dir():
        raise UserError(f"--keypoint-output {args.keypoint_output} is not a folder: give the "
                        "run folder of a keypoint training run, or --weights FILE")
    return cfg


def _track(picture: PicturePeople, tracker: PeopleTracker | None) -> None:
    """Video: each person's track id and (with --smooth) filtered keypoints, in place."""
    if tracker is None or not picture.people:
        return
    people = picture.people
    ids, keypoints = tracker.update(int(picture.name.split("_")[1]),
                                    np.array([p.box for p in people]),
                                    np.array([p.keypoints for p in people]),
                                    np.array([p.keypoint_scores for p in people]))
    for person, track_id, points in zip(people, ids, keypoints, strict=True):
        person.track_id, person.keypoints = int(track_id), points


def run(args: argparse.Namespace) -> dict:
    """Check everything, then predict every picture into a staged folder moved to ``--out``."""
    keypoint_cfg = _keypoint_config(args)
    seed_everything(keypoint_cfg.RANDOMSEED, keypoint_cfg)
    kp_set = config_keypoint_set(keypoint_cfg)
    media = open_media(args.input)
    check_out_folder(args.out)
    source = (given_boxes(args.boxes, media, args.category_id, _warn)
              if args.boxes is not None else WholePicture())
    box_cfg = (load_config(args.bbox_cfg, args.opts, unread=UNREAD_KEYS)
               if args.bbox_cfg is not None else None)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    models = load_people_models(box_cfg, args.bbox_output, keypoint_cfg, args.keypoint_output,
                                device)
    if box_cfg is not None:
        what = "the person detector" if box_cfg.TASK == "detect" else "stage one's box model"
        source = StageOneBoxes(models, f"{what} of {args.bbox_output}")
    print(f"boxes: {source.describe}", file=sys.stderr)
    video = media.kind == "video"
    tracker = tracker_from_arguments(args, kp_set.sigmas, media.fps) if video else None
    if args.smooth and not video:
        _warn(f"--smooth filters keypoints over a video's frames; it has no effect on "
              f"{media.kind} input")
    unreadable: list[str] = []
    outside: list[str] = []
    with staged_folder(args.out) as folder:
        writer = PeopleWriter(folder, media, kp_set, args.kp_thr)
        chunks = iterate_chunks(media, CHUNK, unreadable)
        pictures = people_in_chunks(models, chunks, source, args.det_thr, args.max_people,
                                    outside)
        total = media.frames or None if media.kind == "video" else len(media.files)
        for picture in progress(pictures, f"infer {media.kind}", total,
                                "frames" if media.kind == "video" else "images"):
            _track(picture, tracker)
            writer.add(picture)
        summary = writer.close()
    if outside:
        _warn(f"{len(outside)} pictures had boxes outside the picture, left out: "
              f"{', '.join(outside[:5])}{' ...' if len(outside) > 5 else ''}")
    return {**summary, "unreadable": unreadable, "out": str(args.out)}


def _score_threshold(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0.0 <= value <= 1.0:  # NaN fails too
        raise argparse.ArgumentTypeError(f"expected a box score from 0 to 1, got {text!r}")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = ToolParser(description=__doc__.split("\n")[0])
    parser.add_argument("--input", type=Path, required=True, help="image, folder or video")
    parser.add_argument("--cfg", "--keypoint-cfg", dest="keypoint_cfg", required=True,
                        help="the keypoint model's config (e.g. experiments/coco/*.yaml)")
    weights = parser.add_mutually_exclusive_group()
    weights.add_argument("--weights", type=Path, help="checkpoint file (TEST.MODEL_FILE)")
    weights.add_argument("--keypoint-output", type=Path, help="run folder with model_best.pth")
    parser.add_argument("--boxes", type=Path, help="box or detection file (JSON or .pkl)")
    parser.add_argument("--bbox-cfg", help="box model's config (with --bbox-output)")
    parser.add_argument("--bbox-output", type=Path, help="box model's run folder")
    parser.add_argument("--det-thr", type=_score_threshold, default=0.0,
                        help="drop boxes scoring below this (default 0: keep all)")
    parser.add_argument("--max-people", type=positive_int, help="keep the best N per picture")
    parser.add_argument("--category-id", type=int, help="use only boxes of this category")
    parser.add_argument("--out", type=Path, default=Path("predictions"))
    add_video_arguments(parser)
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE for both configs")
    args = parser.parse_args(argv)
    if (args.bbox_cfg is None) != (args.bbox_output is None):
        parser.error("--bbox-cfg and --bbox-output go together (the box model and its run)")
    if args.boxes is not None and args.bbox_cfg is not None:
        parser.error("give either --boxes FILE or a box model (--bbox-cfg, --bbox-output)")
    summary = run(args)
    print(f"{summary['kind']}: {summary['people']} people in {summary['pictures']} pictures; "
          f"wrote {summary['out']}/keypoints.json"
          + (f" and {summary['video']}" if summary.get("video") else ""))
    if summary["unreadable"]:
        bad = summary["unreadable"]
        print(f"error: {len(bad)} of {len(bad) + summary['pictures']} pictures could not be read "
              f"and have no results: {'; '.join(bad[:5])}{' ...' if len(bad) > 5 else ''}; the "
              f"others' results are in {summary['out']}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    from common.cli import run_tool

    run_tool(main)

