"""Downloading checkpoints through huggingface_hub from a local server that imitates the Hub.

The server answers HEAD and GET on /{repo}/resolve/{revision}/{file} as the Hub does
(X-Repo-Commit, ETag, Content-Length; 404 with X-Error-Code for unknown entries).
"""

from __future__ import annotations

import hashlib
import http.server
import threading
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pytest

import fomm_space
from fomm_space.errors import CheckpointError, ModelNotFoundError
from fomm_space.hub import download_checkpoint
from fomm_space.registry import get_spec

COMMIT = "a" * 40


def make_handler(files: dict[str, bytes], requests: list[str]):
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _answer(self, body: bool):
            requests.append(f"{self.command} {self.path}")
            parts = self.path.split("?")[0].strip("/").split("/")
            # {owner}/{name}/resolve/{revision}/{filename}
            if len(parts) != 5 or parts[2] != "resolve":
                self.send_response(404)
                self.send_header("X-Error-Code", "RepoNotFound")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            repo, revision, filename = "/".join(parts[:2]), parts[3], parts[4]
            if repo not in {k.split(":")[0] for k in files}:
                code = "RepoNotFound"
            elif revision not in ("main", COMMIT):
                code = "RevisionNotFound"
            elif f"{repo}:{filename}" not in files:
                code = "EntryNotFound"
            else:
                code = None
            if code:
                self.send_response(404)
                self.send_header("X-Error-Code", code)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            data = files[f"{repo}:{filename}"]
            self.send_response(200)
            self.send_header("X-Repo-Commit", COMMIT)
            self.send_header("ETag", '"' + hashlib.sha256(data).hexdigest() + '"')
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Content-Type", "application/octet-stream")
            self.end_headers()
            if body:
                self.wfile.write(data)

        def do_HEAD(self):
            self._answer(body=False)

        def do_GET(self):
            self._answer(body=True)

    return Handler


@contextmanager
def fake_hub(files: dict[str, bytes], port: int = 0):
    requests: list[str] = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), make_handler(files, requests))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", requests
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture()
def hub_env(monkeypatch, tmp_path, tiny_files):
    """A spec for 'vox' that points at the tiny checkpoint's config, and an empty cache."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("FOMM_REPO_ID", raising=False)
    monkeypatch.delenv("FOMM_REVISION", raising=False)
    data = tiny_files[1].read_bytes()
    return {"data": data, "cache": tmp_path / "cache", "config": tiny_files[0],
            "files": {"fomm/mirror:vox-cpk.pth.tar": data}}


def test_download_then_cached_run_without_server(hub_env, monkeypatch):
    spec = get_spec("vox", repo_id="fomm/mirror")
    spec = replace(spec, sha256=hashlib.sha256(hub_env["data"]).hexdigest(), size=len(hub_env["data"]))
    with fake_hub(hub_env["files"]) as (url, requests):
        path = download_checkpoint(spec, cache_dir=hub_env["cache"], endpoint=url)
        assert path.read_bytes() == hub_env["data"]
        assert any(r.startswith("GET /fomm/mirror/resolve/main/vox-cpk.pth.tar") for r in requests)
    # The server is gone: the cached copy is used without the network, also in offline mode.
    again = download_checkpoint(spec, cache_dir=hub_env["cache"], endpoint=url)
    assert again == path
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert download_checkpoint(spec, cache_dir=hub_env["cache"], endpoint=url) == path


def test_load_model_by_name_through_env_endpoint(hub_env, monkeypatch):
    with fake_hub(hub_env["files"]) as (url, _):
        monkeypatch.setenv("HF_ENDPOINT", url)
        monkeypatch.setenv("FOMM_REPO_ID", "fomm/mirror")
        # The published vox checkpoint's hash is pinned, so the tiny stand-in is refused...
        with pytest.raises(CheckpointError, match="sha256"):
            fomm_space.load_model("vox", config=hub_env["config"], cache_dir=hub_env["cache"], device="cpu")
    # ...and a model without a pinned hash (vox-adv) loads from the same mirror.
    files = {"fomm/mirror:vox-adv-cpk.pth.tar": hub_env["data"]}
    with fake_hub(files) as (url, _):
        monkeypatch.setenv("HF_ENDPOINT", url)
        model = fomm_space.load_model("vox-adv", config=hub_env["config"], cache_dir=hub_env["cache"],
                                      device="cpu")
    assert model.size == (64, 64)


@pytest.mark.parametrize("repo_id, revision, message", [
    ("fomm/elsewhere", "main", "Repository fomm/elsewhere was not found"),
    ("fomm/mirror", "v9", "Revision 'v9' does not exist"),
])
def test_not_found_on_hub(hub_env, repo_id, revision, message):
    with fake_hub(hub_env["files"]) as (url, _):
        spec = get_spec("vox", repo_id=repo_id, revision=revision)
        with pytest.raises(ModelNotFoundError, match=message):
            download_checkpoint(spec, cache_dir=hub_env["cache"], endpoint=url)


def test_file_missing_on_mirror(hub_env):
    with fake_hub(hub_env["files"]) as (url, _):
        spec = get_spec("taichi", repo_id="fomm/mirror")
        with pytest.raises(ModelNotFoundError, match="taichi-cpk.pth.tar of fomm/mirror@main was not found"):
            download_checkpoint(spec, cache_dir=hub_env["cache"], endpoint=url)


def test_offline_and_not_cached(hub_env, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFoundError, match="not in the local cache and offline mode is on"):
        download_checkpoint(get_spec("vox"), cache_dir=hub_env["cache"])


def test_unreachable_hub(hub_env):
    # A port nothing listens on: connection refused at once, no retries.
    with fake_hub({}) as (url, _):
        pass
    with pytest.raises(ModelNotFoundError, match="unreachable"):
        download_checkpoint(get_spec("vox"), cache_dir=hub_env["cache"], endpoint=url)


def test_an_unreachable_hub_is_found_once_then_tried_again_later(hub_env, monkeypatch):
    """Offline, a click gets the message at once (no retries), the next click too
    without asking the network again; after RETRY_AFTER_S the Hub is tried again."""
    import time

    from fomm_space import hub

    with fake_hub({}) as (url, _):
        pass  # the port is closed now
    port = int(url.rsplit(":", 1)[1])
    spec = get_spec("vox", repo_id="fomm/mirror")
    spec = replace(spec, sha256=None)
    times = []
    for _ in range(2):
        start = time.monotonic()
        with pytest.raises(ModelNotFoundError, match="the Hub is unreachable"):
            download_checkpoint(spec, cache_dir=hub_env["cache"], endpoint=url)
        times.append(time.monotonic() - start)
    assert max(times) <= hub.PROBE_TIMEOUT_S
    with fake_hub(hub_env["files"], port=port) as (_, requests):
        # Up again, but still remembered as unreachable: not asked.
        with pytest.raises(ModelNotFoundError, match="the Hub is unreachable"):
            download_checkpoint(spec, cache_dir=hub_env["cache"], endpoint=url)
        assert requests == []
        monkeypatch.setattr(hub, "RETRY_AFTER_S", 0.0)
        hub._unreachable.clear()  # as if the period had passed
        assert download_checkpoint(spec, cache_dir=hub_env["cache"], endpoint=url).read_bytes() == hub_env["data"]


def test_download_progress_is_reported_in_bytes(hub_env):
    spec = replace(get_spec("vox", repo_id="fomm/mirror"), sha256=None)
    seen = []
    with fake_hub(hub_env["files"]) as (url, _):
        download_checkpoint(spec, cache_dir=hub_env["cache"], endpoint=url,
                            progress=lambda done, total: seen.append((done, total)))
    size = len(hub_env["data"])
    assert seen and seen[-1] == (size, size)
    assert all(a[0] <= b[0] for a, b in zip(seen, seen[1:]))


def test_messages_are_worded_for_their_reader(hub_env, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFoundError) as info:
        download_checkpoint(get_spec("vox"), cache_dir=hub_env["cache"])
    e = info.value
    assert "config= and checkpoint=" in str(e) and "--config" not in str(e)
    assert "give --config and --checkpoint" in e.render("cli")
    assert "--config" in e.render("page") and "give --config" not in e.render("page")


def test_truncated_download_is_caught_by_hash(hub_env):
    data = hub_env["data"]
    spec = replace(get_spec("vox", repo_id="fomm/mirror"), sha256=hashlib.sha256(data).hexdigest())
    with fake_hub({"fomm/mirror:vox-cpk.pth.tar": data[:1000]}) as (url, _):
        path = download_checkpoint(spec, cache_dir=hub_env["cache"], endpoint=url)
    with pytest.raises(CheckpointError, match="sha256"):
        fomm_space.checkpoint.read_checkpoint(Path(path), sha256=spec.sha256)


def test_repo_and_revision_overridable_by_env(monkeypatch):
    monkeypatch.setenv("FOMM_REPO_ID", "me/mirror")
    monkeypatch.setenv("FOMM_REVISION", COMMIT)
    spec = get_spec("taichi")
    assert (spec.repo_id, spec.revision, spec.filename) == ("me/mirror", COMMIT, "taichi-cpk.pth.tar")
    assert get_spec("taichi", repo_id="x/y").repo_id == "x/y"
