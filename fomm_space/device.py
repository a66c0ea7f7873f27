"""Choosing the device and the precision, once per model."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import lru_cache

import torch

from .errors import InputError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
CPU_WORKERS = 2
"""Networks run at once on a CPU (engine batches, landmark runs), each on its share of
torch's threads: on 2 cores, two independent one-thread workers beat two threads in
lock-step, which all stall when other work takes a core from one of them."""
_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def select_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` if given and usable, else CUDA, then Apple MPS, then the CPU."""
    if device is None or str(device) == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise InputError(f"Unknown device {device!r}; use auto, cpu, cuda, cuda:N or mps.") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"Device {device!r} was asked for but CUDA is not available here; {{cpu_device}}.")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise InputError(f"Device {device!r} does not exist: {torch.cuda.device_count()} CUDA device(s) found.")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise InputError(f"Device {device!r} was asked for but MPS is not available here; {{cpu_device}}.")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise InputError(f"Device {device!r} is not supported; use cpu, cuda or mps.")
    return dev


@lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """True where the CPU computes bf16 in hardware (AVX512-BF16 or AMX)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            flags = set(f.read().split())
    except OSError:
        return False
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def select_dtype(precision: str, device: torch.device) -> torch.dtype:
    """The compute dtype for ``precision`` on ``device``.

    ``auto`` is fp16 on CUDA, bf16 on CPUs with native bf16, else fp32.
    """
    if precision not in PRECISIONS:
        raise InputError(f"Unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}.")
    if precision == "auto":
        if device.type == "cuda":
            return torch.float16
        if device.type == "cpu" and cpu_has_native_bf16():
            return torch.bfloat16
        return torch.float32
    dtype = _DTYPES[precision]
    if dtype == torch.float16 and device.type == "cpu":
        raise InputError("fp16 is not supported on the CPU; {cpu_precision}.")
    return dtype


_cuda_lock = threading.Lock()
_cuda_users = 0
_cuda_saved: tuple[bool, bool] | None = None


@contextmanager
def exact_fp32(device: torch.device) -> Iterator[None]:
    """Within: fp32 on CUDA is computed as fp32 (PyTorch's default TF32 convolutions
    drift by ~1e-3). The process's settings are put back when the last concurrent user
    leaves. Does nothing off CUDA."""
    global _cuda_users, _cuda_saved
    if device.type != "cuda":
        yield
        return
    with _cuda_lock:
        if _cuda_users == 0:
            _cuda_saved = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
            torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
        _cuda_users += 1
    try:
        yield
    finally:
        with _cuda_lock:
            _cuda_users -= 1
            if _cuda_users == 0 and _cuda_saved is not None:
                torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = _cuda_saved


def cpu_workers(device: str | torch.device) -> int:
    """How many workers share the CPU: :data:`CPU_WORKERS` for ``device`` "cpu" with at
    least that many torch threads, else 1 (a GPU takes one batch at a time)."""
    return CPU_WORKERS if torch.device(device).type == "cpu" and torch.get_num_threads() >= CPU_WORKERS else 1


def worker_pool(workers: int, name: str) -> ThreadPoolExecutor:
    """A pool of ``workers`` threads named ``name``-N, each on its share of the caller's
    torch threads (``torch.set_num_threads`` holds per thread)."""
    threads = max(1, torch.get_num_threads() // workers)
    return ThreadPoolExecutor(workers, initializer=torch.set_num_threads, initargs=(threads,),
                              thread_name_prefix=name)
