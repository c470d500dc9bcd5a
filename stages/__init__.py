"""The stages by the config's ``TASK``: the one place that imports all three (the box stage,
the keypoint stage and the gesture classifier), so that ``common/`` never has to.

``stages.chain`` runs stage one then stage two on the test images.
"""

from __future__ import annotations

from common.gesture.stage import GESTURE_STAGE
from common.stage import StageTask
from HRNet_bbox.engine import BOX_STAGE
from HRNet_keypoint.engine import KEYPOINT_STAGE

STAGES: dict[str, StageTask] = {s.task: s for s in (BOX_STAGE, KEYPOINT_STAGE, GESTURE_STAGE)}


def stage_for(task: str) -> StageTask:
    """The stage of ``TASK``; refuses an unknown one, naming the known ones."""
    if task not in STAGES:
        raise ValueError(f"TASK must be one of {sorted(STAGES)}, got {task!r}")
    return STAGES[task]
