"""Load test of the web demo, on loopback only, bounded in count and time.

    python benchmarks/load_test.py [--requests 50] [--clients 4] [--deadline 900]

Starts ``python app.py`` with the tiny test checkpoint on a free loopback port (its own
temporary folder, results kept 1 minute), sends the requests from concurrent
gradio_client clients, and reports completed, failed, p50/p95 latency, the server's RSS
before and after, and the files left in its temporary folder, right after the load and
again after the sweep period.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fomm_space.video import VideoWriter  # noqa: E402

KEEP_MINUTES = 1.0


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="utf-8") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def files_in(folder: Path) -> int:
    return sum(1 for p in folder.rglob("*") if p.is_file())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_media(folder: Path) -> tuple[Path, Path]:
    from PIL import Image

    rng = np.random.default_rng(0)
    photo = folder / "photo.png"
    Image.fromarray((rng.random((96, 128, 3)) * 255).astype(np.uint8)).save(photo)
    clip = folder / "clip.mp4"
    yy, xx = np.mgrid[0:64, 0:80]
    with VideoWriter(clip, 10) as writer:
        for t in range(12):
            blob = np.exp(-((xx - 20 - 3 * t) ** 2 + (yy - 32) ** 2) / 60.0)
            writer.write((np.stack([blob, 0.5 * blob, 1 - blob], axis=-1) * 255).astype(np.uint8))
    return photo, clip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--deadline", type=float, default=900, help="seconds for the whole load, at most")
    args = parser.parse_args()
    from gradio_client import Client, handle_file

    tiny = ROOT / "tests" / "data" / "parity" / "tiny-vox"
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        server_tmp = work / "server-tmp"
        server_tmp.mkdir()
        photo, clip = make_media(work)
        port = free_port()
        env = {**os.environ, "GRADIO_TEMP_DIR": str(server_tmp), "GRADIO_ANALYTICS_ENABLED": "False"}
        server = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--config", str(tiny / "config.yaml"), "--checkpoint",
                                   str(tiny / "checkpoint.pth.tar"), "--device", "cpu", "--port", str(port),
                                   "--concurrency", "2", "--keep-minutes", str(KEEP_MINUTES)],
                                  cwd=work, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        url = f"http://127.0.0.1:{port}/"
        try:
            start = time.time()
            while True:
                try:
                    Client(url, verbose=False)
                    break
                except Exception:  # noqa: BLE001 - not up yet
                    if time.time() - start > 120 or server.poll() is not None:
                        sys.exit("the server did not start")
                    time.sleep(1)
            rss_idle = rss_mib(server.pid)

            def one(_: int) -> float:
                t0 = time.perf_counter()
                Client(url, verbose=False).predict(
                    source=handle_file(str(photo)), driving=handle_file(str(clip)), relative=True, adapt_scale=True,
                    crop_faces=False, find_best_frame=False, model="checkpoint.pth.tar", api_name="/animate")
                return time.perf_counter() - t0

            first = one(0)
            rss_first = rss_mib(server.pid)
            latencies, failures = [first], 0
            t_load = time.perf_counter()
            with concurrent.futures.ThreadPoolExecutor(args.clients) as pool:
                futures = [pool.submit(one, i) for i in range(1, args.requests)]
                for f in concurrent.futures.as_completed(futures, timeout=args.deadline):
                    try:
                        latencies.append(f.result())
                    except Exception as e:  # noqa: BLE001 - counted and shown
                        failures += 1
                        print(f"failed: {str(e)[:200]}")
            wall = time.perf_counter() - t_load
            rss_after = rss_mib(server.pid)
            left_now = files_in(server_tmp)
            # Wait past the keep period and Gradio's sweep interval, then one request sweeps ours.
            time.sleep(KEEP_MINUTES * 60 + 65)
            one(0)
            left_swept = files_in(server_tmp)
        finally:
            server.terminate()
            server.wait(timeout=30)
    q = statistics.quantiles(latencies, n=20)
    print(f"requests: {args.requests} from {args.clients} concurrent clients (server concurrency 2)")
    print(f"completed: {len(latencies)}, failed: {failures}, wall {wall:.1f} s for the {args.requests - 1} after the first")
    print(f"latency: p50 {statistics.median(latencies):.2f} s, p95 {q[18]:.2f} s, max {max(latencies):.2f} s")
    print(f"server RSS: idle {rss_idle:.1f} MiB, after the first request {rss_first:.1f} MiB, "
          f"after all {rss_after:.1f} MiB ({100 * (rss_after / rss_first - 1):+.1f}%)")
    print(f"files in the server's temporary folder: {left_now} right after the load; "
          f"{left_swept} after the {KEEP_MINUTES:g}-minute keep period and one more request")


if __name__ == "__main__":
    main()
