"""All configuration defaults, in one place.

The keys follow the official HRNet config (so its experiment YAMLs load unchanged) plus the keys
the competition solution added (RANDOMSEED, TEST_RATIO, INPUT_SIZE, LAMB, GAMMA1/2) and this
project's own. Experiment files override only what they change; command-line ``opts`` override
both, as ``KEY VALUE`` pairs.

Convention: ``MODEL.IMAGE_SIZE`` and ``MODEL.HEATMAP_SIZE`` are ``[width, height]`` in every
stage (the official convention). The reference box stage read them as ``[height, width]``; our
box experiment files are written in ``[width, height]`` so that they describe the same input.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from yacs.config import CfgNode as CN

from common.config_check import (
    COMMAND_LINE,
    COMPAT_KEYS,
    merge_file,
    merge_opts,
    warn_compat_keys,
)
from common.config_values import check_values
from common.dataset_format import format_compat_keys, normalise_dataset_format
from common.errors import ConfigError

_C = CN()

# Which stage a config drives: 'keypoint' (stage two), 'bbox', 'detect' (stage one) or 'gesture'.
_C.TASK = "keypoint"
_C.OUTPUT_DIR = "output"
_C.LOG_DIR = "log"
_C.DATA_DIR = ""
_C.GPUS = (0,)
_C.WORKERS = 2
_C.PRINT_FREQ = 20
_C.AUTO_RESUME = False
_C.PIN_MEMORY = True
_C.RANK = 0
# The competition solution's keys: RANDOMSEED, TEST_RATIO used; the rest kept so its YAMLs load.
_C.RANDOMSEED = 42
_C.TEST_RATIO = 0.1
_C.INPUT_SIZE = 0
_C.LAMB = 0
_C.test_option = False

# Reproducibility (common/seed.py).
_C.CUDNN = CN()
_C.CUDNN.BENCHMARK = True
_C.CUDNN.DETERMINISTIC = False
_C.CUDNN.ENABLED = True
_C.REPRODUCIBILITY = CN()
_C.REPRODUCIBILITY.CUBLAS_WORKSPACE_CONFIG = ":16:8"
_C.REPRODUCIBILITY.DETERMINISTIC_ALGORITHMS = False

_C.MODEL = CN()
_C.MODEL.NAME = "pose_hrnet"
_C.MODEL.INIT_WEIGHTS = True
_C.MODEL.PRETRAINED = ""
_C.MODEL.NUM_JOINTS = 24
_C.MODEL.TAG_PER_JOINT = True
_C.MODEL.TARGET_TYPE = "gaussian"
_C.MODEL.IMAGE_SIZE = [288, 384]  # [width, height]
_C.MODEL.HEATMAP_SIZE = [72, 96]  # [width, height]
_C.MODEL.SIGMA = 3
_C.MODEL.EXTRA = CN(new_allowed=True)
# Stage one: 'reference' flattens the heatmaps into one Linear layer (the competition head);
# 'pooled' regresses normalised corners from pooled multi-resolution features.
_C.MODEL.BBOX_HEAD = "pooled"
# Stage two: UDP (HRNet_keypoint/codecs/udp.py; off: the official numerics); its parts (README,
# "How the code is organised"): codec ('' reads MODEL.UDP, then TEST.DECODE), backbone, head.
_C.MODEL.UDP = False
_C.MODEL.DETECTOR = CN({"NAME": "fcos", "FPN_CHANNELS": 256, "WEIGHTS": "", "SCORE_THRE": 0.05,
                        "MAX_DETECTIONS": 100, "NMS_THRE": 0.0,
                        "SCALE_JITTER": 0.0})  # TASK detect: see HRNet_bbox/detector.py
_C.MODEL.CODEC = ""
_C.MODEL.BACKBONE = "hrnet"
_C.MODEL.HEAD = "heatmap"

_C.LOSS = CN()
_C.LOSS.USE_OHKM = False
_C.LOSS.TOPK = 8
# The reference config said true but its code ignored it; False reproduces the reference.
_C.LOSS.USE_TARGET_WEIGHT = False
_C.LOSS.USE_DIFFERENT_JOINTS_WEIGHT = False

_C.DATASET = CN()
_C.DATASET.ROOT = "data/synthetic/motion"
_C.DATASET.DATASET = "coco"
_C.DATASET.TRAIN_SET = "train"
_C.DATASET.TEST_SET = "test"
_C.DATASET.DATA_FORMAT = "jpg"
_C.DATASET.HYBRID_JOINTS_TYPE = ""
_C.DATASET.SELECT_DATA = False
_C.DATASET.FLIP = True
_C.DATASET.SCALE_FACTOR = 0.25
_C.DATASET.ROT_FACTOR = 30
_C.DATASET.PROB_HALF_BODY = 0.0
_C.DATASET.NUM_JOINTS_HALF_BODY = 8
_C.DATASET.COLOR_RGB = False
_C.DATASET.GROUP_SPLIT = False  # split by subject id so one sequence never straddles splits
_C.DATASET.DROP_ROWS = []  # positional rows of TRAIN_CSV to drop
# Also drop the 104 rows the reference never trained on (its delete_list; real data only).
_C.DATASET.DROP_REFERENCE_ROWS = False
# Stage one's training augmentation: 'mild' (flip, affine, colour jitter) or 'reference'.
_C.DATASET.BBOX_AUG = "mild"
_C.DATASET.SKIP_BAD_IMAGES = False  # training only: skip unreadable images and list them
_C.DATASET.MAX_IMAGE_PIXELS = 100_000_000  # refuse images whose header declares more (bombs)
# Training input of both stages: decode each JPEG at 1/2, 1/4 or 1/8 size when that still
# leaves one decoded pixel per input pixel (stage one: the whole image; stage two: the
# augmented crop). Validation and test read whole images (see TEST.REDUCED_DECODE). Off by
# default: in the demo (tiny box config, one seed) it left stage one at a validation corner
# error of 38.8 px against 26.4 px with whole decodes; stage two was unharmed.
_C.DATASET.REDUCED_DECODE = False
# Stage two's training images decoded once, before the loader's workers start, when all of
# them fit this many megabytes (common/image_cache.py; 1024: about 170 1920x1080 images), and
# read from their files otherwise (also with 0). The workers share the decodes; a cached set
# is cropped from its whole decodes (REDUCED_DECODE does not apply to it).
_C.DATASET.CACHE_DECODED_MB = 1024
# Where a stage finds its files under ROOT. Image names in the CSVs may include subfolders
# (the hand configs use the gesture frames, ``<folder>/<n>.png``).
_C.DATASET.TRAIN_CSV = "train_df.csv"
_C.DATASET.TEST_CSV = "sample_submission.csv"  # its ``image`` column fixes the test rows
_C.DATASET.TRUTH_CSV = "test_df.csv"  # ground truth for the test images, when known
_C.DATASET.TRAIN_IMAGE_DIR = "images/train_imgs"
_C.DATASET.TEST_IMAGE_DIR = "images/test_imgs"
_C.DATASET.BOX_FILE = "annotations/test_annotation.pkl"
# The keypoint set (common/keypoints.py): 'motion24', 'hand21', 'coco17' or a YAML/JSON file (a
# path, or one under ROOT). Empty: the COCO file's category with FORMAT coco, else the built-in
# set with MODEL.NUM_JOINTS joints. MODEL.NUM_JOINTS must agree with it.
_C.DATASET.KEYPOINTS = ""
# 'csv' (the competition layout above) or 'coco': COCO person-keypoints files under ROOT, their
# images found by file_name under TRAIN_IMAGE_DIR (train, val) and TEST_IMAGE_DIR (test).
_C.DATASET.FORMAT = "csv"
_C.DATASET.TRAIN_JSON = ""
_C.DATASET.VAL_JSON = ""  # empty: validation images are split off TRAIN_JSON (TEST_RATIO)
_C.DATASET.TEST_JSON = ""

_C.TRAIN = CN()
_C.TRAIN.LR_FACTOR = 0.1
_C.TRAIN.LR_STEP = [90, 110]
_C.TRAIN.LR = 0.001
_C.TRAIN.OPTIMIZER = "adam"
_C.TRAIN.MOMENTUM = 0.9
_C.TRAIN.WD = 0.0001
_C.TRAIN.NESTEROV = False
_C.TRAIN.GAMMA1 = 0.99
_C.TRAIN.GAMMA2 = 0.0
_C.TRAIN.BEGIN_EPOCH = 0
_C.TRAIN.END_EPOCH = 140
_C.TRAIN.RESUME = False
_C.TRAIN.CHECKPOINT = ""
_C.TRAIN.BATCH_SIZE_PER_GPU = 32
_C.TRAIN.SHUFFLE = True
# The reference passed no weight decay to Adam; True applies TRAIN.WD.
_C.TRAIN.USE_WD = False
_C.TRAIN.AMP = False  # mixed precision on CUDA
_C.TRAIN.AMP_DTYPE = "float16"  # or 'bfloat16' (no loss scaling needed)
_C.TRAIN.CHANNELS_LAST = False  # NHWC weights and activations: faster convolutions on GPUs
_C.TRAIN.PATIENCE = 0  # stop after this many epochs without a lower validation metric; 0: never

_C.TEST = CN()
_C.TEST.BATCH_SIZE_PER_GPU = 32
_C.TEST.FLIP_TEST = False
_C.TEST.POST_PROCESS = False
_C.TEST.SHIFT_HEATMAP = False
_C.TEST.USE_GT_BBOX = True  # the official key (COMPAT_KEYS); the boxes come from TEST.BOX_SOURCE
_C.TEST.BOX_SOURCE = "file"  # file: DATASET.BOX_FILE (stage one's) | truth: TRUTH_CSV extents
# Stage two, issue 13: 'quarter' (official: argmax, quarter offset with POST_PROCESS) or 'dark'
# (gaussian-smoothed log heatmap, one Newton step); SCALES: box scale factors whose heatmaps
# are averaged in the scale-1.0 frame before decoding (HRNet_keypoint/tta.py).
_C.TEST.DECODE = "quarter"
_C.TEST.SCALES = [1.0]
_C.TEST.MODEL_FILE = ""
# Reproduction switches for the two deliberate differences from the competition's test scripts
# (README, "Deliberate differences"). REFERENCE_BOXES: stage one writes its boxes as they did,
# [x1, y1, |x2 - x1|, |y2 - y1|] unclipped, instead of sorted corners clipped to the image (a
# crop crossing the right or bottom edge is then one pixel longer). BN_BATCH_STATS: batch norm
# runs on each test batch's own statistics, as their never-called model.eval() left it; the
# answers then depend on the batch size and order ('torch' backend only).
_C.TEST.REFERENCE_BOXES = False
_C.TEST.BN_BATCH_STATS = False
# Inference backend: 'torch' (plain), 'fused' (BN folded into convs, channels-last),
# 'onnxruntime' or 'openvino' (CPU, both on the ONNX export), or 'auto' (the default): the
# fastest of those four on this machine, timed once and remembered beside the export
# (models/auto_backend.py); on a GPU, the faster of torch and fused.
# ONNX_FILE names an exported model to use instead of exporting anew.
# 'onnxruntime-int8' / 'openvino-int8': the export quantised to int8 (models/quantize.py),
# calibrated once on INT8_CALIBRATION_IMAGES training images (a draw seeded by RANDOMSEED,
# cropped as the test path crops) and cached beside it; it needs the training set under
# DATASET.ROOT the first time, so it is never chosen by default.
_C.TEST.BACKEND = "auto"
_C.TEST.ONNX_FILE = ""
_C.TEST.INT8_CALIBRATION_IMAGES = 32
# Arithmetic of the forward (models/reduced_precision.py): 'fp32' (the switch off), 'bf16'
# (bfloat16 autocast for torch and fused, bfloat16 inference precision for openvino; refused
# with onnxruntime and the int8 backends), or 'auto': bfloat16 on a CPU with native bfloat16
# (AVX512-BF16 or AMX) with the engines whose bfloat16 moved this stage's RMSE by under 0.2 px
# on W32 models trained to a plateau (benchmarks/precision.py), float32 everywhere else.
# TEST.BF16 True is the older spelling of TEST.PRECISION bf16.
_C.TEST.PRECISION = "auto"
_C.TEST.BF16 = False
# Stage one at test time on its own (tools/test.py, validation): the reduced decode of
# DATASET.REDUCED_DECODE. Off by default, so the two-step way and tools/pipeline.py (which
# decodes each image once, whole, for both stages) give the same boxes.
_C.TEST.REDUCED_DECODE = False
# Official COCO test-time keys (DATASET.FORMAT coco): detections from COCO_BBOX_FILE (a COCO
# detection results file under DATASET.ROOT) scoring below IMAGE_THRE are dropped; a keypoint
# counts in the person's score when its own score exceeds IN_VIS_THRE; OKS-NMS at OKS_THRE (as
# the official code does). NMS_THRE, SOFT_NMS and BBOX_THRE are accepted and unused.
_C.TEST.IMAGE_THRE = 0.1
_C.TEST.NMS_THRE = 0.6
_C.TEST.SOFT_NMS = False
_C.TEST.OKS_THRE = 0.5
_C.TEST.IN_VIS_THRE = 0.0
_C.TEST.COCO_BBOX_FILE = ""
_C.TEST.BBOX_THRE = 1.0

_C.DEBUG = CN()
_C.DEBUG.DEBUG = False
_C.DEBUG.SAVE_BATCH_IMAGES_GT = False
_C.DEBUG.SAVE_BATCH_IMAGES_PRED = False
_C.DEBUG.SAVE_HEATMAPS_GT = False
_C.DEBUG.SAVE_HEATMAPS_PRED = False
# Project key: how many validation images training draws as prediction pictures each epoch.
_C.DEBUG.NUM_SAMPLE_IMAGES = 4

# Gesture classifier (common/gesture/). The data lives under DATASET.ROOT as the competition
# ships it: DATASET.TRAIN_IMAGE_DIR/<folder>/<n>.png with <folder>.json, DATASET.TEST_IMAGE_DIR,
# DATASET.TEST_CSV (sample_submission.csv: row order and class columns), DATASET.TRUTH_CSV
# (test_answer.csv of the synthetic set, scored when present). Margins are in pixels of a
# GESTURE.REFERENCE_WIDTH-wide image and scale with each image's own width.
_C.GESTURE = CN()
_C.GESTURE.POSE_CSV = "hand_gesture_pose.csv"  # pose table under DATASET.ROOT
_C.GESTURE.REFERENCE_WIDTH = 1920  # the width the pixel margins and thresholds refer to
# Where test keypoints (crops and refiner) come from: 'json' = test/<f>/<f>.json,
# 'stages' = stage two's result.csv on the hand tables (see common/gesture/hand_keypoints.py).
_C.GESTURE.KEYPOINT_SOURCE = "json"
_C.GESTURE.STAGE_RESULT_CSV = ""  # path of that result.csv when KEYPOINT_SOURCE is 'stages'
# Stage two's result.csv on every training frame (hand_train_list.csv): when set, training also
# fits the refiner on these keypoints, and KEYPOINT_SOURCE 'stages' uses those thresholds.
_C.GESTURE.TRAIN_STAGE_RESULT_CSV = ""
# Model: any timm model name. Never downloaded; PRETRAINED may name a local weight file.
_C.GESTURE.BACKBONE = "regnety_040"
_C.GESTURE.PRETRAINED = ""
_C.GESTURE.DROP_PATH_RATE = 0.2
_C.GESTURE.IMAGE_SIZE = 288  # square network input
# Crops: keypoint extent +- MARGIN, BOTTOM_MARGIN more below (the wrist), then EXTRA_MARGIN on
# each side (training: each side with probability RANDOM_MARGIN_PROB; evaluation: always).
_C.GESTURE.MARGIN = 50.0
_C.GESTURE.BOTTOM_MARGIN = 100.0
_C.GESTURE.EXTRA_MARGIN = 50.0
_C.GESTURE.RANDOM_MARGIN_PROB = 0.5
_C.GESTURE.FLIP_PROB = 0.3  # mirror a crop and swap its class to the left/right partner
_C.GESTURE.AUGMENT = True  # RandomAffine(20) + RandomPerspective() as the reference
# Flip mapping: pose ids left out, and [pose_id, name] renames splitting classes that share a
# name (reference: exclude [49]; 129/154 -> '약속 1', 124/149 -> '약속 2').
_C.GESTURE.FLIP_EXCLUDE_IDS = []
_C.GESTURE.FLIP_NAME_OVERRIDES = []
# Data cleaning: training frames left out ("<folder>/<n>", reference ["0/9"]) and
# [folder, x_min, y_min, x_max, y_max] regions whose points are ignored for crops (reference:
# folders 475 and 543, x < 250 and y > 800, or x > 1400 and y < 400).
_C.GESTURE.DROP_FRAMES = []
_C.GESTURE.IGNORE_POINT_REGIONS = []
# Splits: StratifiedKFold(NUM_FOLDS, shuffle, RANDOMSEED) per frame; GROUP_SPLIT keeps each
# folder in one fold (StratifiedGroupKFold). FOLDS are trained, and ensembled at test time.
_C.GESTURE.NUM_FOLDS = 5
_C.GESTURE.FOLDS = [0, 1, 2, 3, 4]
_C.GESTURE.GROUP_SPLIT = False
# Recipe: linear warm-up to WARMUP_LR over WARMUP_EPOCHS, then OneCycle (peak MAX_LR) over the
# remaining epochs, both per iteration. The reference used torch_optimizer.Lamb; 'adamw'
# (default), 'adam' and 'sgd' are offered instead.
_C.GESTURE.OPTIMIZER = "adamw"
_C.GESTURE.WEIGHT_DECAY = 1e-3
_C.GESTURE.WARMUP_EPOCHS = 5
_C.GESTURE.WARMUP_LR = 5e-6
_C.GESTURE.MAX_LR = 1e-3
_C.GESTURE.EPOCHS = 50
_C.GESTURE.BATCH_SIZE = 16
_C.GESTURE.PATIENCE = 50  # epochs without a lower validation loss before stopping
_C.GESTURE.GRAD_CLIP = 0.0  # max gradient norm; 0 = no clipping
_C.GESTURE.AMP = True  # mixed precision, used only when CUDA is present
# CutMix: per training batch with this probability, a random rectangle of each crop is replaced by
# another crop's, the label mixed by the pasted area (0 = off, as the reference).
_C.GESTURE.CUTMIX_PROB = 0.0
# Test-time flip: also predict each mirrored crop, swap its left/right classes (the flip map of
# the augmentation) and average the two.
_C.GESTURE.TEST_FLIP = False
# Rule-based refiner for confusable pairs. PAIRS: [static_id, moving_id, statistic, group];
# statistic 'tip_x_range' (x of the topmost point, max - min over frames) or 'max_x_range'
# (max x over points, max - min over frames), both the reference's, or 'size_change' (100 * range
# of the log hand size over frames: a push grows the fist; blind to position offsets). Pairs of
# one group share a threshold: the largest static-class value (after dropping values above
# Q3 + OUTLIER_IQR * IQR; 0 = keep all) plus MARGIN (in the statistic's unit). MEDIAN_FRAMES > 1
# median-filters each per-frame series first (1 = none, as the reference). MODE 'onehot'
# (reference), 'pair_mass' (the pair's probability moves to the choice) or 'calibrated' (the
# pair's probability m splits m * c on the choice, m * (1 - c) on the other; c: the rule's
# add-one leave-one-out accuracy on its training clips, each checked against the threshold fitted
# without it; groups with c <= 0.5, or whose leave-one-out record a coin would match with
# probability above MAX_CHANCE_P (one-sided binomial test), are left alone).
_C.GESTURE.REFINER = CN()
_C.GESTURE.REFINER.ENABLED = True
# tools/gesture_report.py (synthetic data, regressed keypoints, the 104 validation clips of 4
# folds): logloss 1.519 without the refiner; calibrated 1.067, pair_mass 4.507, onehot 7.816 (one
# wrong pick costs pair_mass ~34 on that clip).
_C.GESTURE.REFINER.MODE = "calibrated"
_C.GESTURE.REFINER.MARGIN = 5.0
_C.GESTURE.REFINER.OUTLIER_IQR = 3.0
_C.GESTURE.REFINER.MEDIAN_FRAMES = 1
_C.GESTURE.REFINER.MAX_CHANCE_P = 0.05
_C.GESTURE.REFINER.PAIRS = [
    [0, 42, "tip_x_range", "index"],
    [10, 67, "tip_x_range", "index"],
    [100, 142, "tip_x_range", "index"],
    [110, 167, "tip_x_range", "index"],
    [146, 163, "size_change", "fist"],
    [171, 191, "size_change", "fist"],
]


def get_defaults() -> CN:
    """A fresh copy of the defaults."""
    return _C.clone()


def load_config(cfg_file: str | Path | None = None, opts: list[str] | None = None,
                unread: dict[str, str] | None = None) -> CN:
    """Defaults, then the experiment file, then ``KEY VALUE`` overrides; frozen.

    An unknown key, a wrong type or a YAML syntax error is a ``ConfigError`` naming the key,
    the file (or the command line) and the closest valid key; a compatibility key set to
    another value than its default logs a warning with what to use instead. A value no stage
    can use (an unknown decoder, a scale of 0, one fold) is refused here too
    (``common/config_values.py``), before any data or model. ``unread``: a tool reading only
    part of a config (``tools/infer.py``) names the keys it ignores, warned about instead.
    """
    cfg = get_defaults()
    sources: dict[str, str] = {}
    if cfg_file:
        sources.update(dict.fromkeys(merge_file(cfg, Path(cfg_file), _C), str(cfg_file)))
    if opts:
        merge_opts(cfg, list(opts), _C)
        sources.update(dict.fromkeys(list(opts)[0::2], COMMAND_LINE))
    normalise_dataset_format(cfg)
    check_values(cfg, sources)
    _read_bf16_as_precision(cfg, sources)
    warn_compat_keys(cfg, _C, unread or format_compat_keys(cfg, COMPAT_KEYS))
    cfg.freeze()
    return cfg


def _read_bf16_as_precision(cfg: CN, sources: dict[str, str]) -> None:
    """``TEST.BF16 True`` (the older key) becomes ``TEST.PRECISION bf16``."""
    if not cfg.TEST.BF16:
        return
    if cfg.TEST.PRECISION == "fp32":
        raise ConfigError(f"TEST.BF16 True ({sources.get('TEST.BF16', 'the defaults')}) asks "
                          f"for bfloat16 and TEST.PRECISION fp32 "
                          f"({sources.get('TEST.PRECISION', 'the defaults')}) for float32: "
                          "drop TEST.BF16; TEST.PRECISION bf16 is its newer spelling")
    cfg.TEST.PRECISION = "bf16"


def str2bool(value: str | bool) -> bool:
    """Parse the reference's ``--test_option True/False`` without eval."""
    if isinstance(value, bool):
        return value
    lowered = value.strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected True or False, got {value!r}")


def positive_int(text: str) -> int:
    """An argparse type for counts: a whole number of at least 1."""
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return int(text)
