"""Export a trained stage to ONNX and check it against PyTorch.

``python tools/export_onnx.py --cfg CFG --weights model_best.pth --out model.onnx [KEY VALUE ...]``

Works for keypoint and box configs (``TASK``). The export has a dynamic batch axis and the
config's ``MODEL.IMAGE_SIZE``; it is then run by onnxruntime on a random batch of two and the
largest absolute difference to PyTorch's output is printed. Use it with
``TEST.BACKEND onnxruntime TEST.ONNX_FILE model.onnx``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import _bootstrap  # noqa: F401
import torch

from common.cli import ToolParser, run_tool
from common.config import load_config
from common.state_dict import load_state_dict_strict
from models.backends import export_onnx, input_shape_for, onnx_max_difference
from stages import stage_for

# Allowed |onnxruntime - torch| relative to the output's scale (float32 reordering only).
TOLERANCE = 1e-3


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = ToolParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cfg", required=True, help="experiment YAML (keypoint or bbox)")
    parser.add_argument("--weights", required=True, type=Path, help="trained model_best.pth")
    parser.add_argument("--out", required=True, type=Path, help="the .onnx file to write")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    cfg = load_config(args.cfg, args.opts)
    if cfg.TASK == "gesture":
        raise ValueError("export_onnx.py exports the keypoint and box stages, not TASK gesture")
    model = stage_for(cfg.TASK).build_model(cfg, is_train=False)
    load_state_dict_strict(model, args.weights)
    model.eval()
    export_onnx(model, args.out, input_shape_for(cfg))
    images = torch.randn(input_shape_for(cfg, batch=2), generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        scale = float(model(images).abs().max())
    difference = onnx_max_difference(model, args.out, images)
    print(f"wrote {args.out}: input {list(input_shape_for(cfg))[1:]} (C, H, W), dynamic batch")
    print(f"max |onnxruntime - torch| on a random batch of 2: {difference:.3g} "
          f"(outputs up to {scale:.3g})")  # fmt: skip
    if not difference <= TOLERANCE * max(scale, 1.0):
        raise RuntimeError(
            f"the ONNX export differs from PyTorch by {difference:.3g} (outputs up to "
            f"{scale:.3g}); the export is not trustworthy"
        )
    return {"onnx": str(args.out), "max_abs_difference": difference}


if __name__ == "__main__":
    run_tool(main)
