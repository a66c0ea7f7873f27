"""Live sessions (fomm_space.live): the photo moved by frames pushed one at a time."""

import numpy as np
import pytest

from fomm_space import AnimationOptions, InputError, LiveSession
from fomm_space.live import pose_distance

PLAIN = AnimationOptions(crop=False, paste_back=False, ai_mark=False, smoothing=0.0)


def frames(n, seed=0, shape=(64, 64, 3)):
    """Random camera frames; at the tiny model's 64x64, the centred crop is the frame itself."""
    rng = np.random.default_rng(seed)
    return [(rng.random(shape) * 255).astype(np.uint8) for _ in range(n)]


def test_frames_in_frames_out_and_the_first_is_the_reference(tiny_model):
    photo = frames(1, seed=1, shape=(64, 64, 3))[0]
    live = LiveSession(tiny_model, photo, PLAIN)
    outs = [live.push(f) for f in frames(5)]
    assert all(o.shape == (64, 64, 3) and o.dtype == np.uint8 for o in outs)
    assert live.reference_frame == 0 and live.frames == 5
    # The same frames through the video path give the same pictures (relative motion from frame 0).
    video = tiny_model.animate(photo, np.stack(frames(5)), relative=True, adapt_scale=True, batch_size=1)
    assert np.abs(np.stack(outs).astype(int) - np.round(video * 255).astype(int)).max() <= 1
    assert np.isfinite(live.ms_per_frame) and np.isfinite(live.frames_per_second)


def test_reset_takes_the_next_frame_as_reference(tiny_model):
    live = LiveSession(tiny_model, frames(1, seed=1)[0], PLAIN)
    for f in frames(3):
        live.push(f)
    live.reset()
    live.push(frames(1, seed=5)[0])
    assert live.reference_frame == 3


def test_match_pose_picks_the_frame_closest_to_the_photo(tiny_model):
    photo = frames(1, seed=1, shape=(64, 64, 3))[0]
    live = LiveSession(tiny_model, photo, PLAIN)
    live.push(frames(1, seed=9)[0])
    window = frames(6, seed=3)
    live.match_pose(len(window))
    for f in window:
        live.push(f)
    source_kp = tiny_model.detect_keypoints([photo])["value"][0].numpy()
    distances = [pose_distance(tiny_model.detect_keypoints([f])["value"][0].numpy(), source_kp) for f in window]
    assert live.reference_frame == 1 + int(np.argmin(distances))
    live.push(frames(1, seed=4)[0])  # the window is over: the reference stays
    assert live.reference_frame == 1 + int(np.argmin(distances))


def red_patch_frame(x, y, size=24, shape=(120, 160)):
    frame = np.full((*shape, 3), 90, np.uint8)
    frame[y:y + size, x:x + size] = (255, 0, 0)
    return frame


def test_the_camera_face_is_followed_with_a_steady_square(tiny_model, colour_detector):
    options = AnimationOptions(crop=True, crop_scale=1.5, paste_back=False, ai_mark=False)
    live = LiveSession(tiny_model, red_patch_frame(40, 40, shape=(96, 128)), options, detector=colour_detector,
                           redetect_every=2)
    live.push(red_patch_frame(30, 40))
    first = live.box
    assert first is not None and abs(first.center[0] - 42) < 2 and abs(first.center[1] - 52) < 2
    for i in range(8):  # one pixel of jitter: the square stays where it is
        live.push(red_patch_frame(30 + i % 2, 40))
        live._pending and live._pending.result()
    assert live.box == first
    for _ in range(8):  # the face moved far: the square follows (checked in the background)
        live.push(red_patch_frame(110, 70))
        live._pending and live._pending.result()
    assert abs(live.box.center[0] - 122) < 2 and abs(live.box.center[1] - 82) < 2
    live.close()


def test_paste_back_gives_the_whole_photo(tiny_model):
    photo = frames(1, seed=2, shape=(96, 128, 3))[0]
    live = LiveSession(tiny_model, photo, AnimationOptions(crop=False, ai_mark=True))
    out = live.push(frames(1)[0])
    assert out.shape == photo.shape
    assert np.array_equal(out[:, :10], photo[:, :10])  # outside the pasted square: the photo's own


def test_bad_inputs_are_our_errors(tiny_model):
    with pytest.raises(InputError, match="uint8 RGB"):
        LiveSession(tiny_model, np.zeros((10, 10), np.uint8), PLAIN)
    with pytest.raises(InputError, match="AVD"):
        LiveSession(tiny_model, frames(1)[0], AnimationOptions(crop=False, avd=True))
    live = LiveSession(tiny_model, frames(1)[0], PLAIN)
    with pytest.raises(InputError, match="camera frame"):
        live.push(np.zeros((10, 10), np.uint8))
    with pytest.raises(InputError, match="uint8"):  # a float frame is not guessed at
        live.push(np.zeros((10, 10, 3), np.float32))


def test_live_sessions_smooth_by_default(tiny_model, colour_detector):
    from fomm_space import LIVE_DEFAULTS

    live = LiveSession(tiny_model, red_patch_frame(40, 40), detector=colour_detector)
    assert live.options == LIVE_DEFAULTS and live.options.smoothing > 0
