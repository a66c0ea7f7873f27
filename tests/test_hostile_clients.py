"""The web demo as a hostile visitor meets it: raw requests to Gradio's queue and upload
routes on loopback, from several addresses (127.0.0.x: one visitor each).

Each attack must be refused with the app's own short message, read nothing it should
not, leave no traceback in the log, and leave the server usable for the others.
"""

from __future__ import annotations

import base64
import concurrent.futures
import io
import json
import math
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

gr = pytest.importorskip("gradio")
httpx = pytest.importorskip("httpx")

from tests.conftest import write_video  # noqa: E402

MODEL = "checkpoint.pth.tar"
IDLE_S = 1.5   # the app's --live-idle-seconds here


@pytest.fixture(scope="module")
def guarded(tiny_files, face_weights):
    """The app with small limits, serving on 127.0.0.1."""
    from benchmarks.serve import app_in_process

    with app_in_process(["--config", tiny_files[0], "--checkpoint", tiny_files[1], "--device", "cpu",
                         "--concurrency", "1", "--per-visitor", "2", "--max-frames", "30",
                         "--upload-mb-per-hour", "3", "--files-per-upload", "3", "--inline-mb", "1",
                         "--live-idle-seconds", IDLE_S]) as demo:
        yield demo


def visitor(n: int) -> httpx.Client:
    """An HTTP client from 127.0.0.n: a visitor of its own."""
    return httpx.Client(transport=httpx.HTTPTransport(local_address=f"127.0.0.{n}"), timeout=60)


def upload(client, url, path) -> str:
    with open(path, "rb") as f:
        answer = client.post(url + "gradio_api/upload", files={"files": (Path(path).name, f)})
    assert answer.status_code == 200, answer.text
    return answer.json()[0]


def file(path, meta=True) -> dict:
    payload = {"path": str(path), "orig_name": Path(path).name}
    if meta:
        payload["meta"] = {"_type": "gradio.FileData"}
    return payload


def animate_data(source, driving, **over) -> list:
    values = dict(relative=True, adapt_scale=True, crop_faces=False, find_best_frame=False, model=MODEL,
                  crop_scale=1.8, max_seconds=60, ai_mark=True, paste_back=True, smoothing=0.0, upscale="bicubic",
                  avd=False, face_detector="sfd")
    values.update(over)
    return [source, driving, *values.values()]


def join(client, url, fn_index, data, session=None):
    body = {"data": data, "fn_index": fn_index, "session_hash": session or uuid.uuid4().hex, "event_data": None,
            "trigger_id": None}
    return client.post(url + "gradio_api/queue/join", content=json.dumps(body),
                       headers={"content-type": "application/json"})


def outcome(client, url, session, timeout=120.0) -> dict:
    """The last message of the session's event: process_completed (or a timeout)."""
    deadline = time.monotonic() + timeout
    with client.stream("GET", url + f"gradio_api/queue/data?session_hash={session}", timeout=timeout) as stream:
        for line in stream.iter_lines():
            if line.startswith("data:"):
                message = json.loads(line[5:])
                if message.get("msg") == "process_completed":
                    return message
            if time.monotonic() > deadline:
                break
    return {"msg": "timeout"}


def run(client, url, fn_index, data) -> dict:
    session = uuid.uuid4().hex
    answer = join(client, url, fn_index, data, session)
    assert answer.status_code == 200, answer.text
    return outcome(client, url, session)


def index_of(demo, name) -> int:
    return next(i for i, fn in demo.fns.items() if fn.api_name == name)


def refused(answer, *words):
    """A refusal with our message: a 4xx answer naming ``words``, short, no server path."""
    assert 400 <= answer.status_code < 500, (answer.status_code, answer.text[:300])
    detail = answer.json()["detail"]
    if isinstance(detail, list):  # Gradio's validation form: the message beside its input
        assert sum(not d["is_valid"] for d in detail) == 1
        detail = next(d["message"] for d in detail if not d["is_valid"])
    assert all(w in detail for w in words), detail
    assert len(detail) < 400 and "/tmp" not in detail and "Traceback" not in detail
    return detail


def png_bytes(height, width) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (120, 90, 60)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture()
def clip(tmp_path):
    rng = np.random.default_rng(0)
    return write_video(tmp_path / "clip.mp4", (rng.random((8, 64, 80, 3)) * 255).astype(np.uint8))


@pytest.fixture()
def photo(tmp_path):
    path = tmp_path / "photo.png"
    path.write_bytes(png_bytes(96, 128))
    return path


# --- Finding 1: a server path in the photo input ------------------------------------------

@pytest.mark.parametrize("meta", [False, True])
def test_a_server_image_not_uploaded_is_refused_before_it_is_read(guarded, photo, clip, meta, tmp_path, capfd):
    url, runs = guarded.local_url, guarded.fomm_runs.root
    with visitor(2) as mallory, visitor(3) as alice:
        alices = upload(alice, url, photo)  # another visitor's upload, inside the upload folder
        driving = file(upload(mallory, url, clip))
        before = set(runs.glob("run-*"))
        for target in (photo, alices, "/etc/passwd", Path(alices).parent / ".." / Path(alices).parent.name
                       / Path(alices).name, guarded.fomm_runs.root):
            answer = join(mallory, url, index_of(guarded, "animate"), animate_data(file(target, meta), driving))
            refused(answer, "Only files you uploaded")
        live = join(mallory, url, index_of(guarded, "begin"),
                    [file(alices, meta), MODEL, True, True, False, True, 0.5, None])
        refused(live, "Only files you uploaded")
        stream = join(mallory, url, index_of(guarded, "step"), [file(alices, meta), None])
        refused(stream, "Only files you uploaded")
    assert set(runs.glob("run-*")) == before  # nothing ran
    assert "Traceback" not in capfd.readouterr().err


def test_the_uploader_itself_is_served(guarded, photo, clip):
    url = guarded.local_url
    with visitor(4) as alice:
        data = animate_data(file(upload(alice, url, photo)), file(upload(alice, url, clip)))
        done = run(alice, url, index_of(guarded, "animate"), data)
    assert done["success"], done
    assert "8 frames" in done["output"]["data"][2]


# --- Finding 2: playlists that name the server's files -------------------------------------

def playlists(example: Path) -> dict[str, str]:
    return {
        "list.m3u8": f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\n{example}\n#EXT-X-ENDLIST\n",
        "list.mp4": f"#EXTM3U\n#EXTINF:10,\n{example}\n",
        "list.txt": f"file '{example}'\n",
        "list.ffconcat": f"ffconcat version 1.0\nfile '{example}'\n",
        "bom.m3u8": f"\ufeff#EXTM3U\n{example}\n",
    }


@pytest.mark.parametrize("name", list(playlists(Path("x"))))
def test_a_playlist_of_server_files_is_refused(guarded, photo, clip, name, tmp_path, capfd):
    url = guarded.local_url
    listing = tmp_path / name
    listing.write_text(playlists(clip)[name])
    with visitor(5) as mallory:
        data = animate_data(file(upload(mallory, url, photo)), file(upload(mallory, url, listing)))
        done = run(mallory, url, index_of(guarded, "animate"), data)
    assert not done["success"]
    message = done["output"]["error"]
    assert "playlist" in message or "can't be read as a video" in message, message
    assert "/tmp" not in message
    assert "Traceback" not in capfd.readouterr().err


# --- Finding 3: one visitor takes the whole service -------------------------------------------

def test_one_visitor_holds_at_most_its_limit_and_the_next_is_served(guarded, photo, tmp_path):
    url, animate = guarded.local_url, index_of(guarded, "animate")
    rng = np.random.default_rng(1)
    long = write_video(tmp_path / "long.mp4", (rng.random((30, 64, 80, 3)) * 255).astype(np.uint8))
    with visitor(6) as flood, visitor(7) as other:
        data = animate_data(file(upload(flood, url, photo)), file(upload(flood, url, long)))
        with concurrent.futures.ThreadPoolExecutor(10) as pool:
            answers = list(pool.map(lambda _: join(flood, url, animate, data).status_code, range(10)))
        assert answers.count(200) == 2 and answers.count(422) == 8, answers
        refused(join(flood, url, animate, data), "already have 2 animations")
        other_data = animate_data(file(upload(other, url, photo)), file(upload(other, url, long)))
        done = run(other, url, animate, other_data)
        assert done["success"], done


def test_a_clip_is_cut_to_the_frame_budget_whatever_its_rate(guarded, photo, tmp_path):
    url = guarded.local_url
    rng = np.random.default_rng(2)
    fast = write_video(tmp_path / "fast.mp4", (rng.random((45, 64, 80, 3)) * 255).astype(np.uint8), fps=120)
    with visitor(8) as alice:
        data = animate_data(file(upload(alice, url, photo)), file(upload(alice, url, fast)))
        done = run(alice, url, index_of(guarded, "animate"), data)
    assert done["success"], done
    assert "30 frames" in done["output"]["data"][2] and "cut at 30 frames" in done["output"]["data"][2]


def frame_url(height=48, width=64) -> str:
    return "data:image/png;base64," + base64.b64encode(png_bytes(height, width)).decode()


def test_a_silent_live_stream_ends_and_a_visitor_holds_one(guarded):
    url, step = guarded.local_url, index_of(guarded, "step")
    frame = {"path": "frame.png", "url": frame_url(), "meta": {"_type": "gradio.FileData"}}
    with visitor(9) as quiet:
        first, second = uuid.uuid4().hex, uuid.uuid4().hex
        assert join(quiet, url, step, [frame, None], first).status_code == 200
        started = time.monotonic()
        refused(join(quiet, url, step, [frame, None], second), "already have a live stream")
        assert outcome(quiet, url, first, timeout=30)["msg"] == "process_completed"  # silent: ended
        assert time.monotonic() - started < IDLE_S + 10
        assert join(quiet, url, step, [frame, None], second).status_code == 200  # the slot is free again
        assert outcome(quiet, url, second, timeout=30)["msg"] == "process_completed"


# --- Inline images, sizes, quotas -------------------------------------------------------------

def rss_mb() -> float:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) / 1024


def test_inline_images_are_held_to_the_limits_before_they_are_decoded(guarded, clip, tmp_path):
    url, animate = guarded.local_url, index_of(guarded, "animate")
    idle = rss_mb()
    with visitor(10) as mallory:
        driving = file(upload(mallory, url, clip))
        huge = {"path": "x.png", "url": frame_url(11000, 15000)}  # small file, 165 megapixels
        refused(join(mallory, url, animate, animate_data(huge, driving)), "megapixels")
        heavy = {"path": "x.png", "url": "data:image/png;base64," + "A" * 1_600_000}  # over --inline-mb 1
        refused(join(mallory, url, animate, animate_data(heavy, driving)), "1 MB")
        body = b'{"data": ["' + b"A" * 3_000_000 + b'"], "fn_index": 0, "session_hash": "x"}'
        answer = mallory.post(url + "gradio_api/queue/join", content=body,
                              headers={"content-type": "application/json"})
        refused(answer, "too large")
        small = {"path": "x.png", "url": frame_url(96, 128)}
        done = run(mallory, url, animate, animate_data(small, driving))
        assert done["success"], done
        bomb = tmp_path / "bomb.png"  # uploaded, then sent as a camera frame (which Gradio decodes)
        bomb.write_bytes(png_bytes(3000, 2000))
        frame = file(upload(mallory, url, bomb))
        refused(join(mallory, url, index_of(guarded, "step"), [frame, None]), "6 megapixels; the limit is 4")
    assert rss_mb() - idle < 200


def test_uploads_are_limited_in_count_and_bytes_per_hour(guarded, tmp_path):
    url, upload_dir = guarded.local_url, Path(guarded.fomm_gate.root)
    with visitor(11) as mallory:
        files = [("files", (f"f{i}.bin", bytes(1000))) for i in range(4)]
        before = sum(1 for _ in upload_dir.rglob("f?.bin"))
        refused(mallory.post(url + "gradio_api/upload", files=files), "At most 3 files")
        assert sum(1 for _ in upload_dir.rglob("f?.bin")) == before  # none kept
        chunk = tmp_path / "chunk.bin"
        chunk.write_bytes(bytes(1_200_000))
        assert upload(mallory, url, chunk)
        assert upload(mallory, url, chunk)
        with open(chunk, "rb") as f:
            refused(mallory.post(url + "gradio_api/upload", files={"files": f}), "in an hour")
    with visitor(12) as other, open(chunk, "rb") as f:  # another visitor has a quota of their own
        assert other.post(url + "gradio_api/upload", files={"files": f}).status_code == 200


# --- Every endpoint, every parameter, hostile values ---------------------------------------

HOSTILE = [math.nan, math.inf, -math.inf, "A" * 100_000, None, "false", {"path": "/etc/passwd"}, [1, 2], 10 ** 30,
           -1]


def test_every_endpoint_refuses_hostile_values_with_a_short_message(guarded, photo, clip, capfd):
    url, taken = guarded.local_url, []
    with visitor(13) as mallory:
        good = {index_of(guarded, "animate"): animate_data(file(upload(mallory, url, photo)),
                                                           file(upload(mallory, url, clip))),
                index_of(guarded, "begin"): [file(upload(mallory, url, photo)), MODEL, True, True, False, True,
                                             0.5, None]}
        for index, fn in guarded.fns.items():
            base = good.get(index, [None] * len(fn.inputs))
            for position in range(len(fn.inputs)):
                for value in HOSTILE:
                    data = list(base)
                    data[position] = value
                    session = uuid.uuid4().hex
                    body = json.dumps({"data": data, "fn_index": index, "session_hash": session})
                    answer = mallory.post(url + "gradio_api/queue/join", content=body,
                                          headers={"content-type": "application/json"})
                    if answer.status_code != 200:
                        refused(answer)
                        continue
                    # Taken (a value the page itself may send, or one the handler reads
                    # as such): it must end as a result or one plain message.
                    taken.append((fn.api_name, position))
                    done = outcome(mallory, url, session, timeout=60)
                    assert done["msg"] == "process_completed", (fn.api_name, position)
                    error = done.get("output", {}).get("error")
                    assert done["success"] or (error and len(error) < 400 and "/tmp" not in error), \
                        (fn.api_name, position, done)
        # What passes the guard: an empty photo or video (the handler asks for one), and
        # anything in a state slot (the server keeps states; the value sent is unused).
        assert {(name, position) for name, position in taken} <= {
            ("animate", 0), ("animate", 1), ("begin", 0), ("begin", 7), ("step", 0), ("step", 1), ("restart", 0),
            ("match_pose", 0)}, taken
        refused(join(mallory, url, 999, []), "no such endpoint")
        assert mallory.post(url + "gradio_api/process_recording", json={"data": []}).status_code == 404
        for route in ("run/animate", "api/animate"):  # checked as a join; then Gradio's own refusal
            refused(mallory.post(url + f"gradio_api/{route}", json={"data": []}), "must carry 15 input values")
            data = animate_data(file(upload(mallory, url, photo)), file(upload(mallory, url, clip)))
            assert mallory.post(url + f"gradio_api/{route}", json={"data": data}).status_code >= 400
    err = capfd.readouterr().err
    assert "Traceback" not in err, err[-2000:]


def test_names_of_endpoints_are_checked_like_their_index(guarded, photo, clip):
    url = guarded.local_url
    with visitor(14) as mallory:
        data = animate_data(file(photo), file(upload(mallory, url, clip)))
        refused(mallory.post(url + "gradio_api/call/animate", json={"data": data}), "Only files you uploaded")
        data = animate_data(file(upload(mallory, url, photo)), file(upload(mallory, url, clip)), model=None)
        refused(mallory.post(url + "gradio_api/call/animate", json={"data": data}), "Model must be one of")


# --- The ledger: who owns what, what the sweep keeps -------------------------------------------

def test_visitors_behind_a_proxy_are_told_apart_by_the_hops_it_adds():
    from fomm_space.guard import visitor_of

    assert visitor_of("10.0.0.1", "1.2.3.4, 5.6.7.8", 0) == "10.0.0.1"  # no proxy trusted: the socket
    assert visitor_of("10.0.0.1", "1.2.3.4, 5.6.7.8", 1) == "5.6.7.8"   # what the proxy saw, not what was claimed
    assert visitor_of("10.0.0.1", "5.6.7.8", 2) == "5.6.7.8"
    assert visitor_of("10.0.0.1", None, 1) == "10.0.0.1"


def test_the_sweep_keeps_what_a_queued_job_needs(tmp_path):
    import os

    from fomm_space.guard import Endpoint, Gate, Limits

    alive = {"e1"}
    gate = Gate(tmp_path, Limits(keep_s=60), alive=lambda event: event in alive)
    needed, stale, fresh = (tmp_path / "a" / "needed.mp4", tmp_path / "b" / "stale.mp4", tmp_path / "c" / "new.mp4")
    for f in (needed, stale, fresh):
        f.parent.mkdir()
        f.write_bytes(b"x")
    old = time.time() - 3600
    for f in (needed, stale, stale.parent):
        os.utime(f, (old, old))
    gate.record("v", [str(needed), str(stale), str(fresh)])
    job, why = gate.admit("v", Endpoint("animate", (), "job"), frozenset({needed.resolve()}))
    gate.joined(job, "e1", {})
    just_made = tmp_path / "run-new"  # a run's folder, its first file not written yet
    just_made.mkdir()
    assert gate.sweep() == 1
    assert needed.exists() and fresh.exists() and not stale.exists() and not stale.parent.exists()
    assert just_made.exists()
    alive.clear()  # the job ended
    assert gate.sweep() == 1 and not needed.exists()
