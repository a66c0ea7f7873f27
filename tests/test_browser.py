"""The web demo in a real browser: Debian's chromium driven by Playwright."""

import os
import shutil
from contextlib import contextmanager
from pathlib import Path

import pytest

sync_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM),
                                reason="chromium is not installed (apt-get install chromium)")


@contextmanager
def browser_page(url, width=1280, height=1100):
    """A chromium page with the demo at ``url`` open, ``width`` CSS pixels wide."""
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.goto(url)
            yield page
        finally:
            browser.close()


@contextmanager
def served_app(args, cwd, env=None):
    """``python app.py ARGS --device cpu`` in a process of its own; yields its URL."""
    from benchmarks.serve import served_app as serve

    with serve([*args, "--device", "cpu"], cwd, env) as (url, _):
        yield url


@pytest.fixture
def page(app_url):
    with browser_page(app_url) as page:
        yield page


def test_upload_animate_and_see_the_result(page, tmp_path):
    page.locator("#source input[type=file]").set_input_files(str(EXAMPLES / "face.png"))
    page.locator("#driving input[type=file]").set_input_files(str(EXAMPLES / "talk.mp4"))
    page.locator("#source img").wait_for(timeout=30_000)
    page.locator("#driving video").wait_for(timeout=30_000)
    page.locator("#animate").click()
    page.wait_for_function(
        "() => { const v = document.querySelector('#result video');"
        " return v !== null && !!v.currentSrc; }", timeout=180_000)
    page.wait_for_function(
        "() => document.querySelector('#status textarea').value.includes('frames at')", timeout=30_000)
    status = page.locator("#status textarea").input_value()
    assert "75 frames at 25 fps" in status
    assert page.locator("#overlay video").count() == 1
    shot = Path(os.environ.get("FOMM_SCREENSHOT") or tmp_path / "page.png")
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000


def test_clicking_an_example_animates_it(page):
    page.get_by_text("Examples (drawn by this project").wait_for(timeout=30_000)
    page.get_by_text("Drawn face, nodding").click()
    page.wait_for_function(
        "() => { const v = document.querySelector('#result video');"
        " return v !== null && !!v.currentSrc; }", timeout=180_000)
    assert page.locator("#source img").count() == 1  # the example photo was filled in


@pytest.mark.parametrize("toggle, settings", [
    ("#paste-back input[type=checkbox]", "#upscale input[value=lanczos]"),
    ("#toggles label:has-text('Crop faces') input", "#face-detector input[value=blazeface], #crop-scale input[type=range]"),
], ids=["upscaling follows paste-back", "crop settings follow crop faces"])
def test_settings_are_active_only_with_their_toggle(page, toggle, settings):
    disabled = "(q) => [...document.querySelectorAll(q)].every(e => e.disabled)"
    enabled = "(q) => [...document.querySelectorAll(q)].every(e => !e.disabled)"
    page.get_by_text("Advanced").click()
    page.locator(settings).first.wait_for(timeout=30_000)
    assert page.evaluate(enabled, settings)
    page.locator(toggle).uncheck()
    page.wait_for_function(disabled, arg=settings, timeout=10_000)
    page.locator(toggle).check()
    page.wait_for_function(enabled, arg=settings, timeout=10_000)


@pytest.fixture(scope="module")
def two_family_url(tiny_files, tiny_tps_files, face_weights):
    """The demo serving a FOMM and a TPSMM checkpoint from local files."""
    from benchmarks.serve import app_in_process

    with app_in_process(["--config", tiny_files[0], "--checkpoint", tiny_files[1], "--config", tiny_tps_files[0],
                         "--checkpoint", tiny_tps_files[1], "--device", "cpu"]) as demo:
        yield demo.local_url


def test_pick_a_tpsmm_model_and_get_a_video(two_family_url):
    with browser_page(two_family_url) as page:
        avd = page.locator("#avd")
        page.locator("#model input").wait_for(timeout=30_000)
        assert not avd.is_visible()  # FOMM first: no AVD mode
        page.locator("#model input").click()
        page.get_by_role("option", name="TPSMM · checkpoint.pth.tar (2) (local)").click()
        avd.wait_for(state="visible", timeout=10_000)
        avd.locator("input[type=checkbox]").check()
        page.locator("#source input[type=file]").set_input_files(str(EXAMPLES / "face.png"))
        page.locator("#driving input[type=file]").set_input_files(str(EXAMPLES / "nod.mp4"))
        page.locator("#source img").wait_for(timeout=30_000)
        page.locator("#driving video").wait_for(timeout=30_000)
        page.get_by_label("Crop faces").uncheck()
        page.locator("#animate").click()
        page.wait_for_function(
            "() => document.querySelector('#status textarea').value.includes('frames at')", timeout=180_000)
        assert page.locator("#result video").count() == 1
        assert "frames at" in page.locator("#status textarea").input_value()


def upload_both(page, driving="talk.mp4"):
    page.locator("#source input[type=file]").set_input_files(str(EXAMPLES / "face.png"))
    page.locator("#driving input[type=file]").set_input_files(str(EXAMPLES / driving))
    page.locator("#source img").wait_for(timeout=30_000)
    page.locator("#driving video").wait_for(timeout=30_000)


# What is cut or hidden: the text of an element wider than its box, an element outside the
# page's width or outside the box of the component it belongs to.
LAYOUT_PROBLEMS = """() => {
  const problems = [];
  const vw = document.documentElement.clientWidth;
  const model = document.querySelector('#model input');
  const arrow = document.querySelector('#model svg');
  const textEnd = model.getBoundingClientRect().right - parseFloat(getComputedStyle(model).paddingRight);
  if (arrow && textEnd > arrow.getBoundingClientRect().left + 1) problems.push('model text under the arrow');
  for (const box of document.querySelectorAll('#toggles label')) {
    const text = box.querySelector('span');
    if (!text || box.offsetParent === null) continue;  // hidden (the AVD toggle for FOMM)
    const r = text.getBoundingClientRect();
    if (r.width < 20 || text.scrollWidth > text.clientWidth + 1 || r.right > vw + 1)
      problems.push('toggle label cut: ' + text.textContent);
  }
  for (const name of ['Drawn face, nodding', 'Drawn face, talking']) {
    const el = [...document.querySelectorAll('button')].find(b => b.textContent.trim() === name);
    if (!el) { problems.push('example not named: ' + name); continue; }
    const r = el.getBoundingClientRect();
    if (r.right > vw + 1 || r.left < -1) problems.push('example cut: ' + name);
  }
  const driving = document.querySelector('#driving').getBoundingClientRect();
  for (const b of document.querySelectorAll('#driving button')) {
    const r = b.getBoundingClientRect();
    if (r.width === 0) continue;
    if (r.bottom > driving.bottom + 1 || r.top < driving.top - 1 || r.right > driving.right + 1)
      problems.push('driving button cut: ' + (b.getAttribute('aria-label') || b.textContent.trim()));
  }
  return problems;
}"""


# The Live tab's toggles, the same way.
LIVE_LAYOUT_PROBLEMS = """() => {
  const problems = [];
  const vw = document.documentElement.clientWidth;
  for (const box of document.querySelectorAll('#live-toggles label')) {
    const text = box.querySelector('span');
    if (!text || box.offsetParent === null) continue;
    const r = text.getBoundingClientRect();
    if (r.width < 20 || text.scrollWidth > text.clientWidth + 1 || r.right > vw + 1 || r.height > 3 * 24)
      problems.push('toggle label cut: ' + text.textContent);
  }
  return problems;
}"""


@pytest.mark.parametrize("width", [1280, 390])
def test_nothing_is_cut_at_desktop_and_phone_widths(app_url, width):
    with browser_page(app_url, width=width, height=900) as page:
        page.locator("#animate").wait_for(timeout=30_000)
        upload_both(page)
        page.wait_for_timeout(500)
        assert page.evaluate(LAYOUT_PROBLEMS) == []
        page.get_by_role("tab", name="Live").click()
        page.locator("#live-start").wait_for(timeout=30_000)
        assert page.locator("#live-toggles label").count() == 4
        assert page.evaluate(LIVE_LAYOUT_PROBLEMS) == []


def test_a_long_model_name_ends_before_the_dropdowns_arrow_on_a_phone(face_weights):
    """The published models' names (an app with no local checkpoint: nothing is
    downloaded until a model is used) at 390 px."""
    from benchmarks.serve import app_in_process

    with app_in_process(["--device", "cpu"]) as demo, browser_page(demo.local_url, width=390, height=900) as page:
        page.locator("#animate").wait_for(timeout=30_000)
        assert "VoxCeleb" in page.locator("#model input").input_value()
        assert page.evaluate(LAYOUT_PROBLEMS) == []


def test_stop_says_the_run_was_stopped_and_its_files_deleted(app_demo, app_url, tmp_path):
    import numpy as np

    from tests.conftest import write_video

    rng = np.random.default_rng(3)
    long = write_video(tmp_path / "long.mp4", (rng.random((400, 64, 80, 3)) * 255).astype(np.uint8))
    before = set(app_demo.fomm_runs.root.glob("run-*"))
    with browser_page(app_url) as page:
        page.locator("#source input[type=file]").set_input_files(str(EXAMPLES / "face.png"))
        page.locator("#driving input[type=file]").set_input_files(str(long))
        page.locator("#source img").wait_for(timeout=30_000)
        page.locator("#driving video").wait_for(timeout=30_000)
        page.get_by_label("Crop faces").uncheck()
        page.locator("#animate").click()
        page.wait_for_function("() => document.querySelector('#status textarea').value.includes('Animating')",
                               timeout=120_000)
        page.locator("#stop").click()
        page.wait_for_function("() => document.querySelector('#status textarea').value.startsWith('Stopped')",
                               timeout=30_000)
        assert page.locator("#status textarea").input_value() == "Stopped; its files were deleted."
    deadline = __import__("time").monotonic() + 10
    while set(app_demo.fomm_runs.root.glob("run-*")) != before:
        assert __import__("time").monotonic() < deadline, "the stopped run's folder is still there"
        __import__("time").sleep(0.2)


def test_an_error_is_shown_whole_as_plain_text_with_advice_for_the_page(tiny_files, tmp_path):
    """face-alignment's weights missing (an empty TORCH_HOME, no network): the message
    has a "<urlopen error ...>" in it, and its advice is to untick Crop faces."""
    empty = tmp_path / "torch-home"
    empty.mkdir()
    args = ["--config", tiny_files[0], "--checkpoint", tiny_files[1]]
    with served_app(args, tmp_path, env={"TORCH_HOME": str(empty)}) as url, browser_page(url) as page:
        upload_both(page)
        assert page.get_by_label("Crop faces").is_checked()
        page.locator("#animate").click()
        advice = page.get_by_text("untick Crop faces", exact=False)
        advice.first.wait_for(timeout=120_000)
        text = page.evaluate("() => document.body.innerText")
        assert "Face detection needs face-alignment's weights" in text
        assert "<urlopen error" in text  # shown as text, not swallowed as an HTML tag
        assert "--no-crop" not in text
        # Long after the toast has gone, the status still says it, and no output is left.
        page.wait_for_timeout(30_000)
        status = page.locator("#status textarea").input_value()
        assert status.startswith("Failed: Face detection needs face-alignment's weights"), status
        assert "untick Crop faces" in status and "<urlopen error" in status
        assert page.locator("#result video").count() == 0


def test_a_restart_with_another_model_recomputes_the_example(tiny_files, tiny_tps_files, tmp_path):
    """The lazily cached examples belong to the model that made them: the same example,
    after a restart with another checkpoint in the same folder, is computed anew."""
    import urllib.request

    videos = []
    for config, checkpoint in (tiny_files, tiny_tps_files):
        with served_app(["--config", config, "--checkpoint", checkpoint], tmp_path,
                        {"GRADIO_EXAMPLES_CACHE": str(tmp_path / "examples")}) as url, \
                browser_page(url) as page:
            page.get_by_text("Drawn face, nodding").click()
            page.wait_for_function("() => { const v = document.querySelector('#result video');"
                                   " return v !== null && !!v.currentSrc; }", timeout=180_000)
            src = page.evaluate("() => document.querySelector('#result video').currentSrc")
            with urllib.request.urlopen(src, timeout=30) as answer:
                videos.append(answer.read())
    assert videos[0] != videos[1]
    assert len([p for p in (tmp_path / "examples").iterdir() if p.is_dir()]) == 2


# --- Live: the webcam, from a fake camera fed by a synthetic clip ---------------------------

def camera_clip(path, moving, frames=50, size=(160, 120)):
    """A y4m clip for Chromium's fake camera: a drawn face (a skin disc with dark eyes)
    that slides from side to side, or stands still."""
    import subprocess

    import numpy as np

    from fomm_space.video import ffmpeg_exe

    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    data = bytearray()
    for t in range(frames):
        cx = w / 2 + (25 * np.sin(2 * np.pi * t / frames) if moving else 0)
        frame = np.full((h, w, 3), (70, 110, 160), np.uint8)
        frame[(xx - cx) ** 2 + (yy - h / 2) ** 2 < 40 ** 2] = (230, 190, 160)
        for ex in (-14, 14):
            frame[(xx - cx - ex) ** 2 + (yy - h / 2 + 10) ** 2 < 5 ** 2] = (30, 20, 20)
        data += frame.tobytes()
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}",
                    "-r", "25", "-i", "-", "-pix_fmt", "yuv420p", str(path)], input=bytes(data), check=True)
    return path


@contextmanager
def camera_browser(clip):
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-video-capture={clip}"])
        try:
            yield browser
        finally:
            browser.close()


# Counts the Animated image's new pictures for `ms` and the mean absolute difference of each
# from the one before (drawn into a canvas), and the red and blue means of the last one.
WATCH_OUTPUT = """async (ms) => {
  const img = () => document.querySelector('#live-out img');
  const canvas = document.createElement('canvas');
  const ctx = canvas.getContext('2d', {willReadFrequently: true});
  const pixels = async (src) => {
    const im = new Image(); im.src = src; await im.decode();
    canvas.width = 64; canvas.height = 64; ctx.drawImage(im, 0, 0, 64, 64);
    return ctx.getImageData(0, 0, 64, 64).data;
  };
  let last = null, lastSrc = null, count = 0, red = 0, blue = 0;
  const diffs = [];
  const t0 = performance.now();
  while (performance.now() - t0 < ms) {
    const el = img();
    if (el && el.src && el.src !== lastSrc) {
      lastSrc = el.src; count += 1;
      const px = await pixels(el.src);
      if (last) { let d = 0; for (let i = 0; i < px.length; i += 4) d += Math.abs(px[i] - last[i]) +
                  Math.abs(px[i + 1] - last[i + 1]) + Math.abs(px[i + 2] - last[i + 2]);
                  diffs.push(d / (px.length / 4 * 3)); }
      red = 0; blue = 0; for (let i = 0; i < px.length; i += 4) { red += px[i]; blue += px[i + 2]; }
      red /= px.length / 4; blue /= px.length / 4;
      last = px;
    }
    await new Promise(r => setTimeout(r, 5));
  }
  return {count, diffs, red, blue, seconds: (performance.now() - t0) / 1000};
}"""


def start_live(page, photo):
    page.get_by_role("tab", name="Live").click()
    page.locator("#live-photo input[type=file]").set_input_files(str(photo))
    page.locator("#live-photo img").wait_for(timeout=30_000)
    page.locator("#live-crop input[type=checkbox]").uncheck()
    page.locator("#live-start").click()
    page.wait_for_function("() => document.querySelector('#live-status textarea').value.startsWith('Ready')",
                           timeout=60_000)
    page.locator("#live-camera").get_by_text("Click to Access Webcam").click()
    page.locator("#live-camera button:has-text('Record')").click()
    page.locator("#live-out img").wait_for(timeout=60_000)


def live_frame(page):
    """The frame counter of the Live status line."""
    return int(page.locator("#live-status textarea").input_value().split("frame ")[1].split(" ")[0])


def coloured_photo(path, rgb):
    import imageio.v3 as iio
    import numpy as np

    photo = np.zeros((96, 128, 3), np.uint8)
    photo[:] = rgb
    photo[30:70, 44:84] = (230, 190, 160)
    iio.imwrite(path, photo)
    return path


@pytest.mark.parametrize("moving", [True, False], ids=["moving", "still"])
def test_live_follows_the_camera_and_reset_works(app_url, tmp_path, moving):
    clip = camera_clip(tmp_path / "camera.y4m", moving)
    with camera_browser(clip) as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 1100})
        page.goto(app_url)
        start_live(page, coloured_photo(tmp_path / "photo.png", (200, 60, 60)))
        page.wait_for_timeout(1500)  # past the first frames (and the smoothing's settling)
        first = live_frame(page)
        seen = page.evaluate(WATCH_OUTPUT, 5000)
        served = live_frame(page) - first
        print(f"live in the browser ({'moving' if moving else 'still'} camera): {served} frames animated and "
              f"{seen['count']} new pictures shown in {seen['seconds']:.1f} s, {seen['count'] / seen['seconds']:.1f} "
              f"pictures/s; status: {page.locator('#live-status textarea').input_value()}")
        assert served >= 10  # the server animates frame after frame
        # Nothing of Gradio's covers the picture's corner, where its "AI-generated" mark is.
        assert page.evaluate("() => [...document.querySelectorAll('#live-out .progress-text')]"
                             ".every(e => e.offsetParent === null)")
        if moving:
            diffs = sorted(seen["diffs"])
            assert seen["count"] >= 10 and diffs[len(diffs) // 2] > 0.5, seen  # the output moves with the face
        else:
            assert seen["count"] <= 2, seen  # and stays when it does not: the same picture, not sent again
        before = page.locator("#live-status textarea").input_value()
        reference = int(before.split("reference frame ")[1].split(" ")[0])
        page.locator("#live-reset").click()
        page.wait_for_function(
            "(r) => { const m = document.querySelector('#live-status textarea').value.match(/reference frame (\\d+)/);"
            " return m !== null && parseInt(m[1]) > r; }", arg=reference, timeout=30_000)


def test_two_live_pages_keep_their_own_photos(app_url, tmp_path):
    clip = camera_clip(tmp_path / "camera.y4m", moving=True)
    with camera_browser(clip) as browser:
        pages = []
        for n, (name, rgb) in enumerate((("red", (220, 40, 40)), ("blue", (40, 40, 220)))):
            # Two visitors (a visitor holds one stream): the address a trusted proxy names.
            page = browser.new_context(viewport={"width": 1280, "height": 1100},
                                       extra_http_headers={"X-Forwarded-For": f"10.0.0.{n + 1}"}).new_page()
            page.goto(app_url)
            start_live(page, coloured_photo(tmp_path / f"{name}.png", rgb))
            pages.append(page)
        red, blue = (page.evaluate(WATCH_OUTPUT, 2000) for page in pages)
        assert red["count"] > 0 and blue["count"] > 0
        assert red["red"] > red["blue"] + 50 and blue["blue"] > blue["red"] + 50, (red, blue)
