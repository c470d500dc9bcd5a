"""Video as video: track ids across frames (two crossing people keep two ids, through frames
in which one is hidden), the One Euro filter's jitter and lag, and people pictures with one
colour per person, faint unsure joints and a legend."""

from __future__ import annotations

import numpy as np
import pytest

from common.keypoints import load_keypoint_set
from common.smoothing import OneEuroFilter, OneEuroSettings, PoseSmoother
from common.synthetic.crossing import crossing_video, simulated_detections
from common.tracking import PeopleTracker, TrackerSettings, track_people
from common.visualize import STRIP_HEIGHT, draw_people, person_colour

SIGMAS = load_keypoint_set("motion24").sigmas


def _jitter(errors: np.ndarray) -> float:
    """RMS frame-to-frame change of the error (T, J, 2), px."""
    return float(np.sqrt((np.linalg.norm(np.diff(errors, axis=0), axis=-1) ** 2).mean()))


@pytest.mark.parametrize("smooth", [False, True])
def test_two_crossing_people_keep_two_track_ids(smooth):
    video = crossing_video(frames=48, width=480, height=270, seed=3)
    found = simulated_detections(video, noise=0.06, miss_iou=0.5, seed=3)
    frames = np.array([f for f, *_ in found])
    behind = {f for f, person, *_ in found if person == 1}
    hidden = [f for f in range(48) if f not in behind]
    assert len(hidden) >= 2 and max(hidden) - min(hidden) == len(hidden) - 1  # one gap
    tracker = PeopleTracker(SIGMAS, smoothing=OneEuroSettings() if smooth else None,
                            fps=video.fps)
    ids, points = track_people(tracker, frames, np.array([b for _, _, b, _, _ in found]),
                               np.array([k for *_, k, _ in found]),
                               np.array([s for *_, s in found]))
    people = np.array([person for _, person, *_ in found])
    assert set(ids[people == 0]) == {1} and set(ids[people == 1]) == {2}
    assert points.shape == (len(found), 24, 2) and np.isfinite(points).all()
    # The boxes really cross: the left person ends on the right.
    boxes = video.boxes()
    assert boxes[0, 0, 0] < boxes[0, 1, 0] and boxes[-1, 0, 0] > boxes[-1, 1, 0]


def test_a_track_survives_max_missed_frames_and_no_more():
    tracker = PeopleTracker(SIGMAS, TrackerSettings(max_missed=2))
    box, points = np.array([[10.0, 10, 50, 100]]), np.full((1, 24, 2), 40.0)
    scores = np.ones((1, 24))
    assert tracker.update(0, box, points, scores)[0].tolist() == [1]
    assert tracker.update(3, box, points, scores)[0].tolist() == [1]  # 1, 2 missed
    assert tracker.update(7, box, points, scores)[0].tolist() == [2]  # 4, 5, 6 missed: new id
    assert tracker.update(8, box + [300, 0, 0, 0], points + [300, 0], scores)[0].tolist() == [3]
    with pytest.raises(ValueError, match="in order"):
        tracker.update(8, box, points, scores)


def test_the_filter_lowers_jitter_on_a_noisy_constant_velocity_track():
    rng = np.random.default_rng(0)
    pose = rng.uniform(0, 120, (24, 2))
    smoother = PoseSmoother(OneEuroSettings())
    truth, raw, smooth = [], [], []
    for frame in range(100):  # 8 px a frame to the right, limbs waving slowly
        true = pose + [8.0 * frame, 0.0] + 6 * np.sin(frame / 8) * (np.arange(24)[:, None] % 3 == 0)
        seen = true + rng.normal(0.0, 3.0, true.shape)
        truth.append(true)
        raw.append(seen)
        smooth.append(smoother(seen, frame / 25, 150.0))
    raw_error, smooth_error = np.array(raw) - truth, np.array(smooth) - truth
    assert _jitter(raw_error) == pytest.approx(2 * 3.0, rel=0.1)  # 2 x the sd, in 2-D
    assert _jitter(smooth_error) < 0.45 * _jitter(raw_error)
    lag = -smooth_error[10:, :, 0].mean()  # behind the motion, px
    assert abs(lag) < 0.5
    rmse = [np.sqrt((error[10:] ** 2).sum(-1).mean()) for error in (smooth_error, raw_error)]
    assert rmse[0] < rmse[1]


def test_the_filter_lag_on_a_step_stays_bounded():
    one_euro = OneEuroFilter(OneEuroSettings())
    left = []
    for frame in range(20):
        point = np.array([[0.0, 0.0]]) if frame < 5 else np.array([[50.0, 0.0]])
        left.append(50.0 - one_euro(point, frame / 25, 100.0)[0, 0])
    assert left[:5] == [50.0] * 5
    assert left[5] < 0.4 * 50  # the step's frame already goes most of the way
    assert left[7] < 0.05 * 50 and max(left[9:]) < 0.01 * 50
    assert min(left) >= -1e-9  # no overshoot
    whole = PoseSmoother(OneEuroSettings())  # a whole-body jump has no lag at all
    pose = np.random.default_rng(1).uniform(0, 50, (24, 2))
    whole(pose, 0.0, 100.0)
    np.testing.assert_allclose(whole(pose + 80.0, 0.04, 100.0), pose + 80.0)


@pytest.mark.parametrize("values", [(0.0, 1.0, 1.0), (1.0, -1.0, 1.0), (1.0, 1.0, float("nan"))])
def test_filter_settings_refuse_bad_values(values):
    with pytest.raises(ValueError, match="One Euro"):
        OneEuroSettings(*values)


def test_people_pictures_colour_each_person_and_fade_unsure_joints():
    image = np.full((200, 320, 3), 128, np.uint8)
    pose = np.array([[60.0 + 4 * j, 40.0 + 5 * j] for j in range(24)])
    scores = np.ones(24)
    scores[-1] = 0.1
    picture = draw_people(image, [(1, pose, scores, None), (2, pose + [150, 0], np.ones(24),
                                                          np.array([200.0, 30, 80, 150]))], 0.3)
    assert picture.shape[1] == 320 and picture.shape[0] in (200 + STRIP_HEIGHT,
                                                             200 + 2 * STRIP_HEIGHT)
    assert person_colour(1) != person_colour(2) and person_colour(11) == person_colour(1)
    sure = picture[int(pose[5, 1]), int(pose[5, 0])].astype(int)
    unsure = picture[int(pose[-1, 1]), int(pose[-1, 0])].astype(int)
    assert np.abs(sure - person_colour(1)).max() < 60  # opaque (anti-aliased at its centre)
    assert np.abs(unsure - 128).max() > 5 and np.abs(unsure - person_colour(1)).max() > 40
    assert (picture[32, 202] == person_colour(2)).all() or \
        (picture[30, 200] == person_colour(2)).all()  # the box
    assert (picture[200:] != 128).any()  # the legend below the picture
