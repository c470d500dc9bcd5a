"""The benchmark's rows for one model size: loaders, training loaders, forward passes by
backend, the whole chain (with the parity of its outputs) and a training step."""

from __future__ import annotations

import argparse
import copy
import logging
import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from yacs.config import CfgNode

from benchmarks.probes import MemoryProbe, measure_row
from common.box_files import read_box_annotations
from common.boxes import keypoint_extent_boxes
from common.config import load_config
from common.io import read_image, reduce_factor
from common.keypoints import keypoint_set
from common.loaders import make_loader
from common.motion_data import keypoints_array, read_keypoint_csv
from common.stage_data import load_truth_table, test_image_names, test_image_paths, truth_by_name
from HRNet_bbox import engine as bbox_engine
from HRNet_bbox.dataset import WholeImageBoxDataset
from HRNet_keypoint import engine as keypoint_engine
from HRNet_keypoint.dataset import BoxDataset, KeypointDataset
from HRNet_keypoint.inference import predict_heatmaps
from HRNet_keypoint.loss import JointsMSELoss
from models.backends import prepare_inference_model, randomize_weights
from stages.chain import run_chain

SIZES = {
    "w32": ("experiments/bbox/w32_256x192_bbox_adam_lr1e-3.yaml",
            "experiments/keypoint/w32_256x192_adam_lr1e-3.yaml"),
    "w48": ("experiments/bbox/w48_384x288_adam_lr1e-3_03_origin.yaml",
            "experiments/keypoint/w48_384x288_adam_lr1e-3_02.yaml"),
    "tiny": ("experiments/bbox/tiny_cpu_bbox.yaml",
             "experiments/keypoint/tiny_cpu_keypoint.yaml"),
}  # fmt: skip
ROOT = Path(__file__).resolve().parents[1]
PLAIN = "plain"
TRAIN_LOADER_SAMPLES = 64


def read_result(path: Path, num_joints: int) -> np.ndarray:
    names = keypoint_set(num_joints)["names"]
    return keypoints_array(read_keypoint_csv(path, names), names)


def read_boxes(path: Path) -> np.ndarray:
    records = read_box_annotations(path)
    return np.array([records[name]["bbox"] for name in sorted(records)])


class SizeBench:
    """All rows of one size: configs, random models saved as ``model_best.pth``, inputs."""

    def __init__(self, size: str, data_root: Path, work: Path, args: argparse.Namespace,
                 device: torch.device, probe: MemoryProbe) -> None:  # fmt: skip
        self.size, self.args, self.device, self.probe = size, args, device, probe
        self.work = work / size
        self.bbox_path, self.keypoint_path = SIZES[size]
        self.common = [
            "MODEL.PRETRAINED", "", "DATASET.ROOT", str(data_root), "WORKERS", "0",
            "DATASET.DROP_REFERENCE_ROWS", "False", "TEST.BOX_SOURCE", "file",
        ]  # fmt: skip
        self.bbox_cfg = self.config(self.bbox_path, "torch")
        self.keypoint_cfg = self.config(self.keypoint_path, "torch")
        self.weights = {}
        self.models = {}
        for stage, cfg, engine, seed in (("bbox", self.bbox_cfg, bbox_engine, 1),
                                         ("keypoint", self.keypoint_cfg, keypoint_engine, 2)):
            model = randomize_weights(engine.build_model(cfg, is_train=False), seed)
            path = self.work / stage / "model_best.pth"
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.save(model.state_dict(), path)
            self.weights[stage] = path
            self.models[stage] = model.to(device).eval()
        names = test_image_names(self.keypoint_cfg)[: args.images]
        self.paths = test_image_paths(self.keypoint_cfg, names)
        truth = load_truth_table(self.keypoint_cfg)
        self.person_keypoints = truth_by_name(truth, names, self.keypoint_cfg.DATASET.TRUTH_CSV)
        self.person_boxes = keypoint_extent_boxes(self.person_keypoints)
        self.num_joints = int(self.keypoint_cfg.MODEL.NUM_JOINTS)

    def config(self, path: str, backend: str, extra: list[str] | None = None) -> CfgNode:
        return load_config(ROOT / path, [*self.common, "TEST.BACKEND", backend, "TEST.PRECISION",
                                          "fp32", *(extra or [])])  # fmt: skip

    def measure(self, name: str, variants: dict[str, Callable[[], object]],
                images: int) -> list[dict]:  # fmt: skip
        rows = measure_row(name, variants, images, self.args.repeats, self.probe)
        for row in rows:
            print(f"  {self.size:5s} {name:20s} {row['variant']:15s} "
                  f"{row['images_per_s']:9.2f} img/s  x{row['speed_ratio']:.2f}", flush=True)
        return rows

    # ------------------------------------------------------------------ loaders
    def loader_rows(self) -> list[dict]:
        cfg, kcfg, paths = self.bbox_cfg, self.keypoint_cfg, self.paths
        image_wh = read_image(paths[0]).shape[1::-1]
        reduce = reduce_factor(image_wh, tuple(int(v) for v in cfg.MODEL.IMAGE_SIZE))

        def stage_one(images: list[np.ndarray] | None) -> None:
            dataset = WholeImageBoxDataset(cfg, paths, None, is_train=False, images=images)
            for index in range(len(dataset)):
                dataset[index]

        def stage_two(images: list[np.ndarray] | None) -> None:
            dataset = BoxDataset(kcfg, paths, self.person_boxes, images=images)
            for index in range(len(dataset)):
                dataset[index]

        def shared() -> None:
            images = [read_image(path) for path in paths]
            stage_one(images)
            stage_two(images)

        rows = self.measure("loader_stage1", {
            PLAIN: lambda: stage_one(None),
            f"reduced_decode_1/{reduce}": lambda: stage_one(
                [read_image(path, reduce) for path in paths]),
        }, len(paths))  # fmt: skip
        rows += self.measure("loader_both_stages", {
            PLAIN: lambda: (stage_one(None), stage_two(None)),
            "shared_decode": shared,
        }, len(paths))  # fmt: skip
        return rows

    def train_loader_rows(self) -> list[dict]:
        """One pass of each stage's training loader over the images repeated to at least
        ``TRAIN_LOADER_SAMPLES`` samples (so that starting workers is not the whole cost):
        whole decodes in the main process, reduced decodes, reduced decodes in two workers."""
        kp_set = keypoint_set(self.num_joints)
        repeat = max(1, math.ceil(TRAIN_LOADER_SAMPLES / len(self.paths)))
        paths = self.paths * repeat
        keypoints = np.concatenate([self.person_keypoints] * repeat)

        def loader(stage: str, reduced: bool, workers: int) -> Callable[[], object]:
            opts = ["DATASET.REDUCED_DECODE", str(reduced), "WORKERS", str(workers),
                    "TRAIN.BATCH_SIZE_PER_GPU", "2"]  # fmt: skip
            if stage == "bbox":
                cfg = self.config(self.bbox_path, "torch", opts)
                dataset = WholeImageBoxDataset(cfg, paths, keypoint_extent_boxes(keypoints),
                                               True, reduced_decode=reduced)  # fmt: skip
            else:
                cfg = self.config(self.keypoint_path, "torch", opts)
                dataset = KeypointDataset(
                    cfg, paths, keypoints, True, kp_set["flip_pairs"],
                    kp_set["upper_body"], kp_set["lower_body"], reduced_decode=reduced)  # fmt: skip

            def run() -> None:
                torch.manual_seed(0)
                for _ in make_loader(dataset, cfg, True, torch.Generator().manual_seed(0)):
                    pass
            return run

        rows = []
        for stage, name in (("bbox", "train_loader_stage1"), ("keypoint", "train_loader_stage2")):
            rows += self.measure(name, {
                PLAIN: loader(stage, False, 0),
                "reduced_decode": loader(stage, True, 0),
                "reduced_decode_2_workers": loader(stage, True, 2),
            }, len(paths))  # fmt: skip
        return rows

    # ------------------------------------------------------------------ forwards
    def prepared(self, stage: str, backend: str) -> torch.nn.Module:
        cfg = self.config(self.bbox_path if stage == "bbox" else self.keypoint_path, backend)
        return prepare_inference_model(self.models[stage], cfg, weights_path=self.weights[stage])

    def forward_rows(self, backends: list[str]) -> tuple[list[dict], float]:
        batch = min(int(self.keypoint_cfg.TEST.BATCH_SIZE_PER_GPU), len(self.paths))
        box_batch = min(int(self.bbox_cfg.TEST.BATCH_SIZE_PER_GPU), len(self.paths))
        box_inputs = torch.stack([
            WholeImageBoxDataset(self.bbox_cfg, self.paths, None, is_train=False)[i][0]
            for i in range(box_batch)]).to(self.device)  # fmt: skip
        crops = BoxDataset(self.keypoint_cfg, self.paths, self.person_boxes)
        crop_inputs = torch.stack([crops[i][0] for i in range(batch)]).to(self.device)
        flip_pairs = keypoint_set(self.num_joints)["flip_pairs"]
        shift = bool(self.keypoint_cfg.TEST.SHIFT_HEATMAP)

        start = time.perf_counter()
        box_models = {PLAIN: self.models["bbox"]}
        keypoint_models = {PLAIN: self.models["keypoint"]}
        for backend in backends:
            box_models[backend] = self.prepared("bbox", backend)
            keypoint_models[backend] = self.prepared("keypoint", backend)
        prepare_seconds = time.perf_counter() - start

        def box_forward(model: torch.nn.Module) -> Callable[[], object]:
            def run() -> None:
                with torch.inference_mode():
                    model(box_inputs)
            return run

        def heatmaps(model: torch.nn.Module, flip: bool) -> Callable[[], object]:
            def run() -> None:
                with torch.inference_mode():
                    predict_heatmaps(model, crop_inputs, flip, flip_pairs, shift)
            return run

        rows = self.measure("stage1_forward", {k: box_forward(m) for k, m in box_models.items()},
                            box_batch)  # fmt: skip
        rows += self.measure("stage2_forward", {
            k: heatmaps(m, False) for k, m in keypoint_models.items()}, batch)
        rows += self.measure("stage2_forward_flip", {
            k: heatmaps(m, True) for k, m in keypoint_models.items()}, batch)
        return rows, prepare_seconds

    # ------------------------------------------------------------------ chain
    def chain_rows(self, backends: list[str], logger: logging.Logger) -> tuple[list[dict], dict]:
        names = [path.name for path in self.paths]

        def configs(backend: str) -> tuple[CfgNode, Path, CfgNode, Path]:
            bbox_dir = self.work / f"chain_{backend}" / "bbox"
            keypoint_dir = self.work / f"chain_{backend}" / "keypoint"
            for folder in (bbox_dir, keypoint_dir):
                folder.mkdir(parents=True, exist_ok=True)
            bcfg = self.config(self.bbox_path, backend,
                               ["TEST.MODEL_FILE", str(self.weights["bbox"])])
            kcfg = self.config(self.keypoint_path, backend, [
                "TEST.MODEL_FILE", str(self.weights["keypoint"]),
                "DATASET.BOX_FILE", str(bbox_dir / bbox_engine.BOX_FILE_NAME)])  # fmt: skip
            return bcfg, bbox_dir, kcfg, keypoint_dir

        plain = configs("torch")

        def two_step() -> None:
            bcfg, bbox_dir, kcfg, keypoint_dir = plain
            bbox_engine.run_test(bcfg, bbox_dir, logger, self.device)
            keypoint_engine.run_test(kcfg, keypoint_dir, logger, self.device)

        variants: dict[str, Callable[[], object]] = {PLAIN: two_step}
        optimised = {backend: configs(backend) for backend in backends}
        for backend, (bcfg, bbox_dir, kcfg, keypoint_dir) in optimised.items():
            variants[f"chain_{backend}"] = (
                lambda b=bcfg, bd=bbox_dir, k=kcfg, kd=keypoint_dir:
                run_chain(b, bd, k, kd, self.device, logger))  # fmt: skip
        rows = self.measure("chain", variants, len(names))

        reference = read_result(plain[3] / "result.csv", self.num_joints)
        reference_boxes = read_boxes(plain[1] / bbox_engine.BOX_FILE_NAME)
        parity = {}
        for backend, (_, bbox_dir, _, keypoint_dir) in optimised.items():
            result = read_result(keypoint_dir / "result.csv", self.num_joints)
            boxes = read_boxes(bbox_dir / bbox_engine.BOX_FILE_NAME)
            parity[backend] = {
                "result_csv_max_abs_px": float(np.abs(result - reference).max()),
                "boxes_max_abs_px": float(np.abs(boxes - reference_boxes).max()),
            }
        return rows, parity

    # ------------------------------------------------------------------ training
    def train_rows(self) -> list[dict]:
        cfg = self.keypoint_cfg
        batch = self.args.train_batch
        width, height = (int(v) for v in cfg.MODEL.IMAGE_SIZE)
        heatmap_w, heatmap_h = (int(v) for v in cfg.MODEL.HEATMAP_SIZE)
        generator = torch.Generator().manual_seed(0)
        inputs = torch.randn(batch, 3, height, width, generator=generator).to(self.device)
        target = torch.rand(batch, self.num_joints, heatmap_h, heatmap_w,
                            generator=generator).to(self.device)  # fmt: skip
        weight = torch.ones(batch, self.num_joints, 1, device=self.device)
        criterion = JointsMSELoss(cfg.LOSS.USE_TARGET_WEIGHT)

        def step_fn(channels_last: bool, amp: bool) -> Callable[[], object]:
            model = copy.deepcopy(self.models["keypoint"]).train()
            images = inputs
            if channels_last:
                model = model.to(memory_format=torch.channels_last)
                images = inputs.contiguous(memory_format=torch.channels_last)
            optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)

            def run() -> None:
                with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=amp):
                    loss = criterion(model(images).float(), target, weight)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            return run

        variants = {PLAIN: step_fn(False, False), "channels_last": step_fn(True, False)}
        if self.device.type == "cuda":
            variants["channels_last_bf16_autocast"] = step_fn(True, True)
        return self.measure("train_step", variants, batch)
