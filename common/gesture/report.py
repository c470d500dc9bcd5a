"""The numbers of ``tools/gesture_report.py``: how far the regressed hand keypoints are from
the test JSONs, each refiner pair's statistic beside its thresholds, and the printed summary."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from common.gesture.data import POINTS_PER_HAND, read_clips
from common.gesture.files import THRESHOLD_FILES
from common.gesture.hand_keypoints import read_stage_keypoints
from common.gesture.refiner_statistics import clip_statistic
from common.gesture.refiner_thresholds import load_thresholds
from common.gesture.submission import read_test_answers
from common.io import image_size


def keypoint_errors(data_root: Path, result_csv: Path) -> dict:
    """Regressed vs JSON keypoints of the one-hand test frames: mean joint distance (pixels),
    its median over frames, and the share of frames whose mean distance exceeds 10% of the
    frame width (a missed hand). Empty where the test clips have no JSON."""
    stage = read_stage_keypoints(result_csv)
    per_frame = []
    width = None
    for clip in read_clips(data_root / "test", "test"):
        if clip.keypoints is None:
            return {}
        width = width or image_size(clip.frame_paths[0])[0]
        for predicted, truth in zip(stage[clip.folder], clip.keypoints, strict=True):
            if len(truth) == POINTS_PER_HAND:
                per_frame.append(float(np.linalg.norm(predicted - truth, axis=1).mean()))
    per_frame_array = np.array(per_frame)
    return {
        "frames": len(per_frame),
        "mean_px": float(per_frame_array.mean()),
        "median_px": float(np.median(per_frame_array)),
        "missed_share": float(np.mean(per_frame_array > 0.1 * width)),
        "image_width": width,
    }


def pair_statistics(data_root: Path, result_csv: Path, gesture_dir: Path) -> list[dict]:
    """For every test clip of a refiner pair: its statistic from the regressed keypoints beside
    the threshold fitted on regressed keypoints, and (where the test JSONs exist) from the JSON
    keypoints beside the one fitted on those."""
    pairs, thresholds, reference_width = load_thresholds(gesture_dir / THRESHOLD_FILES["stages"])
    json_thresholds = load_thresholds(gesture_dir / THRESHOLD_FILES["json"])[1]
    answers = read_test_answers(data_root / "test_answer.csv")
    stage = read_stage_keypoints(result_csv)
    rows = []
    for clip in read_clips(data_root / "test", "test"):
        pose_id = answers[clip.folder]
        pair = next((p for p in pairs if pose_id in (p.static_id, p.moving_id)), None)
        if pair is None or pair.group not in thresholds:
            continue
        median_frames = thresholds[pair.group].median_frames
        width = image_size(clip.frame_paths[0])[0]
        row = {
            "folder": clip.folder,
            "pose_id": pose_id,
            "moving": pose_id == pair.moving_id,
            "group": pair.group,
            "regressed": clip_statistic(
                pair.statistic, list(stage[clip.folder]), width, reference_width, median_frames
            ),
            "threshold": thresholds[pair.group].threshold,
        }
        if clip.keypoints is not None:
            row["json"] = clip_statistic(
                pair.statistic, clip.keypoints, width, reference_width, median_frames
            )
            row["json_threshold"] = json_thresholds[pair.group].threshold
        rows.append(row)
    return rows


def scores_line(name: str, scores: dict) -> str:
    """One line of clip scores before and after the refiner, then one line per pair."""
    by_mode = scores["logloss_refined_by_mode"]
    line = (
        f"{name:<34} clips {int(scores['clips']):>3}  logloss {scores['logloss']:.3f} -> "
        f"{scores['logloss_refined']:.3f} (onehot {by_mode['onehot']:.3f}, pair_mass "
        f"{by_mode['pair_mass']:.3f}, calibrated {by_mode['calibrated']:.3f})  accuracy "
        f"{scores['accuracy']:.3f} -> "
        f"{scores['accuracy_refined']:.3f}"
    )
    for group, pair in sorted(scores.get("pairs", {}).items()):
        confidence = pair.get("confidence")
        line += (
            f"\n{'':<36}pair {group:<9} clips {int(pair['clips']):>2}  accuracy "
            f"{pair['accuracy']:.3f} -> {pair['accuracy_refined']:.3f}  logloss "
            f"{pair['logloss']:.3f} -> {pair['logloss_refined']:.3f}"
            + (f"  confidence {confidence:.3f}" if confidence is not None else "")
        )
    return line


def print_summary(report: dict) -> None:
    """The numbers of a report, as a few readable lines."""
    print("\n=== gesture report")
    print(f"data: {json.dumps(report['data'])}")
    print(f"refiner: {json.dumps(report['refiner'])}")
    keypoints = report.get("keypoint_error")
    if keypoints:
        print(
            f"regressed keypoints vs test JSON ({keypoints['frames']} one-hand frames, "
            f"{keypoints['image_width']} px wide): mean {keypoints['mean_px']:.2f} px, median "
            f"{keypoints['median_px']:.2f} px, missed hands {100 * keypoints['missed_share']:.1f}%"
        )
    print(
        f"thresholds (reference-width px): JSON keypoints {json.dumps(report['thresholds'])}, "
        f"regressed keypoints {json.dumps(report['thresholds_stages'])}"
    )
    print(
        f"rule confidences (leave-one-out): JSON keypoints {json.dumps(report['confidences'])}, "
        f"regressed keypoints {json.dumps(report['confidences_stages'])}"
    )
    if report.get("confidences_in_sample_stages"):
        print(
            "rule confidences (in-sample): JSON keypoints "
            f"{json.dumps(report['confidences_in_sample'])}, regressed keypoints "
            f"{json.dumps(report['confidences_in_sample_stages'])}"
        )
    if report.get("chance_p_stages"):
        print(
            f"leave-one-out record's chance p (applied in calibrated mode when <= "
            f"{report['refiner']['max_chance_p']}): JSON keypoints "
            f"{json.dumps(report['chance_p'])}, regressed keypoints "
            f"{json.dumps(report['chance_p_stages'])}"
        )
    print(scores_line("validation, refiner on JSON kps", report["validation"]))
    print(scores_line("validation, refiner on regressed", report["validation"]["stage_keypoints"]))
    if "test_json" in report:
        print(scores_line("test, JSON keypoints", report["test_json"]))
    print(scores_line("test, regressed keypoints", report["test_regressed"]))
    for row in report["pair_statistics"]:
        json_value = (
            f"  json {row['json']:6.1f} (threshold {row['json_threshold']:5.1f})"
            if "json" in row
            else ""
        )
        print(
            f"  test clip {row['folder']:>5} pose {row['pose_id']:>3} "
            f"({'moving' if row['moving'] else 'static'}) {row['group']:<9} regressed "
            f"{row['regressed']:6.1f} (threshold {row['threshold']:5.1f}){json_value}"
        )
    print(f"tools/score.py on the regressed submission: {report['score_tool']}")
    print(f"seconds: {json.dumps(report['seconds'])}")
