"""The synthetic motion figures as a COCO person-keypoints set, with several people in some
images: what a COCO user's data looks like, for training and scoring the COCO path.

Layout under the output folder: ``annotations/person_keypoints_{train,test}.json``,
``images/train_imgs``, ``images/test_imgs`` (the default DATASET image folders), and
``annotations/person_detections_test.json``: a stand-in detector's results on the test images
(each true box jittered, scored, plus one low-scoring false box per image) for
``TEST.COCO_BBOX_FILE``.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from common.boxes import keypoint_extent_boxes
from common.coco import coco_category, keypoint_annotation, write_json
from common.keypoints import load_keypoint_set
from common.synthetic.motion_drawing import (
    FigureStyle,
    add_sensor_noise,
    render_background,
    render_figure,
)
from common.synthetic.motion_sequences import (
    CAMERAS,
    PoseModel,
    load_motion_stats,
    place_sequence,
    sample_body,
    sample_motion,
)

SPLITS = {"train": (0, Path("images/train_imgs")), "test": (1, Path("images/test_imgs"))}
TRAIN_JSON = "annotations/person_keypoints_train.json"
TEST_JSON = "annotations/person_keypoints_test.json"
DETECTIONS_JSON = "annotations/person_detections_test.json"


def _people(rng: np.random.Generator, count: int, size: tuple[int, int], stats: dict,
            model: PoseModel) -> list[tuple[np.ndarray, float]]:
    """(keypoints (24, 2), body unit) of ``count`` people side by side, each in its own slot
    of the image's width (smaller when there are several, so all fit)."""
    width = size[0]
    people = []
    for slot in range(count):
        motion = sample_motion(rng, model, 1, sample_body(rng))
        keypoints, units = place_sequence(rng, motion, stats, str(rng.choice(CAMERAS)), size)
        points, unit = keypoints[0], float(units[0])
        if count > 1:
            shrink = 1.0 / np.sqrt(count)
            centre = (points.min(axis=0) + points.max(axis=0)) / 2.0
            target_x = (slot + 0.5) * width / count + rng.uniform(-0.05, 0.05) * width / count
            points = (points - centre) * shrink + [target_x, centre[1]]
            unit *= shrink
        people.append((points, unit))
    return people


def _detections(rng: np.random.Generator, image_id: int, boxes: np.ndarray,
                size: tuple[int, int]) -> list[dict]:
    """A stand-in detector: true boxes jittered and scored high, one false box scored low."""
    results = []
    for box in boxes:
        jitter = rng.normal(0.0, 0.04, 4) * [box[2], box[3], box[2], box[3]]
        x, y, w, h = box + jitter
        results.append({"image_id": image_id, "category_id": 1, "score": rng.uniform(0.6, 1.0),
                        "bbox": [float(x), float(y), float(max(w, 2.0)), float(max(h, 2.0))]})
    w, h = size[0] * rng.uniform(0.05, 0.2), size[1] * rng.uniform(0.1, 0.3)
    results.append({"image_id": image_id, "category_id": 1, "score": rng.uniform(0.0, 0.2),
                    "bbox": [float(rng.uniform(0, size[0] - w)),
                             float(rng.uniform(0, size[1] - h)), float(w), float(h)]})
    return results


def generate_motion_coco(out_dir: str | Path, n_train: int, n_test: int, width: int = 1920,
                         height: int = 1080, seed: int = 0, overwrite: bool = False,
                         jpeg_quality: int = 90, max_people: int = 3,
                         several_fraction: float = 0.4) -> dict[str, int]:
    """Write the COCO set; ``several_fraction`` of the images hold 2..``max_people`` people.
    The same seed gives the same bytes."""
    if n_train < 0 or n_test < 0 or max_people < 1:
        raise ValueError(f"need image counts >= 0 and --max-people >= 1, got {n_train}, "
                         f"{n_test}, {max_people}")
    out_dir = Path(out_dir)
    if (out_dir / TRAIN_JSON).exists() and not overwrite:
        raise FileExistsError(f"{out_dir / TRAIN_JSON} exists; pass --overwrite to replace it")
    stats = load_motion_stats()
    model = PoseModel.from_stats(stats)
    category = coco_category(load_keypoint_set("motion24"))
    size = (int(width), int(height))
    counts = {}
    for split, count in (("train", n_train), ("test", n_test)):
        split_number, folder = SPLITS[split]
        (out_dir / folder).mkdir(parents=True, exist_ok=True)
        images, annotations, detections = [], [], []
        for index in range(count):
            rng = np.random.default_rng([seed, split_number, index])
            several = max_people > 1 and rng.random() < several_fraction
            people = _people(rng, int(rng.integers(2, max_people + 1)) if several else 1, size,
                             stats, model)
            feet = max(float(points[:, 1].max()) for points, _ in people)
            image = render_background(rng, size, feet)
            for points, unit in people:
                left_in_front = bool(rng.random() < 0.5)
                render_figure(image, points, unit, FigureStyle.sample(rng), left_in_front)
            add_sensor_noise(rng, image, int(rng.integers(3, 9)))
            name = f"{split}_{index:05d}.jpg"
            ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
            if not ok:
                raise RuntimeError(f"JPEG encoding failed for {name}")
            (out_dir / folder / name).write_bytes(encoded.tobytes())
            images.append({"id": index + 1, "file_name": name, "width": size[0],
                           "height": size[1]})
            boxes = keypoint_extent_boxes(np.array([points for points, _ in people]))
            for (points, _), box in zip(people, boxes, strict=True):
                annotations.append(keypoint_annotation(len(annotations) + 1, index + 1, points,
                                                       box))
            detections.extend(_detections(rng, index + 1, boxes, size))
        data = {"images": images, "annotations": annotations, "categories": [category]}
        write_json(out_dir / (TRAIN_JSON if split == "train" else TEST_JSON), data)
        if split == "test":
            write_json(out_dir / DETECTIONS_JSON, detections)
        counts[split] = count
        counts[f"{split}_people"] = len(annotations)
    return counts
