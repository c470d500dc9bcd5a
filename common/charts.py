"""Charts for people who would rather look than read: per-keypoint errors and training curves.

Drawn with matplotlib's Agg backend (no display needed). Training curves are read back from the
TensorBoard event files the trainer writes (TFRecord framing around ``Event`` protos), so no
extra log is kept and any past run can be drawn.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
from tensorboardX.proto import event_pb2  # noqa: E402

from common.io import atomic_path  # noqa: E402

PRED_COLOUR = "#ff9f1c"
VALID_COLOUR = "#2e86de"
TRAIN_COLOUR = "#444444"


def read_scalars(event_dir: str | Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar of the event files under ``event_dir``: tag -> [(step, value)] by step."""
    scalars: dict[str, dict[int, float]] = {}
    for path in sorted(Path(event_dir).glob("events.out.tfevents.*")):
        data = path.read_bytes()
        offset = 0
        while offset + 12 <= len(data):
            (length,) = struct.unpack_from("<Q", data, offset)
            start, offset = offset + 12, offset + 12 + length + 4  # length, crc, data, crc
            if offset > len(data):
                break  # a record cut short by a killed writer
            event = event_pb2.Event.FromString(data[start : start + length])
            for value in event.summary.value:
                if value.HasField("simple_value"):
                    scalars.setdefault(value.tag, {})[event.step] = value.simple_value
    return {tag: sorted(steps.items()) for tag, steps in scalars.items()}


def _save(figure: plt.Figure, out_png: Path) -> Path:
    out_png = Path(out_png)
    out_png.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_png) as tmp:
        figure.savefig(tmp, format="png", dpi=110)
    plt.close(figure)
    return out_png


def plot_keypoint_errors(per_keypoint: Mapping[str, float], out_png: str | Path,
                         title: str = "", overall: float | None = None) -> Path:
    """A horizontal bar per keypoint (worst at the top), its RMSE in pixels written beside it;
    ``overall`` (the RMSE over all keypoints) as a dashed line."""
    items = sorted(per_keypoint.items(), key=lambda item: item[1])
    names, values = [n for n, _ in items], [v for _, v in items]
    figure, axis = plt.subplots(figsize=(7.5, 0.28 * len(items) + 1.4))
    bars = axis.barh(names, values, color=PRED_COLOUR, label="RMSE of the prediction")
    axis.bar_label(bars, fmt="%.1f", padding=3, fontsize=8,
                   bbox={"boxstyle": "square,pad=0.1", "facecolor": "white", "edgecolor": "none"})
    axis.set_xlabel("RMSE (pixels of the original image)")
    if overall is not None:
        axis.axvline(overall, color=TRAIN_COLOUR, linestyle="--", linewidth=1, zorder=0,
                     label=f"all keypoints: {overall:.1f}")
    axis.set_xlim(0, max([*values, overall or 0.0]) * 1.15 or 1.0)
    axis.tick_params(axis="y", labelsize=8)
    axis.grid(axis="x", alpha=0.3)
    axis.set_axisbelow(True)
    axis.legend(loc="lower right", fontsize=8)
    axis.set_title(title or "Per-keypoint error", fontsize=10)
    figure.tight_layout()
    return _save(figure, Path(out_png))


def plot_training_curves(runs: Mapping[str, tuple[str | Path, str]],
                         out_png: str | Path) -> Path:
    """One row per stage: ``label -> (event folder, validation tag)``; the training loss (log
    scale) on the left, the validation metric on the right, the best epoch marked."""
    figure, axes = plt.subplots(len(runs), 2, figsize=(10, 3.2 * len(runs)), squeeze=False)
    for row, (label, (event_dir, valid_tag)) in enumerate(runs.items()):
        scalars = read_scalars(event_dir)
        loss_axis, valid_axis = axes[row]
        loss = scalars.get("train/loss", [])
        if loss:
            loss_axis.plot(*zip(*loss, strict=True), color=TRAIN_COLOUR, label="training loss")
            loss_axis.set_yscale("log")
        loss_axis.set_title(f"{label}: training loss", fontsize=10)
        valid = scalars.get(valid_tag, [])
        metric = valid_tag.split("/")[-1]
        if valid:
            steps, values = zip(*valid, strict=True)
            valid_axis.plot(steps, values, color=VALID_COLOUR, label=f"validation {metric}")
            best = min(range(len(values)), key=values.__getitem__)
            valid_axis.scatter([steps[best]], [values[best]], color=PRED_COLOUR, zorder=3,
                               label=f"best {values[best]:.2f} (epoch {steps[best]})")
        valid_axis.set_title(f"{label}: validation {metric}", fontsize=10)
        valid_axis.set_ylabel("pixels")
        for axis in (loss_axis, valid_axis):
            axis.set_xlabel("epoch")
            axis.xaxis.set_major_locator(MaxNLocator(integer=True))
            axis.grid(alpha=0.3)
            if axis.get_legend_handles_labels()[0]:
                axis.legend(fontsize=8)
    figure.tight_layout()
    return _save(figure, Path(out_png))
