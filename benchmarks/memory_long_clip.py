"""Resident memory of the CLI animating a long, large driving clip (tiny parity model).

    python benchmarks/memory_long_clip.py [--minutes 10] [--size 1280x720] [--crop]

Makes a clip with sound (ffmpeg test pattern), runs ``python -m fomm_space animate``
on it with an overlay, and samples the process's RSS twice a second. Bounded memory
shows as an RSS that stops growing after the first seconds. ``--crop`` needs
face-alignment's weights in $TORCH_HOME/hub/checkpoints.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fomm_space.video import ffmpeg_exe  # noqa: E402


def rss_mib(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status", encoding="utf-8") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--fps", type=int, default=25)
    parser.add_argument("--crop", action="store_true", help="crop faces (default: centred squares)")
    args = parser.parse_args()
    seconds = args.minutes * 60
    tiny = ROOT / "tests" / "data" / "parity" / "tiny-vox"
    with tempfile.TemporaryDirectory() as tmp:
        clip, photo = Path(tmp) / "long.mp4", Path(tmp) / "photo.png"
        t0 = time.perf_counter()
        subprocess.run([ffmpeg_exe(), "-loglevel", "error", "-f", "lavfi", "-i",
                        f"testsrc2=size={args.size}:rate={args.fps}:duration={seconds}", "-f", "lavfi", "-i",
                        f"sine=frequency=330:duration={seconds}", "-c:v", "libx264", "-preset", "ultrafast",
                        "-pix_fmt", "yuv420p", "-c:a", "aac", str(clip)], check=True)
        subprocess.run([ffmpeg_exe(), "-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=size=640x480",
                        "-frames:v", "1", str(photo)], check=True)
        print(f"made a {args.minutes:g}-minute {args.size} clip ({clip.stat().st_size / 2**20:.0f} MiB) "
              f"in {time.perf_counter() - t0:.0f} s")
        cmd = [sys.executable, "-m", "fomm_space", "animate", "--source", str(photo), "--driving", str(clip),
               "--output", str(Path(tmp) / "out.mp4"), "--overlay", str(Path(tmp) / "kp.mp4"),
               "--config", str(tiny / "config.yaml"), "--checkpoint", str(tiny / "checkpoint.pth.tar"),
               "--device", "cpu", "--max-seconds", str(seconds + 1), "--crop" if args.crop else "--no-crop"]
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        samples: list[tuple[float, float]] = []
        while proc.poll() is None:
            rss = rss_mib(proc.pid)
            if rss is not None:
                samples.append((time.perf_counter() - t0, rss))
            time.sleep(0.5)
        out, err = proc.communicate()
        if proc.returncode != 0:
            sys.exit(f"the CLI failed: {err.strip()[-500:]}")
        print(out.strip())
        print(f"wall {time.perf_counter() - t0:.0f} s; RSS of the CLI process (MiB):")
        for frac in (0.1, 0.25, 0.5, 0.75, 1.0):
            t, rss = samples[min(len(samples) - 1, int(frac * (len(samples) - 1)))]
            print(f"  at {t:6.0f} s ({frac:4.0%} of the run): {rss:7.1f}")
        print(f"  peak: {max(r for _, r in samples):.1f}")


if __name__ == "__main__":
    main()
