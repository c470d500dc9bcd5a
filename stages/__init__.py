"""The stages by the config's ``TASK``: the one place that knows all three (the box stage, the
keypoint stage and the gesture classifier), so that ``common/`` never has to.

A stage's module is imported when its task is first asked for: a box or keypoint run does not
pay for the gesture classifier's imports (torchvision's models, scikit-learn), about 4 s.
``stages.chain`` runs stage one then stage two on the test images.
"""

from __future__ import annotations

import importlib

from common.stage import StageTask

STAGE_MODULES = {
    "bbox": ("HRNet_bbox.engine", "BOX_STAGE"),
    "detect": ("HRNet_bbox.detect_engine", "DETECT_STAGE"),
    "keypoint": ("HRNet_keypoint.engine", "KEYPOINT_STAGE"),
    "gesture": ("common.gesture.stage", "GESTURE_STAGE"),
}


def stage_for(task: str) -> StageTask:
    """The stage of ``TASK``; refuses an unknown one, naming the known ones."""
    if task not in STAGE_MODULES:
        raise ValueError(f"TASK must be one of {sorted(STAGE_MODULES)}, got {task!r}")
    module, name = STAGE_MODULES[task]
    return getattr(importlib.import_module(module), name)
