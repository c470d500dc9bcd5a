"""``DATASET.FORMAT`` as the user may write it, and the keys that depend on it.

'COCO' means 'coco' (an unknown format is refused with the list by ``common.config_values``).
On the COCO path ``DATASET.TEST_SET`` (test or val: which file to predict) and
``TEST.USE_GT_BBOX`` are read, so they are not reported as compatibility keys there.
"""

from __future__ import annotations

from collections.abc import Mapping

from yacs.config import CfgNode

from common.errors import ConfigError

DATASET_FORMATS = ("csv", "coco")
COCO_READ_KEYS = ("DATASET.TEST_SET", "TEST.USE_GT_BBOX")
COCO_TEST_SETS = ("test", "val")


def normalise_dataset_format(cfg: CfgNode) -> None:
    """A known format in any case becomes its lower-case name (before the choice check)."""
    if str(cfg.DATASET.FORMAT).lower() in DATASET_FORMATS:
        cfg.DATASET.FORMAT = str(cfg.DATASET.FORMAT).lower()


def format_compat_keys(cfg: CfgNode, compat: Mapping[str, str]) -> dict[str, str]:
    """The compatibility keys that mean nothing for this config's format; a COCO
    ``DATASET.TEST_SET`` other than test or val is refused."""
    if cfg.DATASET.FORMAT != "coco":
        return dict(compat)
    if cfg.DATASET.TEST_SET not in COCO_TEST_SETS:
        raise ConfigError(f"DATASET.TEST_SET is {cfg.DATASET.TEST_SET!r}: with DATASET.FORMAT "
                          f"coco expected one of {list(COCO_TEST_SETS)} (TEST_JSON or VAL_JSON)")
    return {key: instead for key, instead in compat.items() if key not in COCO_READ_KEYS}
