"""Fair sharing under a flood, and the server's memory after the worst inline images.

    python benchmarks/flood.py [--visitors 20] [--flood 30] [--frames 12]

Starts ``python app.py`` (the tiny test model, on the CPU, one animation at a time, the
default limits) on loopback. One visitor (127.0.0.200) uploads a photo and a clip and
sends ``--flood`` animations at once; then ``--visitors`` other visitors (127.0.0.2,
127.0.0.3, ...: one address each) upload and send one animation each, one after another.
Prints how many of the flood were taken, and for each visitor when its request was
taken and finished; checks that every visitor was served, in the order they came, and
that the flood held no more than its limit.

Then memory: the server's RSS at rest, after five of the largest inline images it takes
(a data URL of 50 megapixels) and five it refuses (165 megapixels), each animated or
refused in turn. Exits 1 if a check fails.
"""

from __future__ import annotations

import argparse
import base64
import concurrent.futures
import io
import json
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.load_test import api_data, rss_mib, write_clip  # noqa: E402
from benchmarks.serve import served_app  # noqa: E402

FLOODER = "127.0.0.200"


def client(address: str):
    import httpx

    return httpx.Client(transport=httpx.HTTPTransport(local_address=address), timeout=600)


def upload(http, url: str, path: Path) -> str:
    with open(path, "rb") as f:
        answer = http.post(url + "gradio_api/upload", files={"files": (path.name, f)})
    answer.raise_for_status()
    return answer.json()[0]


def join(http, url: str, data: list, session: str):
    return http.post(url + "gradio_api/queue/join", json={"data": data, "fn_index": 0, "session_hash": session})


def finished(http, url: str, session: str) -> tuple[float, bool]:
    """When the session's event completed (monotonic clock), and whether it succeeded."""
    with http.stream("GET", url + f"gradio_api/queue/data?session_hash={session}") as stream:
        for line in stream.iter_lines():
            if line.startswith("data:") and json.loads(line[5:]).get("msg") == "process_completed":
                return time.monotonic(), bool(json.loads(line[5:]).get("success"))
    return time.monotonic(), False


def png_url(height: int, width: int) -> str:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (150, 110, 90)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def flood(url: str, media: dict[str, Path], visitors: int, count: int) -> list[str]:
    failures = []
    with client(FLOODER) as http:
        data = api_data(upload(http, url, media["photo"]), upload(http, url, media["clip"]))
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            codes = list(pool.map(lambda _: join(http, url, data, uuid.uuid4().hex).status_code, range(count)))
    taken = codes.count(200)
    print(f"flood from {FLOODER}: {count} sent at once, {taken} taken, {count - taken} refused "
          f"(statuses {sorted(set(codes))})")
    if taken > 2:
        failures.append(f"the flood held {taken} jobs")

    order, results, threads = [], {}, []
    for n in range(visitors):
        address = f"127.0.0.{n + 2}"
        with client(address) as http:
            data = api_data(upload(http, url, media["photo"]), upload(http, url, media["clip"]))
            session = uuid.uuid4().hex
            answer = join(http, url, data, session)
        joined = time.monotonic()
        if answer.status_code != 200:
            failures.append(f"{address} was refused: {answer.text[:200]}")
            continue
        order.append(address)

        def wait(address=address, session=session, joined=joined):
            with client(address) as http:
                results[address] = (joined, *finished(http, url, session))

        threads.append(threading.Thread(target=wait))
        threads[-1].start()
    for thread in threads:
        thread.join()
    served = sorted(results, key=lambda a: results[a][1])
    start = min(j for j, _, _ in results.values())
    print("visitor      joined at  finished at  waited   ok")
    for address in order:
        joined, done, ok = results[address]
        print(f"{address:<12} {joined - start:8.1f} s {done - start:9.1f} s {done - joined:7.1f} s  {ok}")
    if served != order:
        failures.append(f"served out of order: {served}")
    if not all(ok for _, _, ok in results.values()) or len(results) != visitors:
        failures.append("not every visitor was served")
    print(f"{len(results)} of {visitors} visitors served, in the order they came: {served == order}")
    return failures


def inline_memory(url: str, server: subprocess.Popen, media: dict[str, Path]) -> list[str]:
    with client("127.0.0.250") as http:
        driving = upload(http, url, media["clip"])
        idle = rss_mib(server.pid)
        peak = idle
        for height, width in [(6000, 8333)] * 5 + [(11000, 15000)] * 5:  # 50 MP: taken; 165 MP: refused
            data = api_data("x.png", driving)
            data[0] = {"path": "x.png", "url": png_url(height, width)}
            session = uuid.uuid4().hex
            if join(http, url, data, session).status_code == 200:
                finished(http, url, session)
            peak = max(peak, rss_mib(server.pid))
        time.sleep(2)
        after = rss_mib(server.pid)
    print(f"server RSS: {idle:.0f} MiB at rest, {after:.0f} MiB after 5 taken and 5 refused inline images "
          f"(+{after - idle:.0f} MiB; highest seen between requests {peak:.0f} MiB)")
    return [f"RSS grew {after - idle:.0f} MiB"] if after - idle > 200 else []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--visitors", type=int, default=20)
    parser.add_argument("--flood", type=int, default=30)
    parser.add_argument("--frames", type=int, default=12, help="frames of each request's clip")
    args = parser.parse_args()
    tiny = ROOT / "tests" / "data" / "parity" / "tiny-vox"
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        from PIL import Image

        media = {"photo": work / "photo.png", "clip": write_clip(work / "clip.mp4", args.frames)}
        Image.new("RGB", (128, 96), (90, 120, 150)).save(media["photo"])
        server_args = ["--config", tiny / "config.yaml", "--checkpoint", tiny / "checkpoint.pth.tar", "--device",
                       "cpu", "--temp-dir", work / "served"]
        with served_app(server_args, work, {"PYTHONUNBUFFERED": "1"}) as (url, server):
            failures = flood(url, media, args.visitors, args.flood) + inline_memory(url, server, media)
    for failure in failures:
        print("FAILED:", failure)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
