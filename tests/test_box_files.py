"""Box files (test_annotation.pkl): round trips in plain types, reference-style pickles
accepted, bad and malicious ones refused by name."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from common.box_files import read_box_annotations, write_box_annotations
from common.motion_data import DataFormatError

NAMES = ["001-1-1-01-Z17_A-0000001.jpg", "001-1-1-01-Z17_A-0000003.jpg"]


def _record(name: str, bbox: list[float]) -> dict:
    return {
        "filename": name,
        "bbox": bbox,
        "width": 1920,
        "height": 1080,
        "area": bbox[2] * bbox[3],
    }


def test_box_round_trip_gives_plain_types(tmp_path: Path) -> None:
    records = [
        {**_record(NAMES[0], [1.0, 2.0, 3.0, 4.0]), "bbox": np.float32([1, 2, 3, 4])},
        _record(NAMES[1], [10.5, 20.0, 30.0, 40.0]),
    ]
    path = tmp_path / "annotations" / "test_annotation.pkl"
    write_box_annotations(path, records)
    with open(path, "rb") as handle:
        raw = pickle.load(handle)  # our own file: check it holds no numpy
    assert type(raw[0]["bbox"][0]) is float
    boxes = read_box_annotations(path, expected_filenames=NAMES)
    assert boxes[NAMES[0]]["bbox"] == [1.0, 2.0, 3.0, 4.0]
    assert boxes[NAMES[1]]["area"] == 1200.0 and boxes[NAMES[1]]["width"] == 1920


@pytest.mark.parametrize("protocol", [2, 5])
def test_reference_style_numpy_pickle_is_accepted(tmp_path: Path, protocol: int) -> None:
    """Stage one of the reference wrote float32 numpy values; those must load."""
    bbox = np.array([100.0, 50.0, 300.0, 600.0], dtype=np.float32)
    records = [
        {
            "filename": NAMES[0],
            "bbox": [bbox[0], bbox[1], bbox[2], bbox[3]],
            "width": 1920,
            "height": 1080,
            "area": bbox[2] * bbox[3],
        },
        {
            "filename": NAMES[1],
            "bbox": bbox,
            "width": np.int64(1920),
            "height": 1080,
            "area": np.float64(180000.0),
        },
    ]
    path = tmp_path / "test_annotation.pkl"
    path.write_bytes(pickle.dumps(records, protocol=protocol))
    boxes = read_box_annotations(path)
    assert boxes[NAMES[0]]["bbox"] == [100.0, 50.0, 300.0, 600.0]
    assert boxes[NAMES[1]]["width"] == 1920 and isinstance(boxes[NAMES[1]]["area"], float)


def test_zero_area_box_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "test_annotation.pkl"
    write_box_annotations(path, [_record(NAMES[0], [5.0, 5.0, 0.0, 10.0])])
    with pytest.raises(DataFormatError, match=r"test_annotation\.pkl: record 0 .*0000001\.jpg"):
        read_box_annotations(path)
    write_box_annotations(path, [_record(NAMES[0], [5.0, 5.0, 10.0, -3.0])])
    with pytest.raises(DataFormatError, match="zero or negative size"):
        read_box_annotations(path)
    write_box_annotations(path, [_record(NAMES[0], [5.0, float("nan"), 10.0, 3.0])])
    with pytest.raises(DataFormatError, match="4 finite numbers"):
        read_box_annotations(path)


def test_missing_and_unknown_records_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "test_annotation.pkl"
    write_box_annotations(path, [_record(NAMES[0], [1.0, 1.0, 5.0, 5.0])])
    with pytest.raises(DataFormatError) as error:
        read_box_annotations(path, expected_filenames=NAMES)
    message = str(error.value)
    assert "1 test images have no box record" in message and NAMES[1] in message
    assert "run tools/test.py on a box config (stage one) to write it" in message
    write_box_annotations(
        path, [_record("other.jpg", [1.0, 1.0, 5.0, 5.0]), _record(NAMES[0], [1.0, 1.0, 5.0, 5.0])]
    )
    with pytest.raises(DataFormatError, match=r"not in the test set: 'other\.jpg'"):
        read_box_annotations(path, expected_filenames=[NAMES[0]])


def test_bad_records_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "boxes.pkl"
    path.write_bytes(pickle.dumps([{"filename": NAMES[0], "bbox": [1, 2, 3, 4]}]))
    with pytest.raises(DataFormatError, match=r"record 0: missing fields \['width', 'height'"):
        read_box_annotations(path)
    record = _record(NAMES[0], [1.0, 1.0, 5.0, 5.0])
    path.write_bytes(pickle.dumps([record, dict(record)]))
    with pytest.raises(DataFormatError, match="record 1: duplicated filename"):
        read_box_annotations(path)
    path.write_bytes(pickle.dumps({"not": "a list"}))
    with pytest.raises(DataFormatError, match="expected a list"):
        read_box_annotations(path)
    with pytest.raises(DataFormatError, match="run tools/test.py"):
        read_box_annotations(tmp_path / "absent.pkl")


class _Exploit:
    """A pickle payload that would run a shell command when loaded."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204
        import os

        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "test_annotation.pkl"
    path.write_bytes(pickle.dumps([_Exploit(marker)]))
    with pytest.raises(DataFormatError) as error:
        read_box_annotations(path)
    assert "test_annotation.pkl" in str(error.value)
    assert "refused to load global" in str(error.value)
    assert "system" in str(error.value)
    assert not marker.exists()
    # Other classes (here a plain Python object) are refused too.
    path.write_bytes(pickle.dumps([Path("x")]))
    with pytest.raises(DataFormatError, match="refused to load global 'pathlib"):
        read_box_annotations(path)
