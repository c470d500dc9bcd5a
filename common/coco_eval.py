"""Keypoint scores the field reports: OKS AP/AR through pycocotools with the keypoint set's own
sigmas, and PCK and end-point error per keypoint for both the COCO and the CSV format."""

from __future__ import annotations

import contextlib
import copy
import io
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

AP_NAMES = ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")
PCK_THRESHOLDS = (0.05, 0.1)


def oks(pred_xy: np.ndarray, truth_xy: np.ndarray, visibility: np.ndarray, area: float,
        sigmas: Sequence[float]) -> float:
    """Object keypoint similarity of one prediction (J, 2) to one person, as COCOeval computes
    it for a person with labelled keypoints (only ``visibility > 0`` keypoints count)."""
    variances = (2.0 * np.asarray(sigmas, dtype=np.float64)) ** 2
    squared = ((np.asarray(pred_xy) - np.asarray(truth_xy)) ** 2).sum(axis=1)
    labelled = np.asarray(visibility) > 0
    if not labelled.any():
        return 0.0
    error = squared / variances / (area + np.spacing(1)) / 2.0
    return float(np.exp(-error[labelled]).mean())


def _with_areas(truth: Mapping) -> dict:
    """A copy of a COCO set in which every annotation has an ``area`` (box area if missing)."""
    data = copy.deepcopy(dict(truth))
    for annotation in data["annotations"]:
        if "area" not in annotation:
            annotation["area"] = float(annotation["bbox"][2] * annotation["bbox"][3])
        annotation.setdefault("iscrowd", 0)
    return data


def oks_ap(truth: Mapping, results: list[dict], sigmas: Sequence[float]) -> dict[str, float]:
    """COCOeval's keypoint AP/AR (``AP_NAMES``) of ``results`` on the set ``truth``, with
    ``params.kpt_oks_sigmas`` set to ``sigmas`` (never COCO's 17 hard-wired ones)."""
    sigmas = np.asarray(sigmas, dtype=np.float64)
    joints = len(truth["categories"][0]["keypoints"])
    if len(sigmas) != joints:
        raise ValueError(f"{len(sigmas)} sigmas for a set of {joints} keypoints")
    if not results:
        return dict.fromkeys(AP_NAMES, 0.0)
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
        coco_truth = COCO()
        coco_truth.dataset = _with_areas(truth)
        coco_truth.createIndex()
        coco_pred = coco_truth.loadRes(copy.deepcopy(results))
        evaluation = COCOeval(coco_truth, coco_pred, "keypoints")
        evaluation.params.kpt_oks_sigmas = sigmas
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return {name: float(value) for name, value in zip(AP_NAMES, evaluation.stats, strict=True)}


def people_oks_ap(pred: np.ndarray, truth: np.ndarray, visibility: np.ndarray,
                  boxes: np.ndarray, areas: np.ndarray, image_names: Sequence[str],
                  sigmas: Sequence[float]) -> float:
    """COCOeval's OKS AP of one prediction (J, 2) per known person (validation on true boxes):
    ``truth`` (N, J, 2), COCO ``visibility`` (N, J), ``boxes`` (N, 4) [x, y, w, h], ``areas``
    (N,) the OKS scale, people of one image sharing its name. Every prediction scores 1."""
    ids = {name: index + 1 for index, name in enumerate(dict.fromkeys(image_names))}
    annotations, results = [], []
    for index, name in enumerate(image_names):
        triples = np.concatenate([truth[index], visibility[index][:, None]], axis=1)
        annotations.append({"id": index + 1, "image_id": ids[name], "category_id": 1,
                            "keypoints": triples.ravel().tolist(), "iscrowd": 0,
                            "num_keypoints": int((visibility[index] > 0).sum()),
                            "bbox": [float(v) for v in boxes[index]],
                            "area": float(areas[index])})  # fmt: skip
        flat = np.concatenate([pred[index], np.ones((len(pred[index]), 1))], axis=1)
        results.append({"image_id": ids[name], "category_id": 1, "score": 1.0,
                        "keypoints": flat.ravel().tolist()})  # fmt: skip
    truth_set = {"images": [{"id": i} for i in ids.values()], "annotations": annotations,
                 "categories": [{"id": 1, "keypoints": [str(j) for j in range(len(sigmas))]}]}
    return oks_ap(truth_set, results, sigmas)["AP"]


def pck_and_epe(pred: np.ndarray, truth: np.ndarray, box_sizes: np.ndarray,
                visible: np.ndarray | None = None) -> dict:
    """PCK at ``PCK_THRESHOLDS`` of the box size (max of its width and height) and the mean
    end-point error in pixels, overall and per keypoint, over labelled keypoints only.

    ``pred`` and ``truth`` (N, J, 2), ``box_sizes`` (N,), ``visible`` (N, J) bool (all True
    when None). A keypoint of a person with no prediction is passed as NaN: it counts as a
    miss for PCK and is left out of the end-point error.
    """
    pred = np.asarray(pred, dtype=np.float64)
    truth = np.asarray(truth, dtype=np.float64)
    if pred.shape != truth.shape or pred.ndim != 3:
        raise ValueError(f"expected two (N, J, 2) arrays, got {pred.shape} and {truth.shape}")
    visible = np.ones(truth.shape[:2], bool) if visible is None else np.asarray(visible, bool)
    distance = np.linalg.norm(pred - truth, axis=2)
    found = np.isfinite(distance)
    scale = np.asarray(box_sizes, dtype=np.float64)[:, None]
    counts = np.maximum(visible.sum(axis=0), 1)
    scores: dict = {}
    for threshold in PCK_THRESHOLDS:
        hit = found & visible & (np.where(found, distance, np.inf) <= threshold * scale)
        scores[f"pck@{threshold}"] = float(hit.sum() / max(visible.sum(), 1))
        scores[f"per_keypoint_pck@{threshold}"] = (hit.sum(axis=0) / counts).tolist()
    used = found & visible
    summed = np.where(used, distance, 0.0)
    scores["epe"] = float(summed.sum() / max(used.sum(), 1))
    scores["per_keypoint_epe"] = (summed.sum(axis=0) / np.maximum(used.sum(axis=0), 1)).tolist()
    return scores


def match_people(truth: Mapping, results: list[dict],
                 sigmas: Sequence[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Pair each ground-truth person (not crowd, with labelled keypoints) with a prediction of
    its image, greedily by the highest OKS, each prediction used once. Returns the predicted
    keypoints (N, J, 2; NaN where unmatched), the truth (N, J, 2), its labelled mask (N, J)
    and the box sizes (N,)."""
    by_image: dict[int, list[np.ndarray]] = {}
    for result in results:
        flat = np.asarray(result["keypoints"], dtype=np.float64).reshape(-1, 3)
        by_image.setdefault(result["image_id"], []).append(flat[:, :2])
    people = [a for a in truth["annotations"]
              if not a.get("iscrowd", 0) and any(v > 0 for v in a["keypoints"][2::3])]
    joints = len(sigmas)
    pred = np.full((len(people), joints, 2), np.nan)
    true = np.zeros((len(people), joints, 2))
    labelled = np.zeros((len(people), joints), bool)
    sizes = np.zeros(len(people))
    pairs = []
    for index, person in enumerate(people):
        triples = np.asarray(person["keypoints"], dtype=np.float64).reshape(-1, 3)
        true[index], labelled[index] = triples[:, :2], triples[:, 2] > 0
        box = person["bbox"]
        sizes[index] = max(box[2], box[3])
        area = person.get("area", box[2] * box[3])
        for choice, keypoints in enumerate(by_image.get(person["image_id"], [])):
            similarity = oks(keypoints, true[index], triples[:, 2], area, sigmas)
            pairs.append((-similarity, index, person["image_id"], choice))
    taken_people, taken_preds = set(), set()
    for _, index, image_id, choice in sorted(pairs):
        if index in taken_people or (image_id, choice) in taken_preds:
            continue
        taken_people.add(index)
        taken_preds.add((image_id, choice))
        pred[index] = by_image[image_id][choice]
    return pred, true, labelled, sizes


def score_coco_results(truth: Mapping, results: list[dict], sigmas: Sequence[float]) -> dict:
    """OKS AP/AR, and PCK and end-point error on the people matched by OKS."""
    scores = oks_ap(truth, results, sigmas)
    pred, true, labelled, sizes = match_people(truth, results, sigmas)
    scores.update(pck_and_epe(pred, true, sizes, labelled))
    scores["people"] = len(sizes)
    scores["matched"] = int(np.isfinite(pred[:, 0, 0]).sum())
    return scores


def score_coco_files(pred_path: str | Path, truth_path: str | Path,
                     keypoints: str | Path | None = None) -> dict:
    """Score a results file against a person-keypoints file. The sigmas come from
    ``keypoints`` (a keypoint-set spec whose names must be the truth's), else from the built-in
    set with the truth category's keypoint names; a truth that is neither is refused rather than
    scored with guessed sigmas. ``sigmas_from`` in the answer says which."""
    from common.coco import coco_keypoint_set, read_coco_json, read_keypoint_results, validate_coco
    from common.coco_validate import CocoFormatError
    from common.keypoints import builtin_set_for_names, load_keypoint_set

    truth = read_coco_json(truth_path)
    validate_coco(truth, str(truth_path))
    if len(truth["categories"]) != 1:
        raise CocoFormatError(f"{truth_path}: field 'categories': expected one keypoint "
                              f"category, found {len(truth['categories'])}; score one category "
                              "per truth file")  # fmt: skip
    names = truth["categories"][0]["keypoints"]
    if keypoints:
        kp_set = coco_keypoint_set(truth, str(truth_path), load_keypoint_set(keypoints))
        sigmas_from = f"--keypoints {keypoints}"
    else:
        kp_set = builtin_set_for_names(names)
        if kp_set is None:
            raise CocoFormatError(
                f"{truth_path}: category {truth['categories'][0].get('name')!r} has keypoints "
                f"{names}, which match no built-in keypoint set, so their OKS sigmas are "
                "unknown: give --keypoints SET.yaml (names and sigmas in this order)")
        sigmas_from = f"the built-in set {kp_set.name} (same keypoint names as the truth)"
    if not any(not a.get("iscrowd", 0) and any(v > 0 for v in a["keypoints"][2::3])
               for a in truth["annotations"]):
        raise CocoFormatError(f"{truth_path}: no person with labelled keypoints (v > 0) to "
                              "score against; give a truth file with annotations")  # fmt: skip
    results = read_keypoint_results(pred_path, truth, kp_set.num_joints)
    scores = score_coco_results(truth, results, kp_set.sigmas)
    scores["names"] = list(kp_set.names)
    scores["keypoint_set"] = kp_set.name
    scores["sigmas_from"] = sigmas_from
    return scores
