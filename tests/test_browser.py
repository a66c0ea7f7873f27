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
def browser_page(url):
    """A chromium page with the demo at ``url`` open."""
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1100})
            page.goto(url)
            yield page
        finally:
            browser.close()


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
        "() => document.querySelector('#status textarea').value.includes('frames')", timeout=30_000)
    status = page.locator("#status textarea").input_value()
    assert "75 frames at 25 fps" in status
    assert page.locator("#overlay video").count() == 1
    shot = Path(os.environ.get("FOMM_SCREENSHOT") or tmp_path / "page.png")
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000


def test_clicking_an_example_animates_it(page):
    page.get_by_text("Examples (drawn by this project").wait_for(timeout=30_000)
    page.locator("table tbody tr").first.click()
    page.wait_for_function(
        "() => { const v = document.querySelector('#result video');"
        " return v !== null && !!v.currentSrc; }", timeout=180_000)
    assert page.locator("#source img").count() == 1  # the example photo was filled in


def test_upscaling_choice_follows_paste_back(page):
    page.get_by_text("Advanced").click()
    lanczos = page.locator("#upscale input[value=lanczos]")
    lanczos.wait_for(timeout=30_000)
    assert lanczos.is_enabled()
    page.locator("#paste-back input[type=checkbox]").uncheck()
    page.wait_for_function("() => document.querySelector('#upscale input[value=lanczos]').disabled",
                           timeout=10_000)
    page.locator("#paste-back input[type=checkbox]").check()
    page.wait_for_function("() => !document.querySelector('#upscale input[value=lanczos]').disabled",
                           timeout=10_000)


@pytest.fixture(scope="module")
def two_family_url(tiny_files, tiny_tps_files, face_weights):
    """The demo serving a FOMM and a TPSMM checkpoint from local files."""
    import app

    args = app.parse_args(["--config", str(tiny_files[0]), "--checkpoint", str(tiny_files[1]),
                           "--config", str(tiny_tps_files[0]), "--checkpoint", str(tiny_tps_files[1]),
                           "--device", "cpu"])
    args.port = None
    demo = app.build_demo(args)
    app.launch(demo, args, prevent_thread_lock=True, quiet=True)
    yield demo.local_url
    demo.close()


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
            "() => document.querySelector('#status textarea').value.includes('frames')", timeout=180_000)
        assert page.locator("#result video").count() == 1
        assert "frames at" in page.locator("#status textarea").input_value()
