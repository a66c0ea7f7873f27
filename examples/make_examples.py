"""Draw the example photo and driving clips (made by this project; public domain, CC0).

    python examples/make_examples.py

Writes face.png (a drawn face, 256x256) and nod.mp4 / talk.mp4 (a drawn face that
nods and turns, and one that talks, 256x256, 25 fps, 3 s; talk.mp4 with a tone).
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from fomm_space.video import VideoWriter, ffmpeg_exe  # noqa: E402

SIZE = 256


def draw_face(dx: float = 0.0, dy: float = 0.0, mouth: float = 0.2, blink: float = 0.0, tilt: float = 0.0,
              skin=(236, 196, 160), hair=(70, 45, 30), background=(120, 160, 200)) -> np.ndarray:
    """A front-facing drawn face; dx, dy move it, mouth and blink in [0, 1], tilt in degrees."""
    img = Image.new("RGB", (SIZE, SIZE), background)
    d = ImageDraw.Draw(img)
    cx, cy = SIZE / 2 + dx, SIZE / 2 + 10 + dy
    d.ellipse([cx - 78, cy - 110, cx + 78, cy + 20], fill=hair)                 # hair
    d.rectangle([cx - 30, cy + 60, cx + 30, SIZE], fill=skin)                  # neck
    d.ellipse([cx - 65, cy - 85, cx + 65, cy + 85], fill=skin)                 # face
    for side in (-1, 1):
        ex = cx + side * 26
        h = max(1.0, 9 * (1 - blink))
        d.ellipse([ex - 12, cy - 20 - h, ex + 12, cy - 20 + h], fill=(255, 255, 255))
        d.ellipse([ex - 5 + dx / 20, cy - 20 - min(h, 5), ex + 5 + dx / 20, cy - 20 + min(h, 5)], fill=(40, 30, 20))
        d.line([ex - 14, cy - 40, ex + 14, cy - 42 - 3 * side * tilt / 10], fill=hair, width=4)  # brows
    d.polygon([(cx, cy - 10), (cx - 8, cy + 15), (cx + 8, cy + 15)], fill=(214, 170, 136))     # nose
    d.ellipse([cx - 24, cy + 35 - 4, cx + 24, cy + 35 + 4 + 22 * mouth], fill=(150, 50, 60))   # mouth
    return np.asarray(img.rotate(tilt, resample=Image.BICUBIC, fillcolor=background))


def write_clip(path: Path, frames: list[np.ndarray], sound: bool) -> None:
    silent = path.with_suffix(".silent.mp4")
    with VideoWriter(silent, 25) as writer:
        for frame in frames:
            writer.write(frame)
    if sound:
        subprocess.run([ffmpeg_exe(), "-y", "-loglevel", "error", "-i", str(silent), "-f", "lavfi", "-i",
                        "sine=frequency=220:duration=3", "-c:v", "copy", "-c:a", "aac", "-shortest", str(path)],
                       check=True)
        silent.unlink()
    else:
        silent.replace(path)


def main() -> None:
    Image.fromarray(draw_face(skin=(224, 178, 140), hair=(30, 25, 20), background=(200, 190, 170))).save(
        HERE / "face.png")
    n = 75
    nod = [draw_face(dx=18 * math.sin(2 * math.pi * t / n), dy=8 * math.sin(4 * math.pi * t / n),
                     tilt=6 * math.sin(2 * math.pi * t / n), blink=1.0 if t % 30 in (0, 1) else 0.0)
           for t in range(n)]
    talk = [draw_face(mouth=0.5 + 0.5 * math.sin(2 * math.pi * t / 8), dy=2 * math.sin(2 * math.pi * t / 25))
            for t in range(n)]
    write_clip(HERE / "nod.mp4", nod, sound=False)
    write_clip(HERE / "talk.mp4", talk, sound=True)


if __name__ == "__main__":
    main()
