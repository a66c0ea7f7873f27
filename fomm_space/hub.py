"""The one module that talks to the Hugging Face Hub: fetching published checkpoints."""

from __future__ import annotations

import os
from pathlib import Path

from .errors import ModelNotFoundError
from .registry import ModelSpec

_TRUE = {"1", "true", "yes", "on"}


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE


def download_checkpoint(spec: ModelSpec, *, cache_dir: str | Path | None = None,
                        endpoint: str | None = None, local_files_only: bool | None = None) -> Path:
    """Path of ``spec``'s checkpoint in the local Hub cache, downloading it if needed.

    A cached copy is used without asking the network, so a model downloaded once
    loads offline. ``endpoint`` defaults to ``HF_ENDPOINT`` (read now, not at import);
    ``local_files_only`` defaults to ``HF_HUB_OFFLINE``.

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
    try:
        return Path(hf_hub_download(**kwargs, local_files_only=True))
    except LocalEntryNotFoundError as e:
        if local_files_only:
            raise ModelNotFoundError(
                f"Model {spec.name!r} is not in the local cache and offline mode is on: connect once to "
                f"download {where}, or give --config and --checkpoint for a local file.") from e
    except OSError as e:
        raise ModelNotFoundError(f"The Hugging Face cache can't be read ({e}).") from e
    try:
        return Path(hf_hub_download(**kwargs))
    except RevisionNotFoundError as e:
        raise ModelNotFoundError(f"Revision {spec.revision!r} does not exist in {spec.repo_id}; "
                                 "check FOMM_REVISION / --revision.") from e
    except RepositoryNotFoundError as e:
        raise ModelNotFoundError(f"Repository {spec.repo_id} was not found on the Hub (or is private); "
                                 "check FOMM_REPO_ID / --repo-id.") from e
    except LocalEntryNotFoundError as e:
        raise ModelNotFoundError(
            f"Can't download model {spec.name!r} ({where}): the Hub is unreachable. Check the network "
            "connection, or give --config and --checkpoint for a local file.") from e
    except EntryNotFoundError as e:
        raise ModelNotFoundError(f"{where} was not found on the Hub; check the mirror's file names.") from e
    except HfHubHTTPError as e:
        raise ModelNotFoundError(f"Downloading {where} failed: {e}") from e
    except OSError as e:
        raise ModelNotFoundError(f"Downloading {where} failed ({e}); check disk space and the network.") from e
