"""The one module that talks to the Hugging Face Hub: fetching published checkpoints."""

from __future__ import annotations

import os
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable
from pathlib import Path

from .errors import ModelNotFoundError
from .registry import FAMILY_ENV, ModelSpec

_TRUE = {"1", "true", "yes", "on"}
DEFAULT_ENDPOINT = "https://huggingface.co"
PROBE_TIMEOUT_S = 3.0   # how long to wait for a connection to the Hub before calling it unreachable
RETRY_AFTER_S = 60.0    # an unreachable Hub is not asked again before this many seconds

DownloadProgress = Callable[[int, "int | None"], None]
"""``progress(bytes_done, bytes_total)``, ``bytes_total`` None when unknown."""

_unreachable: dict[str, float] = {}  # endpoint -> time.monotonic() until which it counts as unreachable
_unreachable_lock = threading.Lock()


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE


def _endpoint(endpoint: str | None) -> str:
    return endpoint or os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT


def _remember_unreachable(endpoint: str | None) -> None:
    with _unreachable_lock:
        _unreachable[_endpoint(endpoint)] = time.monotonic() + RETRY_AFTER_S


def _behind_proxy() -> bool:
    return any(os.environ.get(k) for k in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"))


def hub_reachable(endpoint: str | None = None, *, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """Whether a TCP connection to the Hub's host opens within ``timeout`` seconds.

    A failed probe is remembered for :data:`RETRY_AFTER_S` seconds, so repeated requests
    fail at once instead of each waiting for huggingface_hub's retries. Behind a proxy
    the host is not probed (the proxy decides) and this returns True.
    """
    endpoint = _endpoint(endpoint)
    now = time.monotonic()
    with _unreachable_lock:
        if _unreachable.get(endpoint, 0.0) > now:
            return False
    if _behind_proxy():
        return True
    url = urllib.parse.urlsplit(endpoint)
    host, port = url.hostname, url.port or (443 if url.scheme == "https" else 80)
    if not host:
        return True  # not a URL we can probe; let huggingface_hub say what is wrong
    result: list[bool] = []

    def probe() -> None:  # in a thread: name resolution has no timeout of its own
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=probe, name="hub-probe", daemon=True)
    thread.start()
    thread.join(timeout)
    ok = bool(result and result[0])
    if not ok:
        _remember_unreachable(endpoint)
    return ok


def _progress_bar(progress: DownloadProgress):
    """A tqdm class for huggingface_hub that also reports bytes to ``progress``."""
    from tqdm.auto import tqdm

    class Reporting(tqdm):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self._done = int(kwargs.get("initial") or 0)
            self._total = int(kwargs["total"]) if kwargs.get("total") else None
            progress(self._done, self._total)

        def update(self, n=1):
            self._done += int(n or 0)
            progress(self._done, self._total)
            return super().update(n)

    return Reporting


def download_checkpoint(spec: ModelSpec, *, cache_dir: str | Path | None = None,
                        endpoint: str | None = None, local_files_only: bool | None = None,
                        progress: DownloadProgress | None = None) -> Path:
    """Path of ``spec``'s checkpoint in the local Hub cache, downloading it if needed.

    A cached copy is used without asking the network, so a model downloaded once
    loads offline. ``endpoint`` defaults to ``HF_ENDPOINT`` (read now, not at import);
    ``local_files_only`` defaults to ``HF_HUB_OFFLINE``. An unreachable Hub is found
    within :data:`PROBE_TIMEOUT_S` seconds and then not asked again for
    :data:`RETRY_AFTER_S`. ``progress`` receives the bytes downloaded.

    Raises:
        ModelNotFoundError: not cached and the Hub can't be reached, or the repository,
            revision or file does not exist there.
    """
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (EntryNotFoundError, HfHubHTTPError, LocalEntryNotFoundError,
                                        RepositoryNotFoundError, RevisionNotFoundError)

    endpoint = endpoint or os.environ.get("HF_ENDPOINT") or None
    if local_files_only is None:
        local_files_only = _offline()
    kwargs = dict(repo_id=spec.repo_id, filename=spec.filename, revision=spec.revision,
                  cache_dir=str(cache_dir) if cache_dir else None, endpoint=endpoint)
    where = f"{spec.filename} of {spec.repo_id}@{spec.revision}"
    repo_env, revision_env = FAMILY_ENV[spec.family]
    try:
        return Path(hf_hub_download(**kwargs, local_files_only=True))
    except LocalEntryNotFoundError as e:
        if local_files_only:
            raise ModelNotFoundError(
                f"Model {spec.name!r} is not in the local cache and offline mode is on: connect once to "
                f"download {where}, or {{local_checkpoint}}.") from e
    except OSError as e:
        raise ModelNotFoundError(f"The Hugging Face cache can't be read ({e}).") from e
    unreachable = (f"Can't download model {spec.name!r} ({where}): the Hub is unreachable. Check the network "
                   "connection, or {local_checkpoint}.")
    if not hub_reachable(endpoint):
        raise ModelNotFoundError(unreachable)
    try:
        return Path(hf_hub_download(**kwargs, tqdm_class=_progress_bar(progress) if progress else None))
    except RevisionNotFoundError as e:
        raise ModelNotFoundError(f"Revision {spec.revision!r} does not exist in {spec.repo_id}; "
                                 f"{{revision}} ({revision_env}).") from e
    except RepositoryNotFoundError as e:
        raise ModelNotFoundError(f"Repository {spec.repo_id} was not found on the Hub (or is private); "
                                 f"{{repo_id}} ({repo_env}).") from e
    except LocalEntryNotFoundError as e:
        _remember_unreachable(endpoint)
        raise ModelNotFoundError(unreachable) from e
    except EntryNotFoundError as e:
        raise ModelNotFoundError(f"{where} was not found on the Hub; check the mirror's file names.") from e
    except HfHubHTTPError as e:
        raise ModelNotFoundError(f"Downloading {where} failed: {e}") from e
    except OSError as e:
        raise ModelNotFoundError(f"Downloading {where} failed ({e}); check disk space and the network.") from e
