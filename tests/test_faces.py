"""face-alignment's own code with weight files the tests make, and the best-frame search."""

import numpy as np
import pytest

from fomm_space.errors import ModelNotFoundError
from fomm_space.faces import FaceAlignmentDetector, closest_pose, face_detector, normalize_landmarks


def test_face_alignment_runs_with_local_weights(face_weights):
    detector = face_detector("cpu")
    assert face_detector("cpu") is detector  # created once, reused
    image = (np.random.default_rng(0).random((300, 420, 3)) * 255).astype(np.uint8)
    boxes = detector.detect(image)
    assert boxes, "the rigged detector scores every anchor as a face"
    for b in boxes:
        assert 0 <= b.left < b.right <= 420 and 0 <= b.top < b.bottom <= 300
    points = detector.landmarks(image)
    assert points.shape == (68, 2) and np.isfinite(points).all()


def test_large_images_are_detected_downscaled_in_their_own_pixels(face_weights):
    detector = face_detector("cpu")
    small = (np.random.default_rng(1).random((240, 320, 3)) * 255).astype(np.uint8)
    big = np.repeat(np.repeat(small, 4, axis=0), 4, axis=1)  # 960x1280 -> detected at 480x640
    boxes = detector.detect(big)
    assert boxes and max(b.right for b in boxes) > 640  # boxes in the big image's pixels


def test_missing_weights_offline_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(ModelNotFoundError, match=r"crop=False") as info:
        FaceAlignmentDetector("cpu")
    assert str(tmp_path / "hub" / "checkpoints") in str(info.value)
    # Each reader gets the advice in its own terms.
    assert info.value.render("cli").endswith("turn face cropping off (--no-crop).")
    assert info.value.render("page").endswith("untick Crop faces.")


def test_normalized_landmarks_ignore_position_and_size():
    rng = np.random.default_rng(0)
    points = rng.random((68, 2)) * 50
    moved = points * 3.5 + [100, -20]
    assert np.allclose(normalize_landmarks(points), normalize_landmarks(moved))
    assert normalize_landmarks(np.zeros((68, 2))) is None


def test_closest_pose_skips_frames_without_a_face():
    t = np.linspace(0, 2 * np.pi, 68, endpoint=False)

    def ellipse(w, h, x=0.0):
        return np.stack([x + w * np.cos(t), h * np.sin(t)], axis=1)

    source = ellipse(10, 20)
    frames = [(0, ellipse(20, 20)), (1, None), (2, ellipse(31, 60, x=400)), (3, ellipse(10, 40)),
              (4, np.zeros((68, 2)))]
    assert closest_pose(source, frames) == 2
    assert closest_pose(source, [(0, None)]) is None


def test_landmarks_on_a_known_box_skip_detection_and_warm_up_runs_both_networks(face_weights):
    from fomm_space.crop import Box

    detector = face_detector("cpu")
    runs = {"detect": 0, "fan": 0}
    real_detect, real_fan = detector._fa.face_detector.detect_from_image, detector._fa.face_alignment_net

    def detect(image):
        runs["detect"] += 1
        return real_detect(image)

    def fan(x):
        runs["fan"] += 1
        return real_fan(x)

    detector._fa.face_detector.detect_from_image, detector._fa.face_alignment_net = detect, fan
    try:
        image = (np.random.default_rng(2).random((200, 200, 3)) * 255).astype(np.uint8)
        points = detector.landmarks(image, Box(40, 40, 160, 160))
        assert points.shape == (68, 2) and runs == {"detect": 0, "fan": 1}
        detector.warm_up()
        assert runs == {"detect": 1, "fan": 2}
    finally:
        detector._fa.face_detector.detect_from_image, detector._fa.face_alignment_net = real_detect, real_fan


def test_on_the_cpu_the_networks_run_channels_last_with_the_same_results(face_weights):
    import torch

    from fomm_space.crop import Box

    detector = FaceAlignmentDetector("cpu")
    assert detector.workers == (2 if torch.get_num_threads() >= 2 else 1)  # landmark runs at once (each_at_once)
    nets = (detector._fa.face_detector.face_detector, detector._fa.face_alignment_net)
    for net in nets:  # every convolution's weights
        assert all(p.is_contiguous(memory_format=torch.channels_last) for p in net.parameters() if p.dim() == 4)
    image = (np.random.default_rng(3).random((240, 320, 3)) * 255).astype(np.uint8)
    boxes, points = detector.detect(image), detector.landmarks(image, Box(60, 40, 220, 200))
    for net in nets:
        net.to(memory_format=torch.contiguous_format)
    assert [b.as_ints() for b in detector.detect(image)] == [b.as_ints() for b in boxes]
    assert np.abs(detector.landmarks(image, Box(60, 40, 220, 200)) - points).max() < 1e-3


def test_at_bf16_s3fd_and_the_coarse_landmarks_run_in_bf16_and_the_landmarks_in_fp32(face_weights):
    import torch

    from fomm_space.crop import Box
    from fomm_space.errors import InputError
    from fomm_space.faces import face_precision

    assert face_precision(torch.bfloat16) == "bf16" and face_precision(torch.float16) == "fp32"
    with pytest.raises(InputError, match="fp32, bf16"):
        FaceAlignmentDetector("cpu", precision="fp16")
    exact = face_detector("cpu")
    detector = face_detector("cpu", "sfd", "bf16")
    assert detector is not exact and face_detector("cpu", "sfd", "bf16") is detector
    assert exact.coarse_landmarks is None  # at fp32 there is no cheaper look
    seen = []

    def record(module, inputs, output):
        seen.append((module.kind, output.dtype))

    hooks = []
    for kind, net in (("s3fd", detector._fa.face_detector.face_detector), ("fan", detector._fa.face_alignment_net)):
        conv = next(m for m in net.modules() if isinstance(m, torch.nn.Conv2d))
        conv.kind = kind
        hooks.append(conv.register_forward_hook(record))
    try:
        image = (np.random.default_rng(4).random((240, 320, 3)) * 255).astype(np.uint8)
        boxes = detector.detect(image)
        assert seen == [("s3fd", torch.bfloat16)]
        # The rigged heads score fixed anchors: the same boxes as at fp32.
        assert [b.as_ints() for b in boxes] == [b.as_ints() for b in exact.detect(image)]
        seen.clear()
        points = detector.landmarks(image, Box(60, 40, 220, 200))
        assert seen == [("fan", torch.float32)] and points.shape == (68, 2)
        seen.clear()
        coarse = detector.coarse_landmarks(image, Box(60, 40, 220, 200))
        assert seen == [("fan", torch.bfloat16)] and coarse.shape == (68, 2) and np.isfinite(coarse).all()
        seen.clear()
        detector.warm_up()  # both kinds of FAN run, their first runs out of a request's way
        assert set(seen) == {("s3fd", torch.bfloat16), ("fan", torch.float32), ("fan", torch.bfloat16)}
    finally:
        for h in hooks:
            h.remove()


def test_s3fd_in_bf16_moves_its_outputs_less_than_a_jpeg_round_trip():
    """On S3FD with random weights scaled so that each convolution's output has unit
    spread on a drawn face (as trained weights keep activations in range), bf16 moves
    the face scores and the box offsets less than saving the picture as a JPEG of
    quality 95 does."""
    from benchmarks.bench_faces import calibrated_s3fd, deviations, drawn_scenes

    scenes = drawn_scenes(2, (120, 200))
    net = calibrated_s3fd(scenes[:1])
    for scene in scenes:
        bf16, jpeg = deviations(net, scene)
        for what in ("score", "offset"):
            assert bf16[what] < 0.7 * jpeg[what], (what, bf16, jpeg)
