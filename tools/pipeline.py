"""The whole test-time chain in one command: boxes (stage one), keypoints on those boxes
(stage two), ``result.csv``, and the score when the truth is given (``stages.chain``).

Stage one is the config's TASK: ``bbox`` (one box an image) or ``detect`` (every person; on a
CSV layout its best box). On a COCO test set (``DATASET.FORMAT coco``) every detection above
``TEST.IMAGE_THRE`` gets keypoints, then OKS-NMS; the COCO results files are written and, where
the test file has people, bbox AP, OKS AP and the right-count share are printed
(``--compare-gt-boxes``: the OKS AP on the true boxes too; ``--truth`` is not needed).

``python tools/pipeline.py --bbox-cfg B.yaml --bbox-output DIR1 --keypoint-cfg K.yaml
--keypoint-output DIR2 [--truth test_df.csv] [--compare-gt-boxes] [KEY VALUE ...]``

Each test image is decoded once, in chunks, and shared by both stages. The chain writes the same
files as the two-step way: ``DIR1/test_annotation.pkl`` and ``DIR2/result.csv``.
"""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path

import _bootstrap  # noqa: F401

from common.cli import ToolParser, run_tool
from common.config import load_config
from common.distributed import default_device
from common.errors import MissingFileError
from common.run_dir import create_logger, lock_run_folder
from common.seed import seed_everything
from stages.chain import run_chain


def main(argv: list[str] | None = None) -> dict:
    parser = ToolParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bbox-cfg", required=True)
    parser.add_argument("--bbox-output", type=Path, required=True, help="stage one's run folder")
    parser.add_argument("--keypoint-cfg", required=True)
    parser.add_argument("--keypoint-output", type=Path, required=True,
                        help="stage two's run folder")  # fmt: skip
    parser.add_argument("--truth", type=Path, help="test_df.csv: score the result against it")
    parser.add_argument("--compare-gt-boxes", action="store_true",
                        help="also predict on ground-truth boxes (needs --truth)")  # fmt: skip
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE for both configs")
    args = parser.parse_args(argv)
    bbox_cfg = load_config(args.bbox_cfg, args.opts)
    keypoint_cfg = load_config(args.keypoint_cfg, args.opts)
    seed_everything(keypoint_cfg.RANDOMSEED, keypoint_cfg)
    for folder in (args.bbox_output, args.keypoint_output):
        if not folder.is_dir():
            raise MissingFileError(f"{folder} does not exist: train that stage first")
    logger, _, _ = create_logger(keypoint_cfg, args.keypoint_cfg, "pipeline",
                                 output_dir=args.keypoint_output)  # fmt: skip
    device = default_device()
    with contextlib.ExitStack() as locks:
        for folder in dict.fromkeys(f.resolve() for f in (args.bbox_output, args.keypoint_output)):
            locks.enter_context(lock_run_folder(folder, logger))
        summary = run_chain(bbox_cfg, args.bbox_output, keypoint_cfg, args.keypoint_output,
                            device, logger, args.truth, args.compare_gt_boxes)  # fmt: skip
    if "oks_ap" in summary:
        print(f"bbox AP (stage one, TASK {summary['box_task']}):  {summary['bbox_ap']:.4f}")
        print(f"right number of people (IoU >= 0.5): {100 * summary['right_count']:.1f}% of "
              f"images, {100 * summary['right_count_multi']:.1f}% of the "
              f"{summary['multi_person_images']} with several")  # fmt: skip
        if "oks_ap_gt_boxes" in summary:
            print(f"OKS AP on ground-truth boxes:        {summary['oks_ap_gt_boxes']:.4f}")
        print(f"ap: {summary['oks_ap']:.4f}")
    if "rmse" in summary:
        print(f"box IoU (predicted vs truth extent): {summary['box_iou']:.3f}")
        print(f"mean-pose baseline (in true boxes):  {summary['mean_pose_rmse']:.2f} px")
        if "rmse_gt_boxes" in summary:
            print(f"keypoints on ground-truth boxes:     {summary['rmse_gt_boxes']:.2f} px")
            print(f"predicted / ground-truth box RMSE:   "
                  f"{summary['rmse_ratio_predicted_to_gt_boxes']:.2f}x")  # fmt: skip
        print(f"rmse: {summary['rmse']:.4f}")
    return summary


if __name__ == "__main__":
    run_tool(main)
