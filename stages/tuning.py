"""Hyper-parameter search on Ray Tune: each trial is ``tools/train.py`` with its overrides.

A search space is a YAML file mapping config keys to ``{choice: [...]}``, ``{uniform: [low,
high]}`` or ``{loguniform: [low, high]}``. Each trial trains in ``<out>/trials/<trial id>``
(with ``AUTO_RESUME``, so a restored trial continues from its own checkpoint), reports its
validation metric after every epoch, and the ASHA scheduler stops the weak ones early. The best
trial's overrides go into ``<out>/best.yaml`` (the base experiment's keys plus the winning
values, an experiment file ``tools/train.py`` accepts) and ``<out>/trials.csv`` has one row per
trial.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from yacs.config import CfgNode

from common.config import get_defaults, load_config
from common.errors import ConfigError, MissingFileError
from common.io import atomic_write_text
from stages.training import train_from_config

ROOT = Path(__file__).resolve().parents[1]
SPACE_KINDS = ("choice", "uniform", "loguniform")
METRIC = "metric"  # the trainer's validation metric, lower is better


def _lookup(cfg: CfgNode, key: str) -> Any:
    node: Any = cfg
    for part in key.split("."):
        if not isinstance(node, CfgNode) or part not in node:
            raise ConfigError(f"{key} is not a config key (see common/config.py)")
        node = node[part]
    return node


def read_space(path: str | Path) -> dict[str, tuple[str, list]]:
    """``{key: (kind, values)}`` from a space YAML, every key and range checked."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"search space not found: {path}")
    raw = yaml.safe_load(path.read_text()) or {}
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(f"{path}: expected a mapping of config keys to {{choice: [...]}} etc.")
    defaults, space = get_defaults(), {}
    for key, spec in raw.items():
        _lookup(defaults, str(key))
        if not isinstance(spec, dict) or len(spec) != 1 or next(iter(spec)) not in SPACE_KINDS:
            raise ConfigError(f"{path}: {key} must be one of {{choice: [...]}}, "
                             f"{{uniform: [low, high]}}, {{loguniform: [low, high]}}")  # fmt: skip
        kind, values = next(iter(spec.items()))
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{path}: {key}: {kind} needs a non-empty list")
        numeric = len(values) == 2 and all(isinstance(v, (int, float)) for v in values)
        ordered = numeric and values[0] < values[1] and (kind == "uniform" or values[0] > 0)
        if kind != "choice" and not ordered:
            raise ConfigError(f"{path}: {key}: {kind} needs [low, high] with low < high"
                             + (" and low > 0" if kind == "loguniform" else ""))  # fmt: skip
        space[str(key)] = (kind, values)
    return space


def trial_opts(overrides: dict[str, Any]) -> list[str]:
    """``KEY VALUE`` strings for ``tools/train.py`` (yacs reads them back as literals)."""
    return [item for key, value in overrides.items() for item in (key, repr(value)
            if isinstance(value, str) else str(value))]  # fmt: skip


def _plain(value: Any) -> Any:
    """Config values as YAML-safe Python (tuples to lists)."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def best_yaml_text(cfg_file: str | Path, opts: Sequence[str], winners: dict[str, Any]) -> str:
    """The base experiment YAML plus the command line's and the winning overrides."""
    document = yaml.safe_load(Path(cfg_file).read_text()) or {}
    final = load_config(cfg_file, [*opts, *trial_opts(winners)])
    keys = [str(k) for k in list(opts)[::2]] + list(winners)
    for key in keys:
        node = document
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = _plain(_lookup(final, key))
    header = "# tools/tune.py: the base experiment with the best trial's values\n"
    return header + yaml.safe_dump(document, sort_keys=False, default_flow_style=None)


def run_trial(config: dict[str, Any], cfg_file: str, opts: list[str], out_dir: str) -> None:
    """One Ray Tune trial: train with the trial's overrides, reporting every epoch."""
    import torch
    from ray import tune

    torch.set_num_threads(1)  # trials share the machine's cores
    trial_dir = Path(out_dir) / "trials" / tune.get_context().get_trial_id()
    trial = [*opts, *trial_opts(config), "OUTPUT_DIR", str(trial_dir),
             "LOG_DIR", str(trial_dir / "tb"), "AUTO_RESUME", "True"]

    def report(epoch: int, metrics: dict[str, float]) -> None:
        tune.report({METRIC: float(metrics[METRIC]), "epoch": epoch,
                     "train_loss": float(metrics["train_loss"])})  # fmt: skip

    train_from_config(cfg_file, trial, on_epoch_end=report)


def _tune_space(space: dict[str, tuple[str, list]]) -> dict[str, Any]:
    from ray import tune

    makers = {"choice": lambda v: tune.choice(v), "uniform": lambda v: tune.uniform(*v),
              "loguniform": lambda v: tune.loguniform(*v)}  # fmt: skip
    return {key: makers[kind](values) for key, (kind, values) in space.items()}


def trials_table(results, keys: Sequence[str]) -> str:
    """CSV text, one row per trial: id, status, the sampled values, epochs, last/best metric."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["trial_id", "status", *keys, "epochs", f"last_{METRIC}", f"best_{METRIC}"])
    for result in results:
        history = result.metrics_dataframe
        reported = history is not None and METRIC in history
        writer.writerow([
            result.metrics.get("trial_id", result.path and Path(result.path).name),
            "error" if result.error else "done",
            *[result.config.get(key) for key in keys],
            len(history) if reported else 0,
            result.metrics.get(METRIC, "") if reported else "",
            float(history[METRIC].min()) if reported else "",
        ])  # fmt: skip
    return buffer.getvalue()


def tune_experiment(
    cfg_file: str | Path,
    space_file: str | Path,
    samples: int,
    out_dir: str | Path,
    address: str | None = None,
    opts: Sequence[str] = (),
) -> dict[str, Any]:
    """Run the search; write ``best.yaml`` and ``trials.csv`` in ``out_dir``; return a summary.

    Without ``address`` Ray starts on this machine; with it, trials run on that cluster,
    whose nodes must see this repository at the same path.
    """
    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    if samples < 1:
        raise ConfigError(f"--samples must be at least 1, got {samples}")
    cfg_file, out_dir = Path(cfg_file).resolve(), Path(out_dir).resolve()
    base = load_config(cfg_file, list(opts))
    if base.TASK not in ("keypoint", "bbox"):
        raise ConfigError(f"tools/tune.py tunes stage one or two, got TASK {base.TASK!r}")
    space = read_space(space_file)
    out_dir.mkdir(parents=True, exist_ok=True)
    ray.init(address=address, ignore_reinit_error=True, include_dashboard=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(ROOT)}}, log_to_driver=False)
    try:
        trainable = tune.with_resources(tune.with_parameters(
            run_trial, cfg_file=str(cfg_file), opts=list(opts), out_dir=str(out_dir)), {"cpu": 1})
        scheduler = ASHAScheduler(max_t=max(base.TRAIN.END_EPOCH - base.TRAIN.BEGIN_EPOCH, 1),
                                  grace_period=1, reduction_factor=2)  # fmt: skip
        tuner = tune.Tuner(
            trainable,
            param_space=_tune_space(space),
            tune_config=tune.TuneConfig(metric=METRIC, mode="min", num_samples=samples,
                                        scheduler=scheduler),  # fmt: skip
            run_config=tune.RunConfig(name="tune", storage_path=str(out_dir / "ray"), verbose=0),
        )
        results = tuner.fit()
        atomic_write_text(out_dir / "trials.csv", trials_table(results, list(space)))
        reported = [r for r in results if r.metrics_dataframe is not None
                    and METRIC in r.metrics_dataframe]  # fmt: skip
        if not reported:
            raise RuntimeError(f"no trial reported a {METRIC}; see the trial logs under "
                               f"{out_dir / 'trials'} and {out_dir / 'ray'}")  # fmt: skip
        best = results.get_best_result(metric=METRIC, mode="min", scope="all")
    finally:
        ray.shutdown()
    winners = {key: best.config[key] for key in space}
    atomic_write_text(out_dir / "best.yaml", best_yaml_text(cfg_file, list(opts), winners))
    best_metric = float(best.metrics_dataframe[METRIC].min())
    return {"best": winners, f"best_{METRIC}": best_metric, "trials": len(results),
            "best_yaml": str(out_dir / "best.yaml")}  # fmt: skip
