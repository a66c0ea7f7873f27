"""Reading checkpoints of either family safely: weights only, strict names, hashes checked."""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

import torch
from torch import nn

from .errors import CheckpointError

# family -> (state dicts a checkpoint must hold, those read when present); the names are
# the attributes of the family's networks (fomm_space/*/family.py)
LAYOUTS = {"fomm": (("kp_detector", "generator"), ()),
           "tpsmm": (("kp_detector", "dense_motion_network", "inpainting_network"), ("avd_network",))}
CONFIGS = {"fomm": "a FOMM config such as config/vox-256.yaml", "tpsmm": "a TPSMM config such as config/tps-vox-256.yaml"}


def sha256_of(path: str | Path, chunk: int = 1 << 22) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def family_of_checkpoint(data: object) -> str | None:
    """``"fomm"``, ``"tpsmm"`` or ``None``: the family whose state dicts ``data`` holds."""
    if isinstance(data, dict):
        for family, (parts, _) in LAYOUTS.items():
            if all(isinstance(data.get(p), dict) for p in parts):
                return family
    return None


def read_checkpoint(path: str | Path, *, family: str = "fomm", sha256: str | None = None
                    ) -> dict[str, dict[str, torch.Tensor]]:
    """Load the state dicts of a ``family`` checkpoint (see :data:`LAYOUTS`): the required
    ones, and the optional ones the file has.

    The file is read with ``torch.load(weights_only=True)`` on the CPU: a pickle that
    would run code is refused. Other entries (discriminator, optimisers, epoch) are
    dropped; a ``module.`` prefix (from ``DataParallel``) is removed.

    Raises:
        CheckpointError: missing, unreadable, truncated, unsafe, hash mismatch, without
            the state dicts, or of the other model family.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"Checkpoint {path} does not exist; give the path of a .pth.tar file "
                              "or {model_name}.")
    if sha256 is not None:
        actual = sha256_of(path)
        if actual != sha256.lower():
            raise CheckpointError(f"Checkpoint {path} has sha256 {actual}, expected {sha256}: the file is "
                                  "damaged or not the published one. Delete it and download it again.")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(f"Checkpoint {path} was refused: it holds Python objects other than weights, "
                              "which could run code when loaded, or it is damaged. Use a checkpoint that holds "
                              "only tensors.") from e
    except MemoryError as e:
        raise CheckpointError(f"Checkpoint {path} can't be read: loading it ran out of memory (the file is "
                              "damaged, or far larger than a published checkpoint).") from e
    except Exception as e:  # whatever torch's readers raise on a damaged file
        raise CheckpointError(f"Checkpoint {path} can't be read: the file is truncated or not a PyTorch "
                              f"checkpoint ({type(e).__name__}). Delete it and download it again.") from e
    parts, optional = LAYOUTS[family]
    if not isinstance(data, dict) or not all(isinstance(data.get(p), dict) for p in parts):
        found_family = family_of_checkpoint(data)
        if found_family is not None and found_family != family:
            raise CheckpointError(f"Checkpoint {path} is a {found_family.upper()} checkpoint, but the config is a "
                                  f"{family.upper()} one: use {CONFIGS[found_family]}.")
        found = ", ".join(map(str, data)) if isinstance(data, dict) else type(data).__name__
        names = [repr(p) for p in parts]
        raise CheckpointError(f"Checkpoint {path} is not a {family.upper()} checkpoint: it needs "
                              f"{', '.join(names[:-1])} and {names[-1]} state dicts, found {found or 'nothing'}.")
    return {part: _strip_prefix(data[part]) for part in (*parts, *optional) if isinstance(data.get(part), dict)}


def _strip_prefix(state: dict[str, torch.Tensor], prefix: str = "module.") -> dict[str, torch.Tensor]:
    if state and all(isinstance(k, str) and k.startswith(prefix) for k in state):
        return {k[len(prefix):]: v for k, v in state.items()}
    return dict(state)


def load_state(module: nn.Module, state: dict[str, torch.Tensor], *, part: str, source: str) -> None:
    """Strictly load ``state`` into ``module``; mismatches raise :class:`CheckpointError`
    naming the first differing tensors and the likely cause (a config of another model)."""
    expected = module.state_dict()
    state = {str(k): v for k, v in state.items()}
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in expected.items()
             if k in state and tuple(state[k].shape) != tuple(v.shape)]
    not_tensors = [k for k in state if not isinstance(state[k], torch.Tensor)]
    if missing or unexpected or wrong or not_tensors:
        details = []
        for label, items in (("missing", missing), ("unexpected", unexpected),
                             ("wrong shape (file vs config)", wrong), ("not tensors", not_tensors)):
            if items:
                details.append(f"{len(items)} {label}, e.g. {', '.join(items[:3])}")
        raise CheckpointError(f"Checkpoint {source} does not fit the config's {part}: {'; '.join(details)}. "
                              "Use the config that belongs to this checkpoint.")
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"Checkpoint {source} does not fit the config's {part} ({e}).") from e
