"""Keypoints on any image, folder of images or video, without a CSV or a truth file.

python tools/infer.py --input clip.mp4 --keypoint-cfg experiments/keypoint/tiny_cpu_keypoint.yaml \
    --keypoint-output RUN2 --bbox-cfg experiments/bbox/tiny_cpu_bbox.yaml --bbox-output RUN1 \
    --out predictions/ [KEY VALUE ...]

Boxes come from stage one (``--bbox-cfg`` and ``--bbox-output``) or from ``--boxes FILE``: a
JSON list of ``{file_name | frame, bbox [x, y, w, h], score}`` (several per image allowed; this
tool's own keypoints.json works) or a stage-one ``test_annotation.pkl``. Writes
``OUT/keypoints.json`` (one entry per person: ``file_name`` or ``frame``, ``bbox``,
``keypoints`` [x, y, score] triples in original pixels, ``score``), ``OUT/keypoints.csv`` and
the drawn pictures (``OUT/pictures/``) or, for a video, ``OUT/<video name>_keypoints.mp4``.
``KEY VALUE`` overrides go to both configs (e.g. ``TEST.BACKEND onnxruntime``).

Each person is drawn in its own colour with its number, joints scored below ``--kp-thr`` faint,
and a legend below the picture. On a video every person gets a ``track_id`` (kept across
frames, drawn as its number and colour; ``common/tracking.py``), and ``--smooth`` filters each
track's keypoints (One Euro, ``--smooth-min-cutoff``, ``--smooth-beta``, ``--smooth-d-cutoff``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import _bootstrap  # noqa: F401
import cv2
import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from common.box_files import read_box_annotations
from common.config import load_config
from common.io import ImageReadError, atomic_path
from common.keypoint_config import config_keypoint_set
from common.keypoints import KeypointSetError, coordinate_columns
from common.media import Media, MediaError, iterate_chunks, open_media
from common.motion_data import DataFormatError
from common.seed import seed_everything
from common.tracking import add_video_arguments, track_people, tracker_from_arguments
from common.visualize import draw_people
from HRNet_bbox import engine as bbox_engine
from HRNet_keypoint import engine as keypoint_engine
from HRNet_keypoint.coco_results import rescore

CHUNK = 16  # images or frames decoded at a time


def read_boxes_file(path: Path) -> dict[str, list[tuple[list[float], float]]]:
    """name (file name, or ``frame_<n>``) -> [(box, score)] from a JSON list or a box pickle."""
    if path.suffix.lower() == ".pkl":
        return {name: [(r["bbox"], 1.0)] for name, r in read_box_annotations(path).items()}
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise DataFormatError(f"--boxes {path}: cannot read as JSON: {error}") from error
    boxes: dict[str, list] = {}
    for index, entry in enumerate(entries if isinstance(entries, list) else [None]):
        ok = isinstance(entry, dict) and ("file_name" in entry or "frame" in entry)
        box = entry.get("bbox") if ok else None
        if not ok or not (isinstance(box, list) and len(box) == 4):
            raise DataFormatError(f"--boxes {path}: entry {index}: expected {{file_name or "
                                  "frame, bbox [x, y, w, h], score}")
        name = entry["file_name"] if "file_name" in entry else f"frame_{int(entry['frame']):06d}"
        boxes.setdefault(str(name), []).append(([float(v) for v in box],
                                                float(entry.get("score", 1.0))))
    return boxes


def _entry(media: Media, name: str, box, keypoints, scores, score, track_id) -> dict:
    where = {"frame": int(name.split("_")[1])} if media.kind == "video" else {"file_name": name}
    triples = np.concatenate([keypoints, scores[:, None]], axis=1).ravel().tolist()
    tracked = {} if track_id is None else {"track_id": int(track_id)}
    return {**where, "bbox": [float(v) for v in box], "keypoints": triples,
            "score": float(score), **tracked}


def run(args: argparse.Namespace) -> dict:
    keypoint_cfg = load_config(args.keypoint_cfg, args.opts)
    seed_everything(keypoint_cfg.RANDOMSEED, keypoint_cfg)
    kp_set = config_keypoint_set(keypoint_cfg)
    media = open_media(args.input)
    for folder in (args.keypoint_output, args.bbox_output):
        if folder is not None and not folder.is_dir():
            raise FileNotFoundError(f"{folder} does not exist: train that stage first")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    keypoint_model = keypoint_engine.load_model_for_test(keypoint_cfg, args.keypoint_output,
                                                         device)
    given = read_boxes_file(args.boxes) if args.boxes else None
    if given is None:
        bbox_cfg = load_config(args.bbox_cfg, args.opts)
        box_model = bbox_engine.load_model_for_test(bbox_cfg, args.bbox_output, device)
    args.out.mkdir(parents=True, exist_ok=True)
    if media.kind != "video":
        (args.out / "pictures").mkdir(exist_ok=True)
    writer, video_path, entries = None, args.out / f"{media.path.stem}_keypoints.mp4", []
    video = media.kind == "video"
    tracker = tracker_from_arguments(args, kp_set.sigmas, media.fps) if video else None
    if args.smooth and not video:
        print("warning: --smooth filters keypoints over a video's frames; it has no effect on "
              f"{media.kind} input", file=sys.stderr)
    progress = tqdm(total=(media.frames or None) if video else len(media.files),
                    desc=f"infer {media.kind}", unit="frame" if video else "image")
    try:
        for chunk in iterate_chunks(media, CHUNK):
            names, images = [n for n, _ in chunk], [im for _, im in chunk]
            if given is None:
                found = bbox_engine.predict_boxes_xywh(
                    box_model, bbox_cfg, [Path(n) for n in names], device, images=images)
                people = [(i, box, 1.0) for i, box in enumerate(found)]
            else:
                people = [(i, box, score) for i, n in enumerate(names)
                          for box, score in given.get(n, [])]
            if people:
                coords, scores = keypoint_engine.predict_boxes_scored(
                    keypoint_model, keypoint_cfg, [Path(names[i]) for i, _, _ in people],
                    np.array([box for _, box, _ in people]), device,
                    images=[images[i] for i, _, _ in people])
                person_scores = rescore(np.array([s for _, _, s in people]), scores,
                                        keypoint_cfg.TEST.IN_VIS_THRE)
            # Video: track ids across frames (and --smooth'ed keypoints), common/tracking.py.
            numbers = [sum(j == i for j, _, _ in people[:k + 1]) for k, (i, _, _) in
                       enumerate(people)]
            if tracker is not None and people:
                numbers, coords = track_people(
                    tracker, np.array([int(names[i].split("_")[1]) for i, _, _ in people]),
                    np.array([box for _, box, _ in people], dtype=np.float64), coords, scores)
            on_picture: list[list] = [[] for _ in images]
            for k, (i, box, _) in enumerate(people):
                entries.append(_entry(media, names[i], box, coords[k], scores[k],
                                      person_scores[k], numbers[k] if video else None))
                on_picture[i].append((numbers[k], coords[k], scores[k], np.asarray(box)))
            drawn = [draw_people(image, found, args.kp_thr, kp_set.skeleton, tracked=video)
                     for image, found in zip(images, on_picture, strict=True)]
            for name, picture in zip(names, drawn, strict=True):
                if media.kind != "video":
                    cv2.imwrite(str(args.out / "pictures" / f"{Path(name).stem}.jpg"), picture)
                    continue
                if writer is None:
                    size = (picture.shape[1], picture.shape[0])
                    writer = cv2.VideoWriter(str(video_path), cv2.VideoWriter_fourcc(*"mp4v"),
                                             media.fps, size)
                writer.write(picture)
            progress.update(len(chunk))
    finally:
        progress.close()
        if writer is not None:
            writer.release()
    with atomic_path(args.out / "keypoints.json") as tmp:
        tmp.write_text(json.dumps(entries), encoding="utf-8")
    key = "frame" if media.kind == "video" else "file_name"
    table = pd.DataFrame(
        [[e[key], e["score"], *np.asarray(e["keypoints"]).reshape(-1, 3)[:, :2].ravel()]
         for e in entries],
        columns=["image", "score", *coordinate_columns(kp_set.names)])
    with atomic_path(args.out / "keypoints.csv") as tmp:
        table.to_csv(tmp, index=False)
    return {"kind": media.kind, "people": len(entries), "out": str(args.out),
            "video": str(video_path) if writer is not None else None}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--input", type=Path, required=True, help="image, folder or video")
    parser.add_argument("--keypoint-cfg", required=True)
    parser.add_argument("--keypoint-output", type=Path, required=True, help="stage two's run")
    parser.add_argument("--bbox-cfg")
    parser.add_argument("--bbox-output", type=Path, help="stage one's run folder")
    parser.add_argument("--boxes", type=Path, help="boxes instead of stage one (JSON or .pkl)")
    parser.add_argument("--out", type=Path, required=True)
    add_video_arguments(parser)
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE for both configs")
    args = parser.parse_args(argv)
    if bool(args.boxes) == bool(args.bbox_cfg and args.bbox_output):
        print("error: give either --bbox-cfg and --bbox-output (stage one) or --boxes FILE",
              file=sys.stderr)
        return 2
    try:
        summary = run(args)
    except (MediaError, DataFormatError, KeypointSetError, ImageReadError,
            FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"{summary['kind']}: {summary['people']} people; wrote {summary['out']}/keypoints.json"
          + (f" and {summary['video']}" if summary["video"] else ""))
    return 0


if __name__ == "__main__":
    from common.cli import run_tool

    run_tool(main)
