"""Make the README's screenshots of the web demo, at a desktop and a phone width.

    python docs/screenshots.py [--out docs]

Serves ``app.py`` with the tiny test checkpoint (so the animation itself is noise) on a
free loopback port, runs the "Drawn face, talking" example in Chromium (Playwright,
``/usr/bin/chromium``) and writes ``screenshot-1280.png`` and ``screenshot-390.png``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.serve import served_app  # noqa: E402
TINY = ROOT / "tests" / "data" / "parity" / "tiny-vox"
WIDTHS = (1280, 390)


def main() -> None:
    from playwright.sync_api import sync_playwright

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work, served_app(
            ["--config", TINY / "config.yaml", "--checkpoint", TINY / "checkpoint.pth.tar", "--device", "cpu"],
            work, {"GRADIO_TEMP_DIR": str(Path(work) / "tmp")}) as (url, _), sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium") or "/usr/bin/chromium",
                                    args=["--no-sandbox", "--disable-gpu"])
        for width in WIDTHS:
            page = browser.new_page(viewport={"width": width, "height": 900})
            page.goto(url)
            page.get_by_text("Drawn face, talking").click()
            page.wait_for_function("() => document.querySelector('#status textarea').value.includes('frames at')",
                                   timeout=300_000)
            page.wait_for_timeout(1000)
            target = args.out / f"screenshot-{width}.png"
            page.screenshot(path=str(target), full_page=True)
            print(f"wrote {target}")
        browser.close()


if __name__ == "__main__":
    main()
