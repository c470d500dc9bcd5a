"""Hyper-parameter search on Ray Tune: ``python tools/tune.py --cfg CFG --space SPACE.yaml
--samples N --out DIR [--address ADDR] [KEY VALUE ...]``.

SPACE.yaml maps config keys to ``{choice: [...]}``, ``{uniform: [low, high]}`` or
``{loguniform: [low, high]}``. Each trial is a ``tools/train.py`` run with its values (and the
``KEY VALUE`` overrides), reporting the validation metric every epoch to the ASHA scheduler.
Writes ``DIR/best.yaml`` (train it with ``tools/train.py --cfg DIR/best.yaml``) and
``DIR/trials.csv``. Ray starts on this machine unless ``--address`` names a running cluster.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import _bootstrap  # noqa: F401

from common.cli import ToolParser, run_tool
from stages.tuning import METRIC, tune_experiment


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = ToolParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cfg", required=True, help="base experiment YAML")
    parser.add_argument("--space", required=True, help="search space YAML")
    parser.add_argument("--samples", type=int, default=8, help="number of trials")
    parser.add_argument("--out", type=Path, required=True, help="folder for trials and best.yaml")
    parser.add_argument("--address", help="an existing Ray cluster (default: start one here)")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE for every trial")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    summary = tune_experiment(args.cfg, args.space, args.samples, args.out, args.address,
                              args.opts)  # fmt: skip
    print(f"{summary['trials']} trials; best {summary['best']}; wrote {summary['best_yaml']}")
    print(f"best {METRIC}: {summary[f'best_{METRIC}']:.4f}")
    return summary


if __name__ == "__main__":
    run_tool(main)
