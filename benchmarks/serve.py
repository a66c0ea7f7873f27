"""The web demo in a process of its own, for benchmarks, scripts and tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port nothing listens on at the moment, on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def served_app(args: Sequence[object], cwd: str | Path, env: dict[str, str] | None = None, *,
               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
               start_s: float = 120) -> Iterator[tuple[str, subprocess.Popen]]:
    """``python app.py ARGS --port P`` (its own cwd and environment, on a free loopback
    port; its uploads and results under ``cwd`` unless ARGS give ``--temp-dir``); yields
    (its URL, the process) once it answers, and stops it after. With
    ``stdout``/``stderr`` PIPE, what it printed stays readable from the process."""
    port = free_port()
    args = [*map(str, args)]
    if "--temp-dir" not in args:
        args += ["--temp-dir", str(Path(cwd) / "served-temp")]
    server = subprocess.Popen([sys.executable, str(ROOT / "app.py"), *args, "--port", str(port)],
                              cwd=cwd, env={**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", **(env or {})},
                              stdout=stdout, stderr=stderr, text=True)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.time() + start_s
        while True:
            try:
                urllib.request.urlopen(url, timeout=5).close()
                break
            except OSError:
                if server.poll() is not None or time.time() > deadline:
                    raise RuntimeError("the app did not start") from None
                time.sleep(0.5)
        yield url, server
    finally:
        server.terminate()
        server.wait(timeout=30)


@contextmanager
def app_in_process(argv: Sequence[object]) -> Iterator[object]:
    """The web demo built from command-line ``argv`` and served in this process on a
    free loopback port; yields the Gradio Blocks (``.local_url``), closed after.

    The app points Gradio at its ``--temp-dir`` through ``GRADIO_TEMP_DIR``, which
    Gradio reads process-wide: apps served side by side in one process must share one
    folder (the default, ``GRADIO_TEMP_DIR`` itself, does). The variable is put back as
    it was once the app closes, and its sweep stops.
    """
    sys.path.insert(0, str(ROOT))
    import app

    old = os.environ.get("GRADIO_TEMP_DIR")
    args = app.parse_args([str(a) for a in argv])
    args.port = None
    demo = app.build_demo(args)
    try:
        app.launch(demo, args, prevent_thread_lock=True, quiet=True)
        yield demo
    finally:
        demo.close()
        if getattr(demo, "fomm_sweeping", None) is not None:
            demo.fomm_sweeping.set()
        if old is None:
            os.environ.pop("GRADIO_TEMP_DIR", None)
        else:
            os.environ["GRADIO_TEMP_DIR"] = old
