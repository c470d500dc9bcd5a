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
import difflib
import io
import logging
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from yacs.config import CfgNode

from common.config import get_defaults, load_config
from common.config_check import full_keys
from common.errors import ConfigError, MissingFileError, UserError
from common.io import atomic_write_text
from common.run_dir import lock_run_folder
from stages.training import train_from_config

ROOT = Path(__file__).resolve().parents[1]
SPACE_KINDS = ("choice", "uniform", "loguniform")
METRIC = "metric"  # the trainer's validation metric, lower is better
# Config keys naming files or folders: made absolute (from the directory tune.py runs in)
# before they reach a Ray worker, which runs in a folder of its own.
PATH_KEYS = ("DATASET.ROOT", "MODEL.PRETRAINED", "TEST.MODEL_FILE", "TEST.ONNX_FILE",
             "DATASET.KEYPOINTS")  # fmt: skip


class _NumberLoader(yaml.SafeLoader):
    """YAML 1.1 reads ``1e-4`` (no dot) as a string; here it is a float, as in YAML 1.2."""


_NumberLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


class TuneError(UserError, RuntimeError):
    """The search ran but gave nothing to use (every trial failed)."""


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
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_NumberLoader) or {}
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise ConfigError(f"YAML syntax error in {path}{line}: {problem}; fix the file") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not a text (YAML) file") from None
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(f"{path}: expected a mapping of config keys to {{choice: [...]}} etc.")
    defaults, space = get_defaults(), {}
    keys = list(full_keys(defaults))
    for key, spec in raw.items():
        if str(key) not in keys:
            close = difflib.get_close_matches(str(key), keys, n=1, cutoff=0.6)
            hint = f"did you mean {close[0]}?" if close else "see common/config.py for the keys"
            raise ConfigError(f"{path}: {key} is not a config key: {hint}")
        if isinstance(_lookup(defaults, str(key)), CfgNode):
            raise ConfigError(f"{path}: {key} is a group of config keys; name one key in it, "
                              f"e.g. {next(k for k in keys if k.startswith(f'{key}.'))}")
        if not isinstance(spec, dict) or len(spec) != 1 or next(iter(spec)) not in SPACE_KINDS:
            raise ConfigError(f"{path}: {key} must be one of {{choice: [...]}}, "
                             f"{{uniform: [low, high]}}, {{loguniform: [low, high]}}")  # fmt: skip
        kind, values = next(iter(spec.items()))
        if not isinstance(values, list) or not values:
            raise ConfigError(f"{path}: {key}: {kind} needs a non-empty list")
        numeric = len(values) == 2 and all(
            isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
            for v in values)  # fmt: skip
        ordered = numeric and values[0] < values[1] and (kind == "uniform" or values[0] > 0)
        if kind != "choice" and not ordered:
            raise ConfigError(f"{path}: {key}: {kind} needs [low, high], two finite numbers "
                              f"with low < high" + (" and low > 0" if kind == "loguniform"
                              else "") + f", got {values!r}")  # fmt: skip
        whole = isinstance(_lookup(defaults, str(key)), int)
        if kind != "choice" and whole and not all(float(v).is_integer() for v in values):
            raise ConfigError(f"{path}: {key} is a whole number: {kind} needs whole [low, high], "
                              f"got {values!r}")  # fmt: skip
        if kind != "choice":  # the type the key's samples must have
            values = [int(v) for v in values] if whole else [float(v) for v in values]
        space[str(key)] = (kind, values)
    return space


def check_space(space: dict[str, tuple[str, list]], path: str | Path, cfg_file: str | Path,
                opts: Sequence[str]) -> None:
    """Every value a trial can get (each choice, each end of a range) loaded into the base
    config as a trial would, so that a wrongly typed or unusable value stops the search before
    Ray starts instead of failing every trial."""
    for key, (kind, values) in space.items():
        for value in values:
            if kind != "choice" and isinstance(_lookup(get_defaults(), key), float):
                value = float(value)
            try:
                load_config(cfg_file, [*opts, *trial_opts({key: value})])
            except ConfigError as error:
                raise ConfigError(f"{path}: {key}: the value {value!r} does not fit the config "
                                  f"({error})") from None  # fmt: skip


def absolute_path_opts(cfg: CfgNode) -> list[str]:
    """``KEY VALUE`` overrides making the config's relative paths absolute (from the current
    directory); a ``DATASET.ROOT`` that does not exist is refused here, before Ray starts."""
    root = Path(cfg.DATASET.ROOT).expanduser()
    if not root.is_dir():
        raise MissingFileError(f"DATASET.ROOT {cfg.DATASET.ROOT} does not exist (from "
                               f"{Path.cwd()}); point DATASET.ROOT at the data")  # fmt: skip
    found = []
    for key in PATH_KEYS:
        value = _lookup(cfg, key)
        if value and not Path(value).is_absolute() and Path(value).expanduser().exists():
            found += [key, repr(str(Path(value).expanduser().resolve()))]
    return found


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

    def make(kind: str, values: list) -> Any:
        if kind == "choice":
            return tune.choice(values)
        if all(isinstance(v, int) for v in values):  # a whole-number key: whole samples
            low, high = values
            return tune.randint(low, high + 1) if kind == "uniform" else tune.lograndint(
                low, high + 1)  # fmt: skip
        return tune.uniform(*values) if kind == "uniform" else tune.loguniform(*values)

    return {key: make(kind, values) for key, (kind, values) in space.items()}


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
    if samples < 1:
        raise ConfigError(f"--samples must be at least 1, got {samples}")
    cfg_file, out_dir = Path(cfg_file).resolve(), Path(out_dir).resolve()
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"--out {out_dir} is a file: name a folder for the trials")
    base = load_config(cfg_file, list(opts))
    if base.TASK not in ("keypoint", "bbox"):
        raise ConfigError(f"tools/tune.py tunes stage one or two, got TASK {base.TASK!r}")
    opts = [*opts, *absolute_path_opts(base)]
    space = read_space(space_file)
    check_space(space, space_file, cfg_file, opts)
    with lock_run_folder(out_dir, logging.getLogger(__name__)):
        return _search(cfg_file, space, samples, out_dir, address, opts, base)


def _search(cfg_file: Path, space: dict[str, tuple[str, list]], samples: int, out_dir: Path,
            address: str | None, opts: list[str], base: CfgNode) -> dict[str, Any]:
    """Ray Tune over ``space`` into ``out_dir`` (checked and locked by the caller)."""
    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

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
            errors = [str(r.error).strip().splitlines() for r in results if r.error]
            first = f" (the first: {errors[0][-1]})" if errors and errors[0] else ""
            raise TuneError(f"no trial reported a {METRIC}{first}; see the trial logs under "
                            f"{out_dir / 'trials'} and {out_dir / 'ray'}")  # fmt: skip
        best = results.get_best_result(metric=METRIC, mode="min", scope="all")
    finally:
        ray.shutdown()
    winners = {key: best.config[key] for key in space}
    atomic_write_text(out_dir / "best.yaml", best_yaml_text(cfg_file, list(opts), winners))
    best_metric = float(best.metrics_dataframe[METRIC].min())
    return {"best": winners, f"best_{METRIC}": best_metric, "trials": len(results),
            "best_yaml": str(out_dir / "best.yaml")}  # fmt: skip
