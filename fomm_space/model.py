"""The animation engine: a loaded model of either family (FOMM or TPSMM) that animates a
source image by a driving video.

Work that depends on the source alone (its keypoints, its encoding, the dense-motion
network's downsampled copy) is done once; driving frames then go through in batches,
streamed in and out, so memory stays flat however long the clip. On a CPU two batches
run at once, each on half the threads (:data:`~fomm_space.device.CPU_WORKERS`): two
independent workers don't stall together when decoding or encoding takes a core from
one. The device and the precision are chosen here, once; the family's networks
(:mod:`fomm_space.family`) know nothing of either.
"""

from __future__ import annotations

import collections
import itertools
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .checkpoint import LAYOUTS, load_state, read_checkpoint
from .config import ModelConfig
from .families import read_config
from .device import cpu_workers, exact_fp32, select_device, select_dtype, worker_pool
from .errors import InputError
from .family import MotionFamily, no_avd_message
from .frames import as_float_rgb
from .motion import Keypoints, movement_scale
from .options import DEFAULTS
from .registry import DEFAULT_MODEL, get_spec
from .smoothing import KeypointSmoother

DEFAULT_BATCH = {"cuda": 16, "mps": 8, "cpu": 2}


@dataclass(frozen=True)
class PreparedSource:
    """What the engine keeps of a source image between batches (tensors on the device)."""

    image: torch.Tensor          # (1, C, H, W) float32 in [0, 1]
    keypoints: Keypoints         # value (1, K, 2) [, jacobian (1, K, 2, 2)]
    state: dict                  # the family's source-only work (encodings), at the motion dtype

    @property
    def keypoints_array(self) -> np.ndarray:
        """(K, 2) float32 source keypoints, (x, y) in [-1, 1]."""
        return self.keypoints["value"][0].float().cpu().numpy()


@dataclass(frozen=True)
class AnimationBatch:
    """A run of consecutive animated frames.

    Attributes:
        start: index of the first frame in the driving clip.
        frames: (B, H, W, 3) float32 RGB in [0, 1], at the model's frame size.
        driving_keypoints: (B, K, 2) float32 keypoints detected in the driving frames.
        keypoints: (B, K, 2) float32 keypoints the source was moved to.
        on_device: with ``stream(keep_on_device=True)``, the same frames as the engine
            made them, (B, 3, H, W) in [0, 1] on the model's device (for composition
            there); else ``None``.
    """

    start: int
    frames: np.ndarray
    driving_keypoints: np.ndarray
    keypoints: np.ndarray
    on_device: torch.Tensor | None = None


class AnimationModel:
    """A model of either family on one device, at one precision.

    Attributes:
        networks: the family's networks (:class:`~fomm_space.family.MotionFamily`),
            rewritten for inference unless ``optimize=False``.
        family: ``"fomm"`` or ``"tpsmm"``.
        config, device, dtype, name.
    """

    def __init__(self, networks: MotionFamily, config: ModelConfig, *, device: str | torch.device | None = None,
                 precision: str = "auto", name: str | None = None, optimize: bool = True):
        self.device = select_device(device)
        self.dtype = select_dtype(precision, self.device)
        self.config = config
        self.name = name or Path(config.source).stem
        self.family = networks.family
        networks = networks.eval()
        if optimize:
            networks = networks.optimized(cpu=self.device.type == "cpu")
        self.networks = networks.to(self.device)
        # bf16 keeps 8 bits of mantissa: too few for the dense motion, which steers
        # every pixel. So at bf16 the source's preparation and the motion run in fp32,
        # the decoder in bf16. fp16's 11 bits are enough everywhere.
        self.motion_dtype = torch.float32 if self.dtype == torch.bfloat16 else self.dtype
        if self.dtype != torch.float32 and self.motion_dtype == self.dtype and self.device.type != "cpu":
            # Convolution weights stored at the compute precision: autocast would
            # otherwise cast every one of them again on every call.
            for part in self.networks.decoder_modules():
                for module in part.modules():
                    if isinstance(module, torch.nn.Conv2d):
                        module.to(self.dtype)

    @property
    def has_avd(self) -> bool:
        """Whether ``avd=True`` works (TPSMM checkpoints with an AVD network)."""
        return self.networks.has_avd

    def check_avd(self, avd: bool) -> None:
        """:class:`InputError` if ``avd`` is asked of a model without an AVD network."""
        if avd and not self.has_avd:
            raise InputError(no_avd_message(self.family))

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of the frames the model produces."""
        return self.config.size

    def batch_size(self, batch_size: int | None = None) -> int:
        """Driving frames per forward pass: ``batch_size``, or the device's default."""
        return DEFAULT_BATCH.get(self.device.type, 4) if batch_size is None else batch_size

    @property
    def precision(self) -> str:
        return {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[self.dtype]

    def _autocast(self, dtype: torch.dtype | None = None):
        dtype = self.dtype if dtype is None else dtype
        return torch.autocast(self.device.type, dtype=dtype, enabled=dtype != torch.float32)

    def _to_tensor(self, frames: Sequence[np.ndarray], what: str) -> torch.Tensor:
        """Frames -> (B, 3, H, W) float32 on the device at the model's size."""
        arrays = [as_float_rgb(f, what=what) for f in frames]
        shape = arrays[0].shape
        if any(a.shape != shape for a in arrays):
            raise InputError(f"The {what}s differ in size ({shape} vs others); all frames must match.")
        x = torch.from_numpy(np.stack(arrays)).to(self.device).permute(0, 3, 1, 2)
        if tuple(x.shape[2:]) != self.size:
            x = F.interpolate(x, size=self.size, mode="bilinear", align_corners=False, antialias=True)
        return x.clamp_(0, 1).contiguous(memory_format=torch.channels_last)

    @torch.inference_mode()
    def detect_keypoints(self, frames: Sequence[np.ndarray]) -> Keypoints:
        """Keypoints of images (each H x W x 3): ``value`` (B, K, 2) [, ``jacobian``], float32.

        Runs in float32 at every precision: keypoints steer every pixel downstream.
        """
        with exact_fp32(self.device):
            return self.networks.keypoints(self._to_tensor(frames, "driving frame"))

    @torch.inference_mode()
    def prepare_source(self, source: np.ndarray) -> PreparedSource:
        """Everything that depends on the source image alone (H x W x 3, see ``animate``)."""
        image = self._to_tensor([source], "source image")
        with exact_fp32(self.device):
            keypoints = self.networks.keypoints(image)
            with self._autocast(self.motion_dtype):
                state = self.networks.prepare(image)
        return PreparedSource(image, keypoints, state)

    @torch.inference_mode()
    def generate(self, source: PreparedSource, kp_driving: Keypoints) -> torch.Tensor:
        """The frames of ``source`` moved to the keypoints ``kp_driving`` (from
        :meth:`transfer_keypoints`): (B, 3, h, w) on the model's device, in [0, 1], at the
        decoder's precision. The dense motion is computed in fp32 or the motion dtype."""
        with exact_fp32(self.device):
            with self._autocast(self.motion_dtype):
                motion = self.networks.motion(source.state, source.keypoints, kp_driving)
            with self._autocast():
                return self.networks.decode(source.state, motion)

    @torch.inference_mode()
    def transfer_keypoints(self, source: PreparedSource, kp_driving: Keypoints, kp_initial: Keypoints, *,
                           relative: bool, adapt_scale: bool, scale: float, avd: bool) -> Keypoints:
        """The keypoints ``source`` moves to: the driving motion since ``kp_initial`` (the
        reference frame's keypoints) put on the source's (relative, scaled by ``scale``
        where ``adapt_scale``), the driving keypoints themselves, or the AVD network's."""
        with exact_fp32(self.device):
            return self.networks.transfer(source.keypoints, kp_driving, kp_initial, relative=relative,
                                          adapt_scale=adapt_scale, scale=scale, avd=avd)

    def _workers(self) -> int:
        """Batches animated at once (:func:`~fomm_space.device.cpu_workers`)."""
        return cpu_workers(self.device)

    def _in_workers(self, frames: Iterable[np.ndarray], size: int, workers: int,
                    steer: Callable[[Keypoints], tuple[Keypoints, Keypoints]], prepared: PreparedSource
                    ) -> Iterator[tuple[Keypoints, Keypoints, torch.Tensor]]:
        """``(driving keypoints, moved keypoints, frames)`` of each batch of ``size``
        frames, in order, from ``workers`` threads that share the caller's torch threads.

        Each worker finds its batch's keypoints, waits for its turn to ``steer`` them
        (the smoothing and the motion transfer need the batches in order), then runs the
        generator on its own threads: no worker waits on another's convolutions, so work
        beside the engine (decoding, composition, encoding) slows one batch at a time.
        One batch more than ``workers`` is queued, so a worker that ends before the oldest
        batch is handed over starts the next at once; at most ``workers + 1`` batches are
        read beyond the one handed over.
        """
        turn = threading.Condition()
        progress = {"next": 0, "stopped": False}

        def work(index: int, chunk: list[np.ndarray]) -> tuple[Keypoints, Keypoints, torch.Tensor] | None:
            kp_found = self.detect_keypoints(chunk)
            with turn:
                turn.wait_for(lambda: progress["next"] == index or progress["stopped"])
                if progress["stopped"]:
                    return None
                try:
                    kp_driving, kp_new = steer(kp_found)
                finally:
                    progress["next"] += 1
                    turn.notify_all()
            return kp_driving, kp_new, self.generate(prepared, kp_new)

        pool = worker_pool(workers, "fomm-engine")
        running: collections.deque = collections.deque()
        chunks = iter(lambda it=iter(frames): list(itertools.islice(it, size)), [])
        try:
            # A worker that ends before the oldest batch is handed over starts the queued one.
            for index, chunk in enumerate(itertools.islice(chunks, workers + 1)):
                running.append(pool.submit(work, index, chunk))
            index = len(running)
            while running:
                done = running.popleft().result()
                chunk = next(chunks, None)
                if chunk is not None:  # the next batch starts before this one is handed over
                    running.append(pool.submit(work, index, chunk))
                    index += 1
                yield done
        finally:
            with turn:
                progress["stopped"] = True
                turn.notify_all()
            pool.shutdown(wait=True, cancel_futures=True)

    def stream(self, source: np.ndarray | PreparedSource, driving: Iterable[np.ndarray], *,
               relative: bool = DEFAULTS.relative, adapt_scale: bool = DEFAULTS.adapt_scale,
               best_frame: int | None = DEFAULTS.best_frame, batch_size: int | None = DEFAULTS.batch_size,
               reference: np.ndarray | None = None, smoothing: float = DEFAULTS.smoothing,
               fps: float = 25.0, avd: bool = DEFAULTS.avd, keep_on_device: bool = False
               ) -> Iterator[AnimationBatch]:
        """Animate lazily: driving frames are read and results yielded batch by batch.

        Args: as :meth:`animate`; ``source`` may be prepared already
            (:meth:`prepare_source`: a caller that needs its keypoints too finds them
            once); ``batch_size`` driving frames go through at once.
            With ``best_frame`` and a one-pass iterator, frames up to it are held in
            memory; a caller that can fetch that frame itself passes it as ``reference``.
            ``smoothing`` (0 = off, up to 1) filters the driving keypoints over time
            (One-Euro filter at the clip's ``fps``). ``keep_on_device`` also hands
            each batch's frames over on the device (:attr:`AnimationBatch.on_device`).
        Yields:
            :class:`AnimationBatch` in order, covering every driving frame once.
        """
        self.check_avd(avd)
        prepared = source if isinstance(source, PreparedSource) else self.prepare_source(source)
        if reference is not None:
            frames = driving
        else:
            frames, reference = _split_reference(driving, best_frame)
        kp_initial = self.detect_keypoints([reference]) if reference is not None else None
        if not 0.0 <= smoothing <= 1.0:
            raise InputError(f"smoothing must be between 0 (off) and 1, got {smoothing:g}.")
        smoother = KeypointSmoother(smoothing, fps) if smoothing > 0 else None
        size = self.batch_size(batch_size)
        if size < 1:
            raise InputError(f"batch_size must be at least 1, got {size}.")
        scale: float | None = None

        def steer(kp_driving: Keypoints) -> tuple[Keypoints, Keypoints]:
            """The batch's keypoints smoothed and the source's moved to them: in order."""
            nonlocal kp_initial, scale
            if smoother is not None:
                kp_driving = smoother(kp_driving)
            if kp_initial is None:
                kp_initial = {k: v[:1] for k, v in kp_driving.items()}
            if scale is None:
                scale = movement_scale(prepared.keypoints, kp_initial) if relative and adapt_scale else 1.0
            return kp_driving, self.transfer_keypoints(prepared, kp_driving, kp_initial, relative=relative,
                                              adapt_scale=adapt_scale, scale=scale, avd=avd)

        def batch(at: int, kp_driving: Keypoints, kp_new: Keypoints, out: torch.Tensor) -> AnimationBatch:
            return AnimationBatch(start=at, frames=out.permute(0, 2, 3, 1).float().cpu().numpy(),
                                  driving_keypoints=kp_driving["value"].float().cpu().numpy(),
                                  keypoints=kp_new["value"].float().cpu().numpy(),
                                  on_device=out if keep_on_device else None)

        start = 0
        workers = self._workers()
        if workers > 1:
            for item in self._in_workers(frames, size, workers, steer, prepared):
                yield batch(start, *item)
                start += item[2].shape[0]
        else:
            pending: list[np.ndarray] = []
            it = iter(frames)
            while True:
                pending.extend(itertools.islice(it, size - len(pending)))
                if not pending:
                    break
                kp_found = self.detect_keypoints(pending)
                state = smoother.snapshot() if smoother is not None else None
                kp_driving, kp_new = steer(kp_found)
                try:
                    out = self.generate(prepared, kp_new)
                except torch.OutOfMemoryError:
                    if size == 1:
                        raise
                    torch.cuda.empty_cache()
                    if smoother is not None:
                        smoother.restore(state)
                    size = max(1, size // 2)
                    # Retry the frames that did not fit, in smaller batches.
                    it = itertools.chain(pending[size:], it)
                    pending = pending[:size]
                    continue
                yield batch(start, kp_driving, kp_new, out)
                start += out.shape[0]
                pending = []
        if start == 0:
            raise InputError("The driving video has no frames.")

    def animate(self, source: np.ndarray, driving: Iterable[np.ndarray] | np.ndarray, *,
                relative: bool = DEFAULTS.relative, adapt_scale: bool = DEFAULTS.adapt_scale,
                best_frame: int | None = DEFAULTS.best_frame, batch_size: int | None = DEFAULTS.batch_size,
                smoothing: float = DEFAULTS.smoothing, fps: float = 25.0, avd: bool = DEFAULTS.avd) -> np.ndarray:
        """Animate ``source`` by the motion of ``driving``.

        Args:
            source: (H, W, 3) RGB image, uint8 or float in [0, 1] (grey and RGBA accepted).
            driving: (N, H, W, 3) array, or a sequence or iterator of (H, W, 3) frames.
                Frames not at the model's size are resized (aspect ratio not kept:
                crop first); frames already at that size are used as they are.
            relative: relative motion (see :class:`~fomm_space.options.AnimationOptions`);
                ``False`` is TPSMM's "standard" mode (the driving keypoints as they are).
            adapt_scale: movement-scale adaptation (only with ``relative``). TPSMM's
                relative mode always scales; ``False`` moves by the plain displacement.
            avd: TPSMM's AVD mode (the AVD network combines the driving pose with the
                source's identity; ``relative`` and ``adapt_scale`` are then unused).
                :class:`InputError` for a model without an AVD network.
            best_frame: index of the reference driving frame; the clip is animated from
                it forwards and backwards and joined, as in the authors' demo.
            smoothing: 0 (off, the authors' behaviour) to 1: steadier driving keypoints
                (a One-Euro filter at ``fps`` frames per second).
        Returns:
            (N, H, W, 3) float32 RGB in [0, 1] at the model's frame size.
        """
        batches = list(self.stream(source, driving, relative=relative, adapt_scale=adapt_scale,
                                   best_frame=best_frame, batch_size=batch_size, smoothing=smoothing, fps=fps,
                                   avd=avd))
        return np.concatenate([b.frames for b in batches], axis=0)


FommModel = AnimationModel
"""The engine's earlier name, kept for existing callers."""


def _split_reference(driving: Iterable[np.ndarray], best_frame: int | None
                     ) -> tuple[Iterable[np.ndarray], np.ndarray | None]:
    """The frames to animate and the reference frame (``None``: the first frame)."""
    if best_frame is None:
        return driving, None
    if isinstance(best_frame, bool) or not isinstance(best_frame, (int, np.integer)) or best_frame < 0:
        raise InputError(f"best_frame must be a frame index >= 0, got {best_frame!r}.")
    if isinstance(driving, (np.ndarray, Sequence)):
        if best_frame >= len(driving):
            raise InputError(f"best_frame {best_frame} is past the end of the driving video "
                             f"({len(driving)} frames).")
        return driving, driving[best_frame]
    it = iter(driving)
    head = list(itertools.islice(it, best_frame + 1))
    if len(head) <= best_frame:
        raise InputError(f"best_frame {best_frame} is past the end of the driving video ({len(head)} frames).")
    return itertools.chain(head, it), head[best_frame]


def load_model(name: str | None = None, *, config: str | Path | ModelConfig | None = None,
               checkpoint: str | Path | None = None, device: str | torch.device | None = None,
               precision: str = "auto", align_corners: bool = True, repo_id: str | None = None,
               revision: str | None = None, cache_dir: str | Path | None = None,
               progress: Callable[[int, int | None], None] | None = None) -> AnimationModel:
    """Load a model of either family (FOMM or TPSMM), by name from the Hub or from local files.

    Args:
        name: one of ``fomm_space.MODELS`` (default ``vox``; ``tps-vox`` etc. for TPSMM)
            when no checkpoint is given; with a checkpoint, only picks the config.
        config: a config YAML path (or :class:`ModelConfig`); default: the named model's.
            The config says the family (``num_kp``: FOMM, ``num_tps``: TPSMM).
        checkpoint: a local ``.pth.tar``; default: download the named model.
        device: ``cuda``, ``mps``, ``cpu`` or ``None`` for the best available.
        precision: ``auto`` (fp16 on CUDA, bf16 on CPUs with native bf16, else fp32),
            ``fp32``, ``bf16`` or ``fp16``.
        align_corners: FOMM's ``grid_sample`` alignment. ``True`` is what the published
            checkpoints were trained with; ``False`` is what the authors' code does on
            PyTorch >= 1.3. (TPSMM always aligns corners, as its authors' code does.)
        repo_id, revision, cache_dir: where to download from and cache (mirrors).
        progress: ``progress(bytes_done, bytes_total)`` while the checkpoint downloads.
    Raises:
        ConfigError, ModelNotFoundError, CheckpointError, InputError.
    """
    sha256 = None
    if checkpoint is None:
        from .hub import download_checkpoint

        spec = get_spec(name or DEFAULT_MODEL, repo_id=repo_id, revision=revision)
        checkpoint = download_checkpoint(spec, cache_dir=cache_dir, progress=progress)
        sha256 = spec.sha256
        config = config or spec.config_path
    elif config is None:
        if name is None:
            raise InputError("A checkpoint needs its config: {give_config}.")
        config = get_spec(name).config_path
    cfg = config if isinstance(config, ModelConfig) else read_config(config)
    select_dtype(precision, select_device(device))  # fail on a bad option before the slow part
    networks = cfg.build(align_corners=align_corners)
    state = read_checkpoint(checkpoint, family=cfg.family, sha256=sha256)
    for part in (part for parts in LAYOUTS[cfg.family] for part in parts):
        if part in state:
            load_state(getattr(networks, part), state[part], part=part, source=str(checkpoint))
        else:  # an optional network the file lacks is absent, never left at random weights
            setattr(networks, part, None)
    return AnimationModel(networks, cfg, device=device, precision=precision,
                          name=name or Path(str(checkpoint)).name)
