"""Soak test of the web demo: mixed traffic on loopback, bounded in count and time.

    python benchmarks/load_test.py [--requests 200] [--clients 4] [--bad 0.33] [--cancel 0.1]
                                   [--deadline 1800]

Starts ``python app.py`` with the tiny test checkpoint on a free loopback port (its own
temporary folder, results kept 1 minute) and sends ``--requests`` requests from
``--clients`` concurrent clients: good ones (gradio_client), bad ones of every kind (a
third by default: wrong file types, truncated and empty files, a decompression bomb, an
unknown model, a missing photo, a server path and a link sent over plain HTTP), and
cancelled ones (a long clip, stopped mid-run: by the client's cancel, or by a client
that drops its connection, as a closed page does).

Checks and prints: every good request answered, every bad one refused with our message,
each cancelled run stopped within 2 s of the cancel (the server's log line) and its
folder gone, the server's RSS at request 20 and at the end (growth < 10%), latency, the
longest wait against the queue's promise (the lone-request time times the requests that
can be ahead), and the server's temporary folder before the load, right after it and
after the keep period. Exits 1 if a check fails.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.serve import served_app  # noqa: E402
from fomm_space import DEFAULTS  # noqa: E402
from fomm_space.video import VideoWriter  # noqa: E402

KEEP_MINUTES = 1.0
CONCURRENCY = 2
MODEL = "checkpoint.pth.tar"
STOP_WITHIN_S = 2.0
BAD_KINDS = ("photo-as-video", "video-as-photo", "text-as-video", "truncated-video", "empty-photo", "bomb-photo",
             "unknown-model", "no-photo", "server-path", "link")


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="utf-8") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def folder_size(folder: Path) -> tuple[int, int]:
    files = [p for p in folder.rglob("*") if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files)


def write_clip(path: Path, frames: int) -> Path:
    yy, xx = np.mgrid[0:64, 0:80]
    with VideoWriter(path, 10) as writer:
        for t in range(frames):
            blob = np.exp(-((xx - 20 - 3 * (t % 12)) ** 2 + (yy - 32) ** 2) / 60.0)
            writer.write((np.stack([blob, 0.5 * blob, 1 - blob], axis=-1) * 255).astype(np.uint8))
    return path


def make_media(folder: Path) -> dict[str, Path]:
    """The good photo and clip, a long clip for the cancelled runs, and the bad files."""
    from PIL import Image

    rng = np.random.default_rng(0)
    media = {"photo": folder / "photo.png", "clip": write_clip(folder / "clip.mp4", 12),
             "long": write_clip(folder / "long.mp4", 400)}
    Image.fromarray((rng.random((96, 128, 3)) * 255).astype(np.uint8)).save(media["photo"])
    media["text"] = folder / "notes.mp4"
    media["text"].write_text("not a video")
    media["truncated"] = folder / "cut.mp4"
    media["truncated"].write_bytes(media["clip"].read_bytes()[:700])
    media["empty"] = folder / "empty.png"
    media["empty"].write_bytes(b"")
    media["bomb"] = folder / "bomb.png"  # a PNG header declaring 100000 x 100000 pixels
    header = bytearray(media["photo"].read_bytes())
    header[16:24] = (100_000).to_bytes(4, "big") * 2
    media["bomb"].write_bytes(bytes(header))
    return media


def api_data(photo: str, driving: str) -> list:
    """/animate's parameters over plain HTTP: the two server paths, then the options."""
    files = [{"path": p, "meta": {"_type": "gradio.FileData"}} for p in (photo, driving)]
    return files + [True, True, False, False, MODEL, DEFAULTS.crop_scale, DEFAULTS.max_seconds, DEFAULTS.ai_mark,
                    DEFAULTS.paste_back, DEFAULTS.smoothing, DEFAULTS.upscale, DEFAULTS.avd, DEFAULTS.face_detector]


class ServerLog:
    """The server's stderr, read in a thread; lines kept with their arrival time."""

    def __init__(self, stream):
        self.lines: list[tuple[float, str]] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._read, args=(stream,), daemon=True).start()

    def _read(self, stream) -> None:
        for line in stream:
            with self._lock:
                self.lines.append((time.monotonic(), line.rstrip()))

    def stops_after(self, since: float) -> list[tuple[float, str]]:
        with self._lock:
            return [(t, line) for t, line in self.lines if t >= since and "run stopped" in line]

    def tracebacks(self) -> dict[str, int]:
        """The exceptions whose tracebacks the server printed, by type."""
        kinds: dict[str, int] = {}
        with self._lock:
            lines = [line for _, line in self.lines]
        for i, line in enumerate(lines):
            if line.startswith("Traceback"):
                end = next((x for x in lines[i + 1:] if x and not x.startswith((" ", "Traceback"))), "?")
                name = end.split(":")[0]
                kinds[name] = kinds.get(name, 0) + 1
        return kinds


class Traffic:
    """The kinds of request the soak sends."""

    def __init__(self, url: str, media: dict[str, Path], log: ServerLog, runs: Path):
        self.url, self.media, self.log, self.runs = url, media, log, runs
        self._stop_lock = threading.Lock()  # one cancel at a time, so a log line is its own

    def _predict(self, source, driving, **kw):
        from gradio_client import Client, handle_file

        params = dict(relative=True, adapt_scale=True, crop_faces=False, find_best_frame=False, model=MODEL)
        params.update(kw)
        return Client(self.url, verbose=False).predict(
            source=handle_file(str(source)) if source else None, driving=handle_file(str(driving)),
            api_name="/animate", **params)

    def good(self) -> tuple[str, float, str]:
        t0 = time.perf_counter()
        _, _, status = self._predict(self.media["photo"], self.media["clip"])
        ok = "12 frames" in status
        return ("good" if ok else "good-failed"), time.perf_counter() - t0, status

    def bad(self, kind: str) -> tuple[str, float, str]:
        from gradio_client.exceptions import AppError, ValidationError

        m = self.media
        t0 = time.perf_counter()
        if kind in ("server-path", "link"):
            status, text = self._raw(kind)
            refused = status == 422 and ("Only files you uploaded" in text or "Links are not taken" in text)
            return ("refused" if refused else f"bad-accepted:{kind}"), time.perf_counter() - t0, text[-200:]
        source, driving, kw = {
            "photo-as-video": (m["photo"], m["photo"], {}), "video-as-photo": (m["clip"], m["clip"], {}),
            "text-as-video": (m["photo"], m["text"], {}), "truncated-video": (m["photo"], m["truncated"], {}),
            "empty-photo": (m["empty"], m["clip"], {}), "bomb-photo": (m["bomb"], m["clip"], {}),
            "unknown-model": (m["photo"], m["clip"], {"model": "nope"}), "no-photo": (None, m["clip"], {}),
        }[kind]
        try:
            self._predict(source, driving, **kw)
        except (AppError, ValidationError) as e:  # ValidationError: refused by the guard before the queue
            message = str(e)
            ours = message.strip() and "has raised an exception" not in message
            return ("refused" if ours else f"bad-unclear:{kind}"), time.perf_counter() - t0, message
        return f"bad-accepted:{kind}", time.perf_counter() - t0, ""

    def _raw(self, kind: str) -> tuple[int, str]:
        """A request over plain HTTP naming a file it did not upload: the status and the
        text of the answer (the guard refuses it before it is queued)."""
        import httpx

        with open(self.media["photo"], "rb") as f:
            photo = httpx.post(self.url + "gradio_api/upload", files={"files": f}, timeout=30).json()[0]
        target = "/etc/passwd" if kind == "server-path" else "http://127.0.0.1:9/clip.mp4"
        data = api_data(photo, target)
        answer = httpx.post(self.url + "gradio_api/call/animate", json={"data": data}, timeout=30)
        return answer.status_code, answer.text

    def cancelled(self, how: str) -> tuple[str, float, str]:
        """A long run, stopped once it animates: by the client's cancel ("cancel") or by
        dropping the connection ("gone"). Returns the seconds from the stop to the
        server's "run stopped" line."""
        with self._stop_lock:
            if how == "cancel":
                asked = self._cancel_by_client()
            else:
                asked = self._drop_connection()
            deadline = asked + 30
            while not self.log.stops_after(asked):
                if time.monotonic() > deadline:
                    return f"cancel-not-stopped:{how}", float("nan"), ""
                time.sleep(0.02)
            stopped = self.log.stops_after(asked)[0][0] - asked
        return ("cancelled" if stopped <= STOP_WITHIN_S else f"cancel-slow:{how}"), stopped, how

    def _cancel_by_client(self) -> float:
        from gradio_client import Client, handle_file

        job = Client(self.url, verbose=False).submit(
            source=handle_file(str(self.media["photo"])), driving=handle_file(str(self.media["long"])),
            relative=True, adapt_scale=True, crop_faces=False, find_best_frame=False, model=MODEL,
            api_name="/animate")
        while not any(out and "Animating" in str(out[-1]) for out in job.outputs()):
            time.sleep(0.05)
        asked = time.monotonic()
        job.cancel()
        return asked

    def _drop_connection(self) -> float:
        """Join the queue as the page does, read the stream until the run animates, then
        close the connection."""
        import httpx

        with open(self.media["photo"], "rb") as f1, open(self.media["long"], "rb") as f2:
            paths = [httpx.post(self.url + "gradio_api/upload", files={"files": f}, timeout=30).json()[0]
                     for f in (f1, f2)]
        data = api_data(*paths)
        session = f"soak{random.getrandbits(48):x}"
        config = httpx.get(self.url + "config", timeout=30).json()
        fn = next(d["id"] for d in config["dependencies"] if d.get("api_name") == "animate")
        httpx.post(self.url + "gradio_api/queue/join", timeout=30,
                   json={"data": data, "fn_index": fn, "session_hash": session, "event_data": None,
                         "trigger_id": None})
        with httpx.stream("GET", self.url + f"gradio_api/queue/data?session_hash={session}", timeout=60) as stream:
            for line in stream.iter_lines():
                if line.startswith("data:") and "Animating" in line:
                    break
            asked = time.monotonic()
        return asked  # leaving the block closed the connection


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--bad", type=float, default=1 / 3, help="share of bad requests")
    parser.add_argument("--cancel", type=float, default=0.1, help="share of requests cancelled mid-run")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--deadline", type=float, default=1800, help="seconds for the whole load, at most")
    parser.add_argument("--keep-wait", type=float, default=KEEP_MINUTES * 60 + 65,
                        help="seconds to wait after the load for the keep period and Gradio's sweep")
    args = parser.parse_args()

    rng = random.Random(args.seed)
    plan = []
    for i in range(args.requests):
        r = rng.random()
        if r < args.bad:
            plan.append(("bad", BAD_KINDS[i % len(BAD_KINDS)]))
        elif r < args.bad + args.cancel:
            plan.append(("cancelled", "cancel" if i % 2 else "gone"))
        else:
            plan.append(("good", ""))
    plan[0] = ("good", "")

    tiny = ROOT / "tests" / "data" / "parity" / "tiny-vox"
    failures: list[str] = []
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        server_tmp = work / "server-tmp"
        server_tmp.mkdir()
        media = make_media(work)
        env = {"GRADIO_TEMP_DIR": str(server_tmp), "PYTHONUNBUFFERED": "1"}
        args_ = ["--config", tiny / "config.yaml", "--checkpoint", tiny / "checkpoint.pth.tar", "--device", "cpu",
                 "--concurrency", CONCURRENCY, "--keep-minutes", KEEP_MINUTES,
                 "--per-visitor", 2 * args.clients,  # every client is one visitor here (127.0.0.1)
                 "--temp-dir", server_tmp]
        with served_app(args_, work, env, stderr=subprocess.PIPE) as (url, server):
            log = ServerLog(server.stderr)
            traffic = Traffic(url, media, log, server_tmp / "fomm-space")
            lone = traffic.good()[1]
            before = folder_size(server_tmp)
            rss = {"first": rss_mib(server.pid)}
            results: list[tuple[str, float, str]] = [("good", lone, "")]
            done = [1]
            lock = threading.Lock()

            def one(item):
                kind, detail = item
                out = traffic.good() if kind == "good" else traffic.bad(detail) if kind == "bad" \
                    else traffic.cancelled(detail)
                with lock:
                    done[0] += 1
                    if done[0] == 20:
                        rss["20"] = rss_mib(server.pid)
                return out

            t_load = time.perf_counter()
            with concurrent.futures.ThreadPoolExecutor(args.clients) as pool:
                futures = [pool.submit(one, item) for item in plan[1:]]
                for f in concurrent.futures.as_completed(futures, timeout=args.deadline):
                    try:
                        results.append(f.result())
                    except Exception as e:  # noqa: BLE001 - counted and shown
                        results.append((f"error:{type(e).__name__}", float("nan"), str(e)[:200]))
            wall = time.perf_counter() - t_load
            rss["end"] = rss_mib(server.pid)
            time.sleep(1)
            runs_left = len(list((server_tmp / "fomm-space").glob("run-*")))
            right_after = folder_size(server_tmp)
            # Past the keep period and Gradio's sweep interval, one request sweeps ours.
            time.sleep(args.keep_wait)
            traffic.good()
            swept = folder_size(server_tmp)
            tracebacks = log.tracebacks()

    kinds = {}
    for kind, _, _ in results:
        kinds[kind] = kinds.get(kind, 0) + 1
    for kind, seconds, detail in results:
        if kind not in ("good", "refused", "cancelled"):
            failures.append(f"{kind}: {detail[:200]}")
    good = [s for k, s, _ in results if k == "good"]
    stops = [s for k, s, _ in results if k == "cancelled" or k.startswith("cancel-slow")]
    q = statistics.quantiles(good, n=20)
    ahead = max(1, -(-args.clients // CONCURRENCY))  # requests that can be before one, per slot
    promise = lone * (ahead + 1) * 3  # the lone time per request ahead, with a 3x margin for the 2 shared cores
    growth = 100 * (rss["end"] / rss["20"] - 1)
    if growth >= 10:
        failures.append(f"RSS grew {growth:.1f}% from request 20 to the end")
    if max(good) > promise:
        failures.append(f"a good request waited {max(good):.1f} s, over the queue's promise of {promise:.1f} s")
    if runs_left > len(good):
        failures.append(f"{runs_left} run folders left for {len(good)} good requests: a refused or cancelled one kept its")
    if swept[0] > before[0] + 10:
        failures.append(f"the temporary folder kept {swept[0]} files after the keep period (before: {before[0]})")
    print(f"requests: {args.requests} from {args.clients} concurrent clients (server concurrency {CONCURRENCY}), "
          f"wall {wall:.0f} s")
    print("outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(kinds.items())))
    print(f"good latency: p50 {statistics.median(good):.2f} s, p95 {q[18]:.2f} s, max {max(good):.2f} s "
          f"(a lone request {lone:.2f} s; the queue's promise here {promise:.1f} s)")
    if stops:
        print(f"cancelled runs stopped after: median {statistics.median(stops):.2f} s, max {max(stops):.2f} s "
              f"(bound {STOP_WITHIN_S:g} s); run folders left right after the load: {runs_left}")
    print(f"server RSS: after the first request {rss['first']:.1f} MiB, at request 20 {rss['20']:.1f} MiB, "
          f"at the end {rss['end']:.1f} MiB ({growth:+.1f}% from request 20)")
    print(f"server temporary folder (files, MB): before the load {before[0]}, {before[1] / 1e6:.1f}; right after "
          f"{right_after[0]}, {right_after[1] / 1e6:.1f}; after the {KEEP_MINUTES:g}-minute keep period and one more "
          f"request {swept[0]}, {swept[1] / 1e6:.1f}")
    print("tracebacks in the server log: " + (", ".join(f"{k} {v}" for k, v in tracebacks.items()) or "none"))
    print(json.dumps({"failures": failures}, indent=1) if failures else "all checks passed")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
