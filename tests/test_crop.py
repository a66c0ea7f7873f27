"""Crop geometry and face tracking, on synthetic boxes and images."""

import numpy as np
import pytest

from fomm_space.crop import (Box, CropWindow, FaceTrack, center_box, crop, detection_stride, face_square, largest, main_track,
                             stable_box, track_faces)


def test_box_geometry():
    a, b = Box(0, 0, 10, 10), Box(5, 0, 15, 10)
    assert a.iou(b) == pytest.approx(50 / 150)
    assert a.iou(Box(20, 20, 30, 30)) == 0
    assert a.union(b) == Box(0, 0, 15, 10)
    assert Box(0, 0, 10, 4).square() == Box(0, -3, 10, 7)
    assert face_square(Box(10, 10, 30, 40), 2.0) == Box(-10, -5, 50, 55)
    assert Box(-5, -5, 400, 20).clipped(100, 200) == Box(0, 0, 200, 20)
    assert largest([a, Box(0, 0, 3, 3), Box(0, 0, 20, 20)]) == Box(0, 0, 20, 20)
    assert largest([]) is None
    assert center_box(100, 60) == Box(0, 20, 60, 80)


def test_crop_inside_is_a_resized_cut():
    image = np.zeros((100, 120, 3), np.uint8)
    image[20:60, 30:70] = 200
    out = crop(image, Box(30, 20, 70, 60), (16, 16))
    assert out.shape == (16, 16, 3) and out.dtype == np.uint8
    assert (out == 200).all()


def test_crop_past_the_border_repeats_edges_and_does_not_stretch():
    image = np.zeros((50, 50, 3), np.uint8)
    image[:, :25] = 255  # left half white
    box = Box(-50, 0, 50, 100)  # twice the image wide, half of it left of the image
    out = crop(image, box, (100, 100))
    # the left 75 columns are white (50 padding + 25 image), no shrinking of the image half
    assert (out[:, :74] == 255).all() and (out[:, 76:] == 0).all()
    far = crop(image, Box(500, 500, 520, 520), (8, 8))  # wholly outside: the corner pixel repeated
    assert far.shape == (8, 8, 3) and (far == 0).all()


@pytest.mark.parametrize("box", [Box(10, 5, 40, 35), Box(-7, -3, 23, 27), Box(30, 20, 70, 60), Box(-90, 5, -60, 35),
                                 Box(2.4, 1.6, 49.5, 47.5)], ids=["inside", "top-left", "bottom-right", "outside",
                                                                 "fractional"])
def test_a_crop_window_is_the_part_inside_and_the_edges_repeated(box):
    image = np.random.default_rng(1).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    window = CropWindow.of(box, 40, 50)
    left, top, right, bottom = window.region
    assert 0 <= left < right <= 50 and 0 <= top < bottom <= 40
    pads = window.pads
    b_left, b_top, b_right, b_bottom = box.as_ints()
    assert min(pads) >= 0 and (bottom - top) + pads[0] + pads[1] == b_bottom - b_top
    assert (right - left) + pads[2] + pads[3] == b_right - b_left
    # the same pixels as indexing with the box's rows and columns clipped to the image
    rows, cols = np.clip(np.arange(b_top, b_bottom), 0, 39), np.clip(np.arange(b_left, b_right), 0, 49)
    assert np.array_equal(window.finish(window.cut(image), (b_bottom - b_top, b_right - b_left)),
                          image[np.ix_(rows, cols)])
    exact, fixed = crop(image, box, (16, 16)), window.finish(window.cut(image), (16, 16), fixed_point=True)
    assert np.abs(exact.astype(int) - fixed).max() <= 1


def test_two_faces_are_two_tracks_and_the_steady_one_wins():
    still = Box(10, 10, 50, 50)
    passing = [Box(100 + 5 * t, 10, 130 + 5 * t, 40) for t in range(10)]
    detections = [(t, [still, passing[t]] if t < 4 else [still]) for t in range(10)]
    tracks = track_faces(detections)
    assert len(tracks) == 2
    assert main_track(tracks).boxes == [still] * 10


def test_face_lost_mid_clip_keeps_its_track():
    boxes = [Box(10 + t, 10, 50 + t, 50) for t in range(10)]
    detections = [(t, [] if 3 <= t <= 6 else [boxes[t]]) for t in range(10)]
    tracks = track_faces(detections)
    assert len(tracks) == 1 and tracks[0].frames == [0, 1, 2, 7, 8, 9]


def test_a_far_jump_starts_a_new_track():
    detections = [(0, [Box(0, 0, 10, 10)]), (1, [Box(100, 100, 110, 110)])]
    assert len(track_faces(detections)) == 2
    assert main_track([]) is None


def test_stable_box_holds_the_moving_face_and_keeps_scale_for_a_still_one():
    still = FaceTrack([0, 1], [Box(10, 10, 50, 50)] * 2)
    assert stable_box(still, 1.8) == Box(30 - 36, 30 - 36, 30 + 36, 30 + 36)
    moving = FaceTrack(list(range(5)), [Box(10 + 40 * t, 10, 50 + 40 * t, 50) for t in range(5)])
    box = stable_box(moving, 1.8)
    for face in moving.boxes:
        assert box.left <= face.left and face.right <= box.right
        assert box.top <= face.top and face.bottom <= box.bottom
    assert box.width == box.height


def test_detection_stride():
    assert detection_stride(None, 100) == 1
    assert detection_stride(80, 100) == 1
    assert detection_stride(1000, 100) == 10
    assert detection_stride(1001, 100) == 11


# --- The face track from fewer detections ---------------------------------------------------

def patch_clip(positions, size=20, shape=(90, 160)):
    """Frames with a pure-red square patch ("a face") at each frame's (x, y) positions
    (a list of them per frame; empty: no face)."""
    frames = []
    for spots in positions:
        frame = np.full((*shape, 3), 80, np.uint8)
        for x, y, s in spots:
            frame[y:y + s, x:x + s] = (255, 0, 0)
        frames.append(frame)
    return frames


class Counting:
    def __init__(self, detector):
        self.detector, self.calls = detector, 0

    def detect(self, image):
        self.calls += 1
        return self.detector.detect(image)


CLIPS = {
    "moving": [[(int(60 + 40 * np.sin(2 * np.pi * t / 90)), 30, 20)] for t in range(90)],
    "lost for a while": [[(50 + t // 6, 30, 20)] if not 30 <= t < 60 else [] for t in range(90)],
    "two faces": [[(20, 20, 30)] + ([(110, 50, 12)] if 20 <= t < 40 else []) for t in range(90)],
    "jumping": [[(10, 30, 20)] if t < 47 else [(125, 40, 20)] for t in range(90)],
}


@pytest.mark.parametrize("max_stride", [10, 30])
@pytest.mark.parametrize("name", list(CLIPS))
def test_the_sampled_track_gives_the_exhaustive_box_from_fewer_detections(name, max_stride, colour_detector):
    from fomm_space.crop import sampled_detections, stable_box, track_faces

    frames = patch_clip(CLIPS[name])
    every = main_track(track_faces((i, colour_detector.detect(f)) for i, f in enumerate(frames)))
    counting = Counting(colour_detector)
    # 3 a second at 30 fps, and (30) thinning out to 1 a second while the face holds still
    sampled = list(sampled_detections(frames, counting.detect, stride=10, max_stride=max_stride))
    assert [i for i, _ in sampled] == sorted({i for i, _ in sampled})  # in frame order, each once
    track = main_track(track_faces(sampled))
    assert stable_box(track, 1.8).iou(stable_box(every, 1.8)) >= 0.9
    assert counting.calls <= 0.4 * len(frames), counting.calls
    if name == "jumping":  # the jump is pinned to its frame
        seen = {i for i, _ in sampled}
        assert {46, 47} <= seen


def test_a_steady_face_thins_the_detections_out_and_a_move_sets_them_back(colour_detector):
    from fomm_space.crop import sampled_detections, stable_box, track_faces

    moving = [[(40 + 3 * t, 30, 20)] for t in range(30)]  # 3 px a frame: 10 frames apart overlap < 0.8
    frames = patch_clip([[(40, 30, 20)]] * 150 + moving + [[(130, 30, 20)]] * 60, shape=(90, 200))
    counting = Counting(colour_detector)
    sampled = list(sampled_detections(frames, counting.detect, stride=10, max_stride=40))
    seen = [i for i, _ in sampled]
    assert seen[:5] == [0, 10, 30, 70, 110]  # doubling while still, at most 40 apart
    assert seen[-1] == len(frames) - 1
    after = [i for i in seen if i > 190]
    assert after[0] - 190 == 10  # the move found at 190 sets the step back to 10
    every = main_track(track_faces((i, colour_detector.detect(f)) for i, f in enumerate(frames)))
    track = main_track(track_faces(sampled))
    assert stable_box(track, 1.8).iou(stable_box(every, 1.8)) >= 0.9
    assert counting.calls <= 0.2 * len(frames), counting.calls


def test_sampled_detections_look_at_the_last_frame_and_stride_one_is_every_frame(colour_detector):
    from fomm_space.crop import sampled_detections

    frames = patch_clip([[(10, 10, 10)]] * 25)
    assert [i for i, _ in sampled_detections(frames, colour_detector.detect, 10)] == [0, 10, 20, 24]
    assert [i for i, _ in sampled_detections(frames, colour_detector.detect, 1)] == list(range(25))


def test_the_main_face_is_the_one_seen_longest_not_most_often():
    from fomm_space.crop import FaceTrack

    long, dense = FaceTrack(), FaceTrack()
    for i in (0, 30, 60, 90):  # seen across the clip, sparsely (the face held still)
        long.add(i, Box(10, 10, 30, 30))
    for i in range(91, 100):  # seen often at the end (detections bisecting a change)
        dense.add(i, Box(100, 10, 140, 50))
    assert main_track([dense, long]) is long


def test_resizing_is_torchs_antialiased_bilinear_rounded():
    import torch
    import torch.nn.functional as F

    from fomm_space.frames import resize

    image = np.random.default_rng(0).integers(0, 256, (300, 500, 3), dtype=np.uint8)
    float_path = F.interpolate(torch.from_numpy(image).permute(2, 0, 1)[None].float(), size=(128, 200),
                               mode="bilinear", align_corners=False, antialias=True)
    expected = float_path[0].permute(1, 2, 0).clamp(0, 255).round().numpy()
    out = resize(image, (128, 200))
    assert out.dtype == np.uint8 and out.shape == (128, 200, 3) and out.flags.c_contiguous
    assert np.array_equal(out, expected)
    assert resize(image[::2], (75, 125)).shape == (75, 125, 3)  # a strided view
    fixed = resize(image, (128, 200), fixed_point=True)  # torch's uint8 kernel: within 1, most pixels equal
    assert fixed.dtype == np.uint8 and fixed.flags.c_contiguous
    assert np.abs(fixed.astype(int) - expected).max() <= 1 and (fixed == expected).mean() > 0.8
    assert np.array_equal(resize(np.ascontiguousarray(image[::2]), (75, 125), fixed_point=True),
                          resize(image[::2], (75, 125), fixed_point=True))
