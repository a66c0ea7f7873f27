"""Limits for serving fomm-space to strangers over HTTP, without a web framework.

:class:`Guard` is an ASGI middleware for an app that speaks Gradio's queue protocol
(``/gradio_api/upload``, ``/queue/join``, ``/call/...``, ``/stream/...``). It is the one
gate every request passes before the app reads it:

- files: a request may name only files its visitor uploaded here (or the app's own
  public files); inline data (data URLs) is held to a byte and pixel limit, checked
  from the image header before anything decodes it;
- values: each endpoint's inputs are checked by its :class:`Endpoint`'s rules;
- sharing: each visitor holds at most ``Limits.jobs`` jobs and ``Limits.events`` events
  queued or running, and one live stream, which ends once it goes quiet;
- uploads: at most ``Limits.files_per_upload`` files a request and
  ``Limits.upload_mb_per_hour`` a visitor; files are deleted ``Limits.keep_s`` after
  they were written, except those a queued or running job still needs.

A visitor is the client's address, or on a server behind ``Limits.proxy_hops`` trusted
proxies the address those proxies saw (``X-Forwarded-For``, counted from the right).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import json
import logging
import os
import threading
import time
import warnings
from collections import defaultdict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

_logger = logging.getLogger(__name__)

Rule = Callable[[object, "Gate"], "str | None"]
"""Checks one input value; returns the message that refuses it, or None."""


@dataclass(frozen=True)
class Limits:
    """What one visitor may do. Every number is a server option (see the README)."""

    jobs: int = 2                      # animations queued or running at once
    events: int = 8                    # events of any kind queued or running at once
    files_per_upload: int = 4          # files in one upload request
    upload_mb_per_hour: float = 1000.0
    inline_mb: float = 8.0             # an image sent inside a request (a data URL)
    inline_pixels: int = 50_000_000    # its pixels, read from its header
    keep_s: float = 3600.0             # how long uploads and results are kept
    stream_idle_s: float = 5.0         # a live stream that sends nothing this long ends
    proxy_hops: int = 0                # trusted proxies in front (1 on a Hugging Face Space)

    @property
    def body_bytes(self) -> int:
        """The largest request body other than an upload: one inline image in base64."""
        return int(self.inline_mb * 1e6 * 4 / 3) + 256 * 1024


@dataclass(frozen=True)
class Endpoint:
    """One event of the app: its inputs' rules, in order, and what kind of work it is:
    "job" (counted against ``Limits.jobs``), "stream" (a live stream) or "light"."""

    name: str
    rules: tuple[Rule, ...]
    kind: str = "light"
    params: tuple[str, ...] = ()  # the inputs' names, as an API caller gives them

    def refusal(self, position: int, message: str) -> list[dict]:
        """A refusal as Gradio's clients show one (its validation format): the message
        beside the input at ``position``, every other input valid."""
        count = max(len(self.rules), position + 1)
        names = [self.params[i] if i < len(self.params) else f"parameter_{i}" for i in range(count)]
        return [{"__type__": "validate", "is_valid": i != position, "message": message if i == position else "",
                 "parameter_name": names[i]} for i in range(count)]


def visitor_of(client: str | None, forwarded_for: str | None, proxy_hops: int) -> str:
    """The visitor's address: the socket's peer, or with ``proxy_hops`` trusted proxies
    the address the outermost of them saw (entries a client adds itself come first in
    ``X-Forwarded-For`` and are skipped)."""
    if proxy_hops > 0 and forwarded_for:
        hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
        if hops:
            return hops[-min(proxy_hops, len(hops))][:64]
    return client or "unknown"


def clip(value: object, limit: int = 40) -> str:
    """``repr(value)``, at most ``limit`` characters: a message never repeats a long
    hostile value."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def image_size(data: bytes | Path) -> tuple[int, int] | None:
    """(height, width) from an image's header (its bytes, or a file), nothing decoded;
    None if no image. An image too large for Pillow to open at all counts as 2**31
    pixels high."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data) if isinstance(data, bytes) else data) as img:
                width, height = img.size
    except Image.DecompressionBombError:
        return 2 ** 31, 1
    except Exception:  # noqa: BLE001 - whatever Pillow raises on a file that is no image
        return None
    return height, width


@dataclass
class _Job:
    visitor: str
    endpoint: Endpoint
    paths: frozenset[Path]
    last: float
    scope: dict | None = None
    event_id: str | None = None


class Gate:
    """The ledger behind :class:`Guard`: who uploaded which file, the visitors' upload
    quotas, their jobs, and the sweep. Thread-safe (the sweep runs in its own thread).

    ``alive(event_id)`` says whether the app still has an event queued or running.
    """

    def __init__(self, root: Path, limits: Limits, alive: Callable[[str], bool]):
        self.root = Path(root).resolve()
        self.limits = limits
        self.alive = alive
        self.visitor = "unknown"  # set per check, under the lock (see check)
        self._lock = threading.RLock()
        self._owners: dict[Path, str] = {}
        self._public: set[Path] = set()
        self._uploaded: dict[str, deque[tuple[float, int]]] = defaultdict(deque)
        self._jobs: dict[int, _Job] = {}  # id(job) -> job; event id set once joined

    # -- files ------------------------------------------------------------------
    def make_public(self, paths: Iterable[str | Path]) -> None:
        """Files anyone may name (the app's examples); never swept."""
        with self._lock:
            self._public.update(Path(p).resolve() for p in paths)

    def record(self, visitor: str, paths: Iterable[str]) -> None:
        with self._lock:
            for p in paths:
                self._owners[Path(p).resolve()] = visitor

    def owns(self, visitor: str, path: str) -> bool:
        """Whether ``visitor`` uploaded ``path`` here (or it is public), on the resolved
        path: links, ``..`` and other visitors' files are not theirs."""
        try:
            resolved = Path(path).resolve()
        except (OSError, ValueError, RuntimeError):
            return False
        with self._lock:
            return resolved in self._public or self._owners.get(resolved) == visitor

    def quota_left(self, visitor: str, now: float | None = None) -> int:
        """Bytes ``visitor`` may still upload in the current hour."""
        now = time.monotonic() if now is None else now
        with self._lock:
            sent = self._uploaded[visitor]
            while sent and sent[0][0] < now - 3600:
                sent.popleft()
            return int(self.limits.upload_mb_per_hour * 1e6) - sum(n for _, n in sent)

    def spend(self, visitor: str, nbytes: int) -> None:
        with self._lock:
            self._uploaded[visitor].append((time.monotonic(), nbytes))

    # -- jobs ---------------------------------------------------------------------
    def _live(self) -> list[_Job]:
        live = [job for job in self._jobs.values() if job.event_id is None or self.alive(job.event_id)]
        self._jobs = {id(job): job for job in live}
        return live

    def admit(self, visitor: str, endpoint: Endpoint, paths: frozenset[Path]) -> tuple[_Job | None, str | None]:
        """A job for ``visitor`` (held until :meth:`joined`), or the message that
        refuses it."""
        with self._lock:
            mine = [job for job in self._live() if job.visitor == visitor]
            if endpoint.kind == "job" and sum(j.endpoint.kind == "job" for j in mine) >= self.limits.jobs:
                return None, (f"You already have {self.limits.jobs} animations queued or running; wait for one "
                              "to finish, then try again.")
            if endpoint.kind == "stream" and any(j.endpoint.kind == "stream" for j in mine):
                return None, (f"You already have a live stream (in another tab?); stop it, or try again in "
                              f"{self.limits.stream_idle_s:g} seconds.")
            if len(mine) >= self.limits.events:
                return None, "You have too many requests waiting; wait for them to finish, then try again."
            job = _Job(visitor, endpoint, paths, time.monotonic())
            self._jobs[id(job)] = job
            return job, None

    def joined(self, job: _Job, event_id: str | None, scope: dict) -> None:
        """The app queued ``job`` as ``event_id`` (None: it refused it)."""
        with self._lock:
            if event_id is None:
                self._jobs.pop(id(job), None)
            else:
                job.event_id, job.scope = event_id, scope

    def job(self, event_id: str) -> _Job | None:
        with self._lock:
            return next((j for j in self._jobs.values() if j.event_id == event_id), None)

    def quiet_streams(self, now: float | None = None) -> list[_Job]:
        """Live streams that have sent nothing for ``Limits.stream_idle_s``."""
        now = time.monotonic() if now is None else now
        with self._lock:
            return [j for j in self._live() if j.endpoint.kind == "stream" and j.event_id is not None
                    and now - j.last > self.limits.stream_idle_s]

    def forget(self, job: _Job) -> None:
        with self._lock:
            self._jobs.pop(id(job), None)

    # -- checks -------------------------------------------------------------------
    def check(self, visitor: str, endpoint: Endpoint, data: object) -> tuple[int, str] | None:
        """(the input's position, the message) refusing ``data`` (a request's input
        values) for ``endpoint``, or None."""
        if not isinstance(data, list) or len(data) != len(endpoint.rules):
            return 0, f"The request must carry {len(endpoint.rules)} input values."
        with self._lock:
            self.visitor = visitor
            for position, (value, rule) in enumerate(zip(data, endpoint.rules)):
                why = rule(value, self)
                if why:
                    return position, why
        return None

    def file(self, value: object, *, image: bool, pixels: int | None = None, decoded: bool = False) -> str | None:
        """The file gate for one file payload (a dict with ``path`` or ``url``). An
        ``image`` may come inline, within ``pixels``; one that the app's framework
        decodes whole (``decoded``: a camera frame) is held to ``pixels`` as a file too."""
        if value is None:
            return None
        if not isinstance(value, dict):
            return f"A file was expected, got {clip(value)}."
        url = value.get("url")
        if isinstance(url, str) and url.startswith("data:"):
            return self.inline(url, pixels or self.limits.inline_pixels) if image else \
                "Send videos as an upload, not inside the request."
        path = value.get("path")
        if isinstance(url, str) and url and not path:
            return "Links are not taken; download the file and upload it."
        if not isinstance(path, str) or not path or len(path) > 4096:
            return "A file must be uploaded first (its path is missing)."
        if path.startswith(("http:", "https:", "//")) or "://" in path:
            return "Links are not taken; download the file and upload it."
        if not self.owns(self.visitor, path):
            return "Only files you uploaded can be used; upload the file again."
        if decoded:
            return self.pixels(Path(path), pixels or self.limits.inline_pixels)
        return None

    def inline(self, url: str, pixels: int) -> str | None:
        """An image inside the request: at most ``Limits.inline_mb`` and ``pixels``,
        both known before it is decoded."""
        head, _, payload = url.partition(",")
        limit = self.limits.inline_mb
        if len(payload) > limit * 1e6 * 4 / 3 + 4:
            return f"Images sent inside a request may be at most {limit:g} MB; upload larger ones as a file."
        if not head.endswith(";base64"):
            return "An image inside a request must be base64 data."
        try:
            data = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            return "The image inside the request is not valid base64."
        return self.pixels(data, pixels)

    @staticmethod
    def pixels(image: bytes | Path, pixels: int) -> str | None:
        """The message refusing an image (its bytes or a file) of more than ``pixels``,
        told from its header, or that is no image; None if it passes."""
        size = image_size(image)
        if size is None:
            return "The image can't be read; use a PNG or JPEG."
        if size[0] * size[1] > pixels:
            return (f"The image has {size[0] * size[1] / 1e6:.0f} megapixels; the limit is {pixels / 1e6:g}. "
                    "Scale it down and try again.")
        return None

    # -- sweep ----------------------------------------------------------------------
    def pinned(self) -> set[Path]:
        with self._lock:
            return {p for job in self._live() for p in job.paths} | self._public

    def sweep(self, now: float | None = None) -> int:
        """Delete the files under ``root`` older than ``Limits.keep_s`` that no live job
        needs, and the folders as old left empty (not one just made for a file about to
        come); returns how many files."""
        cutoff = (time.time() if now is None else now) - self.limits.keep_s
        keep, removed = self.pinned(), 0
        aged = set()  # folders old before this sweep (deleting in a folder makes it new)
        for folder, _, _ in os.walk(self.root):
            try:
                if os.stat(folder).st_mtime < cutoff:
                    aged.add(folder)
            except OSError:
                pass
        for folder, dirs, files in os.walk(self.root, topdown=False):
            for name in files:
                path = Path(folder, name)
                try:
                    if path not in keep and path.stat().st_mtime < cutoff:
                        path.unlink()
                        removed += 1
                        with self._lock:
                            self._owners.pop(path, None)
                except OSError:
                    pass
            if folder in aged and Path(folder) != self.root:
                try:
                    os.rmdir(folder)  # only if empty
                except OSError:
                    pass
        return removed

    def start_sweeping(self, every_s: float) -> threading.Event:
        """Sweep every ``every_s`` seconds in a daemon thread until the event is set."""
        stop = threading.Event()

        def loop() -> None:
            while not stop.wait(every_s):
                try:
                    if n := self.sweep():
                        _logger.info("swept %d old files", n)
                except Exception:  # noqa: BLE001 - the next sweep tries again
                    _logger.exception("sweep failed")

        threading.Thread(target=loop, name="fomm-sweep", daemon=True).start()
        return stop


def paths_in(value: object) -> frozenset[Path]:
    """The ``path`` of every file payload inside ``value``, resolved."""
    found: set[Path] = set()

    def walk(v: object) -> None:
        if isinstance(v, dict):
            if isinstance(v.get("path"), str):
                try:
                    found.add(Path(v["path"]).resolve())
                except (OSError, ValueError, RuntimeError):
                    pass
            for item in v.values():
                walk(item)
        elif isinstance(v, list):
            for item in v:
                walk(item)

    walk(value)
    return frozenset(found)


# -- the middleware ---------------------------------------------------------------------

async def _read_body(receive, limit: int) -> bytes | None:
    """The whole request body, or None once it passes ``limit`` bytes."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"".join(chunks)
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes):
    sent = False

    async def receive():
        nonlocal sent
        if sent:
            await asyncio.sleep(3600)  # nothing more: the app waits as for a quiet client
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


async def _answer(send, status: int, detail: str | list) -> None:
    """An answer in the form Gradio's clients read: ``detail`` is the message, or with
    status 422 the inputs' validation (see :meth:`Endpoint.refusal`)."""
    text = detail if isinstance(detail, str) else " ".join(d["message"] for d in detail if d["message"])
    body = json.dumps({"detail": detail, "error": text}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class _Captured:
    """An app's response, held back (small JSON answers only) to be read or replaced."""

    def __init__(self):
        self.status = 500
        self.headers: list = []
        self.body = b""

    async def send(self, message) -> None:
        if message["type"] == "http.response.start":
            self.status, self.headers = message["status"], message.get("headers", [])
        elif message["type"] == "http.response.body":
            self.body += message.get("body", b"")

    def json(self) -> object:
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    async def forward(self, send) -> None:
        headers = [(k, v) for k, v in self.headers if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(self.body)).encode()))
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": self.body})


@dataclass
class Guard:
    """The ASGI middleware: see the module's docstring. ``endpoints`` maps Gradio's
    ``fn_index`` to each event's :class:`Endpoint`; ``names`` maps API names to it."""

    app: Callable
    gate: Gate
    endpoints: dict[int, Endpoint] = field(default_factory=dict)
    names: dict[str, int] = field(default_factory=dict)
    _watching: bool = False

    async def __call__(self, scope, receive, send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if scope.get("method") != "POST" or "/gradio_api/" not in path:
            return await self.app(scope, receive, send)
        api = path.split("/gradio_api/", 1)[1].strip("/")
        visitor = self.visitor(scope)
        if api == "upload":
            return await self._upload(scope, receive, send, visitor)
        if api == "queue/join" or api.startswith(("call/", "run/", "api/")):
            return await self._join(scope, receive, send, visitor, api)
        if api.startswith("stream/") and not api.endswith("/close"):
            return await self._stream(scope, receive, send, visitor, api.split("/")[1])
        if not (api in ("cancel", "reset", "component_server") or api.startswith("stream/")):
            return await _answer(send, 404, "Not found.")  # recordings, editors: not for visitors
        body = await _read_body(receive, self.gate.limits.body_bytes)
        if body is None:
            return await _answer(send, 413, "The request is too large.")
        return await self.app(scope, _replay(body), send)

    def visitor(self, scope) -> str:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        client = scope.get("client")
        return visitor_of(client[0] if client else None, headers.get("x-forwarded-for"),
                          self.gate.limits.proxy_hops)

    async def _upload(self, scope, receive, send, visitor: str) -> None:
        left = self.gate.quota_left(visitor)
        headers = dict(scope.get("headers", []))
        try:
            declared = int(headers.get(b"content-length", b"0"))
        except ValueError:
            declared = 0
        if left <= 0 or declared > left:
            return await _answer(send, 429, "You have uploaded the most allowed in an hour "
                                            f"({self.gate.limits.upload_mb_per_hour:g} MB); try again later.")
        received, over = 0, False

        async def counted():
            nonlocal received, over
            if over:
                return {"type": "http.disconnect"}
            message = await receive()
            received += len(message.get("body", b""))
            if received > left:
                over = True
                return {"type": "http.disconnect"}
            return message

        captured = _Captured()
        try:
            await self.app(scope, counted, captured.send)
        finally:
            self.gate.spend(visitor, received)
        stored = captured.json() if captured.status == 200 else None
        files = [p for p in stored if isinstance(p, str)] if isinstance(stored, list) else []
        if over or len(files) > self.gate.limits.files_per_upload:
            for f in files:
                Path(f).unlink(missing_ok=True)
            if over:
                return await _answer(send, 429, f"You have uploaded the most allowed in an hour "
                                                f"({self.gate.limits.upload_mb_per_hour:g} MB); try again later.")
            return await _answer(send, 413, f"At most {self.gate.limits.files_per_upload} files can be uploaded "
                                            "at once.")
        if files:
            self.gate.record(visitor, files)
        await captured.forward(send)

    def _endpoint(self, api: str, body: dict) -> tuple[int | None, Endpoint | None]:
        """The event a request calls: by ``fn_index`` (the page: ``queue/join``,
        ``run/predict``) or by the API name in the path (``call/NAME``, ``call/v2/NAME``,
        ``run/NAME``, ``api/NAME``)."""
        if api in ("queue/join", "run/predict"):
            index = body.get("fn_index")
        else:
            parts = api.split("/")
            index = self.names.get(parts[2] if parts[1] == "v2" and len(parts) > 2 else parts[1])
        if isinstance(index, bool) or not isinstance(index, int):
            return None, None
        return index, self.endpoints.get(index)

    async def _join(self, scope, receive, send, visitor: str, api: str) -> None:
        raw = await _read_body(receive, self.gate.limits.body_bytes)
        if raw is None:
            return await _answer(send, 413, f"The request is too large; send photos over "
                                            f"{self.gate.limits.inline_mb:g} MB as an upload.")
        try:
            body = json.loads(raw)
        except ValueError:
            return await _answer(send, 422, "The request is not valid JSON.")
        if not isinstance(body, dict):
            return await _answer(send, 422, "The request must be a JSON object.")
        index, endpoint = self._endpoint(api, body)
        if endpoint is None:
            return await _answer(send, 404, "There is no such endpoint.")
        refused = self.gate.check(visitor, endpoint, body.get("data"))
        if refused is None:
            job, why = self.gate.admit(visitor, endpoint, paths_in(body.get("data")))
            refused = None if job is not None else (0, why)
        if refused is not None:
            _logger.warning("refused %s from %s: %s", endpoint.name, visitor, refused[1])
            return await _answer(send, 422, endpoint.refusal(*refused))
        captured = _Captured()
        try:
            await self.app(scope, _replay(raw), captured.send)
        finally:
            answer = captured.json()
            event_id = answer.get("event_id") if captured.status == 200 and isinstance(answer, dict) else None
            self.gate.joined(job, event_id if isinstance(event_id, str) else None, dict(scope))
        self._watch()
        await captured.forward(send)

    async def _stream(self, scope, receive, send, visitor: str, event_id: str) -> None:
        raw = await _read_body(receive, self.gate.limits.body_bytes)
        if raw is None:
            return await _answer(send, 413, "The frame is too large.")
        job = self.gate.job(event_id)
        try:
            data = json.loads(raw).get("data")
        except (ValueError, AttributeError):
            return await _answer(send, 422, "The request is not valid JSON.")
        if job is None or job.visitor != visitor:
            return await _answer(send, 404, "There is no such stream.")
        refused = self.gate.check(visitor, job.endpoint, data)
        if refused is not None:
            return await _answer(send, 422, job.endpoint.refusal(*refused))
        job.last = time.monotonic()
        return await self.app(scope, _replay(raw), send)

    async def _close(self, job: _Job) -> None:
        """End a live stream as the page's own close would."""
        scope = dict(job.scope or {})
        prefix = scope.get("path", "").split("/gradio_api/", 1)[0]
        scope.update(path=f"{prefix}/gradio_api/stream/{job.event_id}/close", raw_path=None, query_string=b"",
                     headers=[(b"content-type", b"application/json"), (b"content-length", b"0")])
        self.gate.forget(job)
        _logger.info("closing a live stream of %s", job.visitor)
        try:
            await self.app(scope, _replay(b""), _Captured().send)
        except Exception:  # noqa: BLE001 - it has ended already
            pass

    def _watch(self) -> None:
        """Start (once, on the server's loop) ending the streams that went quiet."""
        if self._watching:
            return
        self._watching = True

        async def watch() -> None:
            while True:
                await asyncio.sleep(min(1.0, self.gate.limits.stream_idle_s / 2))
                for job in self.gate.quiet_streams():
                    await self._close(job)

        asyncio.get_running_loop().create_task(watch())


__all__ = ["Endpoint", "Gate", "Guard", "Limits", "Rule", "clip", "image_size", "paths_in",
           "visitor_of"]
