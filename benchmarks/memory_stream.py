"""Resident memory while streaming many frames through the engine (tiny parity model).

    python benchmarks/memory_stream.py [--frames 1000]

Prints RSS after the first batch and every few hundred frames; flat numbers mean the
engine holds no per-frame state.
"""

from __future__ import annotations

import argparse
import resource
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import fomm_space  # noqa: E402


def rss_mib() -> float:
    with open("/proc/self/status", encoding="utf-8") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=1000)
    args = parser.parse_args()
    tiny = ROOT / "tests" / "data" / "parity" / "tiny-vox"
    model = fomm_space.load_model(config=tiny / "config.yaml", checkpoint=tiny / "checkpoint.pth.tar", device="cpu")
    rng = np.random.default_rng(0)
    source = (rng.random((64, 64, 3)) * 255).astype(np.uint8)

    def frames():
        for _ in range(args.frames):
            yield (rng.random((64, 64, 3)) * 255).astype(np.uint8)

    first = None
    for batch in model.stream(source, frames(), batch_size=8):
        done = batch.start + len(batch.frames)
        if first is None:
            first = rss_mib()
            print(f"after first batch: RSS {first:.1f} MiB")
        elif done % 200 == 0:
            print(f"after {done} frames: RSS {rss_mib():.1f} MiB")
    print(f"streamed {args.frames} frames: RSS {rss_mib():.1f} MiB (first batch {first:.1f} MiB)")


if __name__ == "__main__":
    main()
