"""Train a stage: ``python tools/train.py --cfg experiments/... --test_option False [opts]``.

``TASK`` in the config picks the stage: ``keypoint`` (stage two), ``bbox`` (stage one) or
``gesture``. With ``--test_option True`` 10% of the images are held out first and the best
model is scored on them at the end, as in the reference.
"""

from __future__ import annotations

import argparse
import json
import logging

import _bootstrap  # noqa: F401
from tensorboardX import SummaryWriter

from common.checkpoint import BEST_NAME
from common.config import load_config, str2bool
from common.distributed import cleanup, init_distributed, is_main_process, world_size
from common.io import atomic_write_text
from common.run_dir import create_logger
from common.seed import seed_everything
from common.splits import make_splits
from common.stage_data import load_training_table, split_groups, stage_engine
from common.trainer import fit
from models.weights import load_state_dict_strict


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cfg", required=True, help="experiment YAML")
    parser.add_argument("--test_option", type=str2bool, default=False,
                        help="True: hold out 10%% as a test split before the validation split")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    cfg = load_config(args.cfg, args.opts)
    seed_everything(cfg.RANDOMSEED, cfg)
    device = init_distributed()
    main_process = is_main_process()
    logger, output_dir, tb_dir = create_logger(cfg, args.cfg, "train")
    if not main_process:
        logger.setLevel(logging.WARNING)
    else:
        atomic_write_text(output_dir / "config.yaml", cfg.dump())
    logger.info("config %s, output %s, TensorBoard %s, %d process(es)",
                args.cfg, output_dir, tb_dir, world_size())  # fmt: skip

    if cfg.TASK == "gesture":
        from common.gesture.training import train_gesture

        return train_gesture(cfg, output_dir, logger)
    engine = stage_engine(cfg.TASK)

    table = load_training_table(cfg, logger)
    groups = table.groups or (split_groups(table.names) if cfg.DATASET.GROUP_SPLIT else None)
    splits = make_splits(
        len(table.names), args.test_option, cfg.TEST_RATIO, cfg.RANDOMSEED, groups
    )
    logger.info("split: %s%s", {k: len(v) for k, v in splits.items()},
                " (grouped by subject)" if groups else "")
    if main_process:
        atomic_write_text(
            output_dir / "splits.json",
            json.dumps({k: [table.names[i] for i in v] for k, v in splits.items()}, indent=1),
        )

    model = engine.build_model(cfg, is_train=True, logger=logger)
    stage = engine.build_stage(
        cfg, model, table.subset(splits["train"]), table.subset(splits["val"]), device
    )
    writer = SummaryWriter(str(tb_dir)) if main_process else None
    try:
        summary = fit(cfg, stage, output_dir, logger, writer, device)
    finally:
        if writer is not None:
            writer.close()
    summary.pop("history", None)
    if table.skipped:
        summary["skipped_images"] = table.skipped
        logger.warning("DATASET.SKIP_BAD_IMAGES: trained without %d unreadable images: %s",
                       len(table.skipped), ", ".join(table.skipped))  # fmt: skip
    if not main_process:
        cleanup()
        return summary
    if "test" in splits:
        best = engine.build_model(cfg, is_train=False)
        load_state_dict_strict(best, output_dir / BEST_NAME)
        summary["holdout"] = engine.evaluate(
            cfg, best.to(device), table.subset(splits["test"]), device
        )
        logger.info("hold-out test split with %s: %s", BEST_NAME, summary["holdout"])
    atomic_write_text(output_dir / "train_summary.json", json.dumps(summary, indent=1))
    cleanup()
    return summary


if __name__ == "__main__":
    main()
