"""Files in, files out, with a deterministic face detector (a face = a red patch)."""

import numpy as np
import pytest

from fomm_space import AnimationOptions, InputError
from fomm_space.crop import Box, crop, face_square, largest
from fomm_space.pipeline import animate_files, crop_video_file, cropped_frames
from fomm_space.video import probe, read_frames

from .conftest import write_video

RED = (255, 0, 0)


def canvas(h=120, w=160):
    return np.full((h, w, 3), 110, np.uint8)


def paint(image, box, colour=RED):
    left, top, right, bottom = box
    image[top:bottom, left:right] = colour
    return image


def save_photo(path, image):
    from PIL import Image

    Image.fromarray(image).save(path)
    return path


@pytest.fixture()
def photo(tmp_path):
    """A face (red patch 30 wide, 40 high) touching the photo's left border."""
    return save_photo(tmp_path / "photo.png", paint(canvas(), (0, 30, 30, 70)))


def clip_with(tmp_path, boxes, name="clip.mp4", extra=None):
    frames = []
    for t, box in enumerate(boxes):
        frame = canvas()
        if box is not None:
            paint(frame, box)
        if extra and extra[t] is not None:
            paint(frame, extra[t])
        frames.append(frame)
    return write_video(tmp_path / name, np.stack(frames))


def run(model, photo, clip, tmp_path, detector, **options):
    return animate_files(model, photo, clip, tmp_path / "out.mp4", options=AnimationOptions(**options),
                         overlay=tmp_path / "overlay.mp4", preview=tmp_path / "preview.png", detector=detector)


def test_face_at_the_border_is_cropped_square_and_padded(tiny_model, photo, tmp_path, colour_detector):
    clip = clip_with(tmp_path, [(60 + t, 40, 90 + t, 80) for t in range(8)])
    report = run(tiny_model, photo, clip, tmp_path, colour_detector)
    assert report.source_box == face_square(Box(0, 30, 30, 70), 1.8)
    assert report.source_box.left < 0  # reaches past the border: padded, not shifted or stretched
    assert report.frames == 8 and len(list(read_frames(report.output))) == 8
    assert probe(report.overlay).size == (3 * 64, 64)
    from PIL import Image
    assert Image.open(report.preview).size == (64, 64)


def test_two_faces_in_the_photo_take_the_larger(tiny_model, tmp_path, colour_detector):
    photo = save_photo(tmp_path / "two.png", paint(paint(canvas(), (10, 10, 30, 30)), (80, 40, 130, 100)))
    clip = clip_with(tmp_path, [(60, 40, 90, 80)] * 4)
    report = run(tiny_model, photo, clip, tmp_path, colour_detector)
    assert report.source_box == face_square(Box(80, 40, 130, 100), 1.8)


def test_driving_face_is_tracked_through_a_gap_with_one_steady_box(tiny_model, photo, tmp_path, colour_detector):
    main = [(20 + 2 * t, 40, 50 + 2 * t, 80) if not 4 <= t <= 7 else None for t in range(12)]
    passer = [(120, 5, 135, 20) if t < 2 else None for t in range(12)]  # a second, brief face
    clip = clip_with(tmp_path, main, extra=passer)
    report = run(tiny_model, photo, clip, tmp_path, colour_detector)
    assert report.frames == 12
    box = report.driving_box
    for face in [Box(*b) for b in main if b is not None]:
        assert box.left <= face.left + 1 and face.right <= box.right + 1
        assert box.top <= face.top + 1 and face.bottom <= box.bottom + 1
    assert not box.iou(Box(120, 5, 135, 20)) > 0.2


def test_no_face_is_a_clear_error_and_leaves_nothing(tiny_model, photo, tmp_path, colour_detector):
    empty = save_photo(tmp_path / "empty.png", canvas())
    clip = clip_with(tmp_path, [(60, 40, 90, 80)] * 3)
    with pytest.raises(InputError, match="No face found in the source photo"):
        run(tiny_model, empty, clip, tmp_path, colour_detector)
    faceless = clip_with(tmp_path, [None] * 3, name="faceless.mp4")
    with pytest.raises(InputError, match="No face found in the driving video"):
        run(tiny_model, photo, faceless, tmp_path, colour_detector)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(("out", "overlay", "preview", "."))]


def test_crop_off_takes_centre_squares_without_a_detector(tiny_model, photo, tmp_path):
    clip = clip_with(tmp_path, [None] * 3)
    report = run(tiny_model, photo, clip, tmp_path, None, crop=False)
    assert report.source_box == Box(20, 0, 140, 120) and report.driving_box == Box(20, 0, 140, 120)


def test_find_best_frame_picks_the_closest_pose(tiny_model, tmp_path, colour_detector):
    photo = save_photo(tmp_path / "p.png", paint(canvas(), (60, 30, 84, 90)))  # 24 x 60: a tall face
    widths = [40, 36, 30, 24, 30, 36, 40, 44]  # frame 3 has the photo's aspect ratio
    clip = clip_with(tmp_path, [(80 - w // 2, 30, 80 + w // 2, 90) for w in widths])
    report = run(tiny_model, photo, clip, tmp_path, colour_detector, find_best_frame=True)
    assert report.best_frame == 3 and "reference frame 3" in report.summary()
    given = run(tiny_model, photo, clip, tmp_path, colour_detector, best_frame=3)
    assert np.array_equal(np.stack(list(read_frames(report.output))), np.stack(list(read_frames(given.output))))


def test_progress_reports_each_stage(tiny_model, photo, tmp_path, colour_detector):
    clip = clip_with(tmp_path, [(60, 40, 90, 80)] * 6)
    seen = []
    animate_files(tiny_model, photo, clip, tmp_path / "o.mp4", detector=colour_detector,
                  options=AnimationOptions(find_best_frame=True),
                  progress=lambda stage, done, total: seen.append((stage, done, total)))
    assert [s for s, _, _ in seen if s == "faces"] and ("animating", 6, 6) in seen
    assert ("best frame", 6, 6) in seen
    assert all(done <= total for _, done, total in seen)


def test_crop_video_file_writes_the_tracked_face(tmp_path, colour_detector):
    clip = clip_with(tmp_path, [(60, 40, 90, 80)] * 5)
    report = crop_video_file(clip, tmp_path / "face.mp4", size=(96, 96), detector=colour_detector)
    frames = list(read_frames(report.output))
    assert len(frames) == 5 and frames[0].shape == (96, 96, 3)
    centre = frames[2][40:56, 40:56].astype(int)
    assert (centre[..., 0] > 200).all() and (centre[..., 1] < 60).all()  # the face is in the middle


def test_bad_options(tiny_model, photo, tmp_path, colour_detector):
    clip = clip_with(tmp_path, [(60, 40, 90, 80)] * 3)
    for bad, message in [({"crop_scale": 0.5}, "crop_scale"), ({"max_seconds": 0}, "max_seconds"),
                         ({"best_frame": 9}, "past the end")]:
        with pytest.raises(InputError, match=message):
            run(tiny_model, photo, clip, tmp_path, colour_detector, **bad)


def test_a_missing_output_folder_fails_first_and_leaves_nothing(tiny_model, photo, tmp_path, colour_detector):
    clip = clip_with(tmp_path, [(60, 40, 90, 80)] * 3)
    calls = []

    class Counting(type(colour_detector)):
        def detect(self, image):
            calls.append(1)
            return super().detect(image)

    with pytest.raises(InputError, match="does not exist"):
        animate_files(tiny_model, photo, clip, tmp_path / "out.mp4", overlay=tmp_path / "nope" / "kp.mp4",
                      detector=Counting())
    assert not calls  # no work done before the check
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "photo.png"]
    with pytest.raises(InputError, match="not both"):
        run(tiny_model, photo, clip, tmp_path, colour_detector, best_frame=1, find_best_frame=True)


# --- The best frame from few landmark runs, on the box already known ----------------------

def width_clip(n=120, lost=(), jump_at=None, second=None):
    """Frames with one red "face" 40 pixels high whose width grows by a pixel a frame
    (20 + t: each frame's pose differs), moving; ``lost`` frames have none, from
    ``jump_at`` it is elsewhere, and ``second`` = (first, last) frames show another
    smaller face."""
    frames = []
    for t in range(n):
        frame = np.full((140, 400, 3), 80, np.uint8)
        if t not in lost:
            x = 20 + (200 if jump_at is not None and t >= jump_at else int(30 * np.sin(t / 15)) + 40)
            frame[50:90, x:x + 20 + t] = (255, 0, 0)
        if second and second[0] <= t <= second[1]:
            frame[10:30, 360:380] = (255, 0, 0)
        frames.append(frame)
    return frames


BEST_CLIPS = {
    "moving": {},
    "lost for a while": {"lost": range(60, 90)},
    "two faces": {"second": (30, 70)},
    "jumping": {"jump_at": 60},
}


@pytest.mark.parametrize("name", list(BEST_CLIPS))
@pytest.mark.parametrize("source_width", [75, 36, 131])
def test_best_frame_agrees_with_the_exhaustive_search_from_few_landmark_runs(name, source_width, colour_detector):
    """The authors' criterion over every frame (landmarks from a fresh detection each)
    against the search: the same frame within one, from few landmark runs."""
    from fomm_space.crop import main_track, sampled_detections, track_faces
    from fomm_space.faces import closest_pose
    from fomm_space.pipeline import find_best_frame

    frames = width_clip(**BEST_CLIPS[name])
    source = np.full((140, 400, 3), 80, np.uint8)
    source[50:90, 100:100 + source_width] = (255, 0, 0)
    exhaustive = closest_pose(colour_detector.landmarks(source),
                              ((i, colour_detector.landmarks(f)) for i, f in enumerate(frames)))
    track = main_track(track_faces(sampled_detections(frames, colour_detector.detect, 10)))
    calls = []

    class Counting(type(colour_detector)):
        def landmarks(self, image, face=None):
            calls.append(face is not None)
            return super().landmarks(image, face)

    best, frame = find_best_frame(source, lambda start, stop, step: iter(frames[start:stop:step]), len(frames),
                                  Counting(), source_face=largest(colour_detector.detect(source)),
                                  faces=track.box_at)
    assert abs(best - exhaustive) <= 1, (best, exhaustive)
    assert frame is frames[best]
    if name in ("moving", "two faces"):  # every run on the box already known: no detection
        assert all(calls) and len(calls) <= 0.34 * len(frames), len(calls)
    else:  # where the face is not in its box, that frame is also searched afresh
        assert len(calls) <= 0.5 * len(frames), len(calls)


@pytest.mark.parametrize("name", list(BEST_CLIPS))
def test_a_coarse_first_look_ends_where_the_exact_search_does(name, colour_detector):
    """With cheaper, noisier landmarks for the spread-out frames (face-alignment's FAN
    in bf16), the frame chosen is still the exhaustive search's within one, and every
    frame the choice was made between was measured by the exact landmarks: the coarse
    ones only point where to look."""
    from fomm_space.crop import main_track, sampled_detections, track_faces
    from fomm_space.faces import closest_pose
    from fomm_space.pipeline import BEST_FRAME_COARSE, BEST_FRAME_RECHECK, find_best_frame

    frames = width_clip(**BEST_CLIPS[name])
    source = np.full((140, 400, 3), 80, np.uint8)
    source[50:90, 100:175] = (255, 0, 0)
    exhaustive = closest_pose(colour_detector.landmarks(source),
                              ((i, colour_detector.landmarks(f)) for i, f in enumerate(frames)))
    track = main_track(track_faces(sampled_detections(frames, colour_detector.detect, 10)))
    rng = np.random.default_rng(0)
    runs = {"coarse": [], "exact": []}

    class TwoKinds(type(colour_detector)):
        def landmarks(self, image, face=None):
            runs["exact"].append(id(image))
            return super().landmarks(image, face)

        def coarse_landmarks(self, image, face=None):  # off by about a pixel (and never found by landmarks)
            runs["coarse"].append(id(image))
            points = super().landmarks(image, face)
            return None if points is None else points + rng.normal(0, 1.0, points.shape)

    best, frame = find_best_frame(source, lambda start, stop, step: iter(frames[start:stop:step]), len(frames),
                                  TwoKinds(), source_face=largest(colour_detector.detect(source)),
                                  faces=track.box_at)
    assert abs(best - exhaustive) <= 1, (best, exhaustive)
    assert frame is frames[best]
    spread = {id(f) for f in frames[::len(frames) // BEST_FRAME_COARSE]}
    assert len(runs["coarse"]) >= BEST_FRAME_COARSE and set(runs["coarse"]) - {id(source)} <= spread
    assert len(set(runs["exact"]) & spread) == BEST_FRAME_RECHECK
    assert id(frames[best]) in set(runs["exact"]) and len(set(runs["exact"])) <= 12, len(runs["exact"])


def test_the_best_frame_search_two_runs_at_once_is_the_one_at_a_time(colour_detector):
    """A detector that takes two landmark runs at once (face-alignment's on the CPU)
    gets them in worker threads, and the search ends where one at a time does, from
    the same runs."""
    import threading

    from fomm_space.crop import main_track, sampled_detections, track_faces
    from fomm_space.pipeline import find_best_frame

    frames = width_clip(**BEST_CLIPS["lost for a while"])
    source = np.full((140, 400, 3), 80, np.uint8)
    source[50:90, 100:175] = (255, 0, 0)
    track = main_track(track_faces(sampled_detections(frames, colour_detector.detect, 10)))
    runs = {1: [], 2: []}

    def searched(workers):
        class Recording(type(colour_detector)):
            def landmarks(self, image, face=None):
                runs[workers].append((id(image), face, threading.current_thread().name))
                return super().landmarks(image, face)

        detector = Recording()
        detector.workers = workers
        return find_best_frame(source, lambda start, stop, step: iter(frames[start:stop:step]), len(frames),
                               detector, source_face=largest(colour_detector.detect(source)), faces=track.box_at)

    assert searched(1)[0] == searched(2)[0]
    assert sorted((i, repr(f)) for i, f, _ in runs[1]) == sorted((i, repr(f)) for i, f, _ in runs[2])
    assert all(r[2] == threading.current_thread().name for r in runs[1])
    in_workers = [r[2].startswith("fomm-landmarks") for r in runs[2]]  # (a run alone stays in the caller's)
    assert sum(in_workers) >= 0.8 * len(in_workers), in_workers


def test_on_long_clips_the_best_frame_search_holds_few_frames(colour_detector):
    """Coarse frames at most BEST_FRAME_MAX_STEP apart, so that the window read around
    the best one stays under twice that, whatever the clip's length."""
    from fomm_space.pipeline import BEST_FRAME_MAX_STEP, find_best_frame

    frames = width_clip(n=120)
    asked = []

    def read(start, stop, step):
        asked.append((start, stop, step))
        return (frames[i % 120] for i in range(start, stop, step))

    source = np.full((140, 400, 3), 80, np.uint8)
    source[50:90, 100:175] = (255, 0, 0)
    find_best_frame(source, read, 3000, colour_detector)
    (coarse, window) = asked
    assert coarse[2] == BEST_FRAME_MAX_STEP and window[2] == 1
    assert window[1] - window[0] < 2 * BEST_FRAME_MAX_STEP


def test_a_writer_failing_behind_the_engine_leaves_no_output(tiny_model, photo, tmp_path, colour_detector,
                                                             monkeypatch):
    """An encoder failing in the write-behind thread (a full disk, a dead ffmpeg) ends
    the run with that error, and no file is left half-written."""
    from fomm_space.video import VideoWriter

    clip = clip_with(tmp_path, [(60, 40, 90, 80)] * 8)
    real = VideoWriter.write

    def write(self, frame):
        if self.frames == 5:
            raise InputError("No space left on the disk.")
        real(self, frame)

    monkeypatch.setattr(VideoWriter, "write", write)
    with pytest.raises(InputError, match="No space left"):
        animate_files(tiny_model, photo, clip, tmp_path / "out.mp4", overlay=tmp_path / "kp.mp4",
                      detector=colour_detector, options=AnimationOptions(batch_size=2))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "photo.png"]


@pytest.mark.parametrize("box", [Box(20, 10, 100, 90), Box(-30, -20, 70, 80), Box(100, 50, 190, 140)],
                         ids=["inside", "past-top-left", "past-bottom-right"])
def test_driving_crops_cut_by_ffmpeg_are_the_whole_frames_crops(tmp_path, box):
    clip = clip_with(tmp_path, [(10 + 5 * t, 20, 50 + 5 * t, 60) for t in range(9)])
    whole = [crop(frame, box, (64, 64)) for frame in read_frames(clip)]
    cut = list(cropped_frames(clip, probe(clip), box, (64, 64), max_frames=9))
    assert len(cut) == 9 and all(np.abs(a.astype(int) - b).max() <= 1 for a, b in zip(cut, whole))
    assert all(np.array_equal(a, b) for a, b in zip(cropped_frames(clip, probe(clip), box, (64, 64), 8, step=3,
                                                                   start=2), cut[2:8:3]))


@pytest.mark.parametrize("precision", ["bf16", "fp32"])
def test_a_request_runs_the_face_networks_beside_the_models_precision(precision, tiny_files, face_weights,
                                                                     tmp_path):
    """Without a detector given, a request takes face-alignment's at the model's
    precision: beside a bf16 model S3FD and the best-frame search's first look run in
    bf16 and the landmarks that decide in fp32; beside an fp32 model all in fp32."""
    import torch

    import fomm_space
    from fomm_space.faces import face_detector

    config, checkpoint = tiny_files
    model = fomm_space.load_model(config=config, checkpoint=checkpoint, device="cpu", precision=precision)
    detector = face_detector("cpu", "sfd", precision)
    seen = set()
    hooks = []
    for kind, net in (("s3fd", detector._fa.face_detector.face_detector), ("fan", detector._fa.face_alignment_net)):
        conv = next(m for m in net.modules() if isinstance(m, torch.nn.Conv2d))
        hooks.append(conv.register_forward_hook(lambda m, i, o, kind=kind: seen.add((kind, o.dtype))))
    photo = save_photo(tmp_path / "photo.png", canvas(240, 320))
    clip = write_video(tmp_path / "clip.mp4", np.stack([canvas(240, 320)] * 40))
    try:
        report = animate_files(model, photo, clip, tmp_path / "out.mp4",
                               options=AnimationOptions(find_best_frame=True, max_seconds=4))
    finally:
        for h in hooks:
            h.remove()
    assert report.frames == 40 and report.best_frame is not None
    if precision == "bf16":
        assert seen == {("s3fd", torch.bfloat16), ("fan", torch.bfloat16), ("fan", torch.float32)}
    else:
        assert seen == {("s3fd", torch.float32), ("fan", torch.float32)}


def test_the_source_keypoints_are_found_once_a_request(tiny_model, photo, tmp_path, monkeypatch):
    """The overlay's source keypoints are the engine's own: one keypoint run on the photo."""
    networks = tiny_model.networks
    single = []
    real = networks.keypoints

    def counted(images):
        if images.shape[0] == 1:
            single.append(images)
        return real(images)

    monkeypatch.setattr(networks, "keypoints", counted)  # a method, not a submodule: undone cleanly
    run(tiny_model, photo, clip_with(tmp_path, [None] * 6), tmp_path, None, crop=False, batch_size=4)
    assert len(single) == 1
