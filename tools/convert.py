"""Convert between the competition layout and COCO person-keypoints files.

python tools/convert.py csv2coco --csv data/motion/train_df.csv \
    --images data/motion/images/train_imgs --out data/motion/annotations/train.json
python tools/convert.py coco2csv --json train.json --out train_df.csv

csv2coco takes the keypoint names from the CSV header (and the skeleton and sigmas from the
built-in set with those names, or from ``--keypoints``); boxes are the keypoint extents.
coco2csv needs one person per image, every keypoint labelled (a CSV has no visibility, so an
unlabelled v = 0 keypoint would become a real point at (0, 0)). Image names are kept exactly,
so CSV -> COCO -> CSV gives the same file.
"""

from __future__ import annotations

import csv
from pathlib import Path

import _bootstrap  # noqa: F401

from common.cli import ToolParser, run_tool
from common.coco import read_coco_json, write_json
from common.coco_convert import coco_to_table, csv_to_coco, keypoint_set_for_names
from common.keypoints import names_from_columns
from common.motion_data import DataFormatError, check_utf8, write_keypoint_csv


def _csv_header(path: Path) -> list[str]:
    if not path.is_file():
        raise DataFormatError(f"keypoint CSV not found: {path}")
    check_utf8(path)
    with open(path, newline="", encoding="utf-8-sig") as handle:
        header = next(csv.reader(handle), [])
    return [name.strip() for name in header]


def main(argv: list[str] | None = None) -> int:
    parser = ToolParser(description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    to_coco = commands.add_parser("csv2coco", help="keypoint CSV + images -> COCO file")
    to_coco.add_argument("--csv", type=Path, required=True)
    to_coco.add_argument("--images", type=Path, required=True, help="folder of the CSV's images")
    to_coco.add_argument("--out", type=Path, required=True)
    to_coco.add_argument("--keypoints", default="", help="keypoint set name or YAML file")
    to_csv = commands.add_parser("coco2csv", help="COCO file (one person per image) -> CSV")
    to_csv.add_argument("--json", type=Path, required=True)
    to_csv.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.command == "csv2coco":
        header = _csv_header(args.csv)
        try:
            names = names_from_columns(header)
        except ValueError as error:
            raise DataFormatError(f"{args.csv}: {error}") from None
        kp_set = keypoint_set_for_names(names, args.keypoints or None)
        data = csv_to_coco(args.csv, args.images, names, kp_set)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        write_json(args.out, data)
        print(f"wrote {args.out}: {len(data['images'])} images, keypoint set {kp_set.name}")
    else:
        names, images, keypoints = coco_to_table(read_coco_json(args.json), str(args.json))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        write_keypoint_csv(args.out, images, keypoints, names)
        print(f"wrote {args.out}: {len(images)} images, {len(names)} keypoints")
    return 0


if __name__ == "__main__":
    run_tool(main)
