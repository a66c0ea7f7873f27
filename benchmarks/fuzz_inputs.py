"""Mutated inputs through the library's entry points: every case must end in a valid
result or one of our errors with a one-line message, within a time bound, leaving no
file behind.

    python benchmarks/fuzz_inputs.py [--cases 3000] [--seed 0] [--cli-every 50] [--app-every 10]

Seeds (made here): photos (PNG, JPEG with EXIF rotation, WebP, GIF, 16-bit PNG), driving
clips (mp4 with sound, webm, mov, gif), checkpoints (legacy and zip formats) and a config.
Mutations: truncation, bit flips, block overwrites, empty files, one format's header on
another's body, huge declared sizes; for the config also wrong types, missing keys, huge
numbers and alias bombs. Photos and clips go through ``animate_files`` (tiny model, crop
off), checkpoints and configs through ``load_model``; every ``--cli-every``-th case goes
through the CLI instead (one stderr line and a non-zero exit, or a video), and every
``--app-every``-th photo or clip through the web app's API (our message, or a video).
Each case's memory growth is measured (the peak RSS of the case, reset before it) and
must stay under 2 GiB. Prints counts, peak memory and the largest growth of a case.
"""

from __future__ import annotations

import argparse
import random
import resource
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fomm_space import AnimationOptions, FommError, load_model  # noqa: E402
from fomm_space.pipeline import animate_files  # noqa: E402
from fomm_space.video import VideoWriter, ffmpeg_exe  # noqa: E402

TINY = ROOT / "tests" / "data" / "parity" / "tiny-vox"
CASE_SECONDS = 60
CASE_MEMORY = 2 << 30  # bytes a case may add to the process's resident memory
HEADERS = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0", b"GIF89a", b"RIFF\x00\x00\x00\x00WEBP",
           b"\x00\x00\x00\x20ftypisom", b"\x1a\x45\xdf\xa3", b"PK\x03\x04", b"\x80\x02")
YAML_BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{c}: &{c} [{', '.join(['*' + p] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi")) + "model_params: *i\n"


def make_seeds(folder: Path) -> dict[str, Path]:
    """The valid files every mutation starts from."""
    import torch
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    photo = (rng.random((72, 96, 3)) * 255).astype(np.uint8)
    seeds = {}
    for name, kwargs in (("photo.png", {}), ("photo.webp", {}), ("photo.gif", {})):
        Image.fromarray(photo).save(folder / name, **kwargs)
        seeds[name] = folder / name
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated 90 degrees
    Image.fromarray(photo).save(folder / "photo.jpg", exif=exif)
    Image.fromarray((photo[..., 0].astype(np.uint16) * 257)).save(folder / "photo16.png")
    seeds.update({"photo.jpg": folder / "photo.jpg", "photo16.png": folder / "photo16.png"})
    frames = [np.roll(photo[:64, :80], 3 * t, axis=1) for t in range(6)]
    with VideoWriter(folder / "silent.mp4", 10.0) as writer:
        for frame in frames:
            writer.write(frame)
    ffmpeg = ffmpeg_exe()
    run = [ffmpeg, "-v", "error", "-y", "-i", str(folder / "silent.mp4")]
    subprocess.run([*run, "-f", "lavfi", "-i", "sine=frequency=440:duration=0.6", "-c:v", "copy", "-shortest",
                    str(folder / "clip.mp4")], check=True)
    for name, codec in (("clip.webm", ["-c:v", "libvpx-vp9", "-an"]), ("clip.mov", ["-c:v", "copy", "-an"]),
                        ("clip.gif", [])):
        subprocess.run([*run, *codec, str(folder / name)], check=True)
    seeds.update({n: folder / n for n in ("clip.mp4", "clip.webm", "clip.mov", "clip.gif")})
    state = torch.load(TINY / "checkpoint.pth.tar", map_location="cpu", weights_only=True)
    state = {k: state[k] for k in ("kp_detector", "generator")}
    for name, zipped in (("legacy.pth.tar", False), ("zip.pth.tar", True)):
        torch.save(state, folder / name, _use_new_zipfile_serialization=zipped)
        seeds[name] = folder / name
    seeds["config.yaml"] = TINY / "config.yaml"
    return seeds


def mutate_bytes(data: bytes, rng: random.Random) -> tuple[str, bytes]:
    """One random mutation of a binary file."""
    kind = rng.choice(["truncate", "flip", "block", "empty", "header", "size"])
    out = bytearray(data)
    if kind == "truncate":
        return kind, data[:rng.randrange(len(data))]
    if kind == "flip":
        for _ in range(rng.randint(1, 16)):
            out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
    elif kind == "block":
        start = rng.randrange(len(out))
        out[start:start + rng.randint(8, 512)] = bytes(rng.randrange(256) for _ in range(rng.randint(8, 512)))
    elif kind == "empty":
        return kind, b""
    elif kind == "header":
        header = rng.choice(HEADERS)
        out[:len(header)] = header
    else:  # a declared size, count or duration far beyond the file: a big number in a header field
        at = rng.randrange(min(len(out), 256))
        out[at:at + 4] = rng.choice([b"\x7f\xff\xff\xff", b"\x00\x01\x00\x00", b"\xff\xff\xff\xff"])
    return kind, bytes(out)


def mutate_config(text: str, rng: random.Random) -> tuple[str, str]:
    """One random mutation of the YAML config."""
    kind = rng.choice(["type", "missing", "huge", "bomb", "bytes"])
    lines = text.splitlines()
    keyed = [i for i, line in enumerate(lines) if ":" in line and not line.rstrip().endswith(":")]
    i = rng.choice(keyed)
    key = lines[i].split(":")[0]
    if kind == "type":
        lines[i] = key + ": " + rng.choice(["abc", "[1, 2]", "{a: 1}", "null", "true", "-3", "0.5"])
    elif kind == "missing":
        del lines[i]
    elif kind == "huge":
        lines[i] = key + ": " + rng.choice(["1e308", "99999999999999999999", ".inf", "123456789"])
    elif kind == "bomb":
        return kind, YAML_BOMB
    else:
        return kind, mutate_bytes(text.encode(), rng)[1].decode("utf-8", "replace")
    return kind, "\n".join(lines) + "\n"


class CaseTimeout(Exception):
    pass


def _alarm(signum, frame):
    raise CaseTimeout()


def _rss_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def reset_peak_memory() -> int | None:
    """Reset this process's peak RSS (Linux ``clear_refs``); returns the RSS now, in
    bytes, or None where that can't be done."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
    except OSError:
        return None
    rss = _rss_kib("VmRSS")
    return rss * 1024 if rss is not None else None


def peak_memory() -> int | None:
    """This process's peak RSS since the last :func:`reset_peak_memory`, in bytes."""
    peak = _rss_kib("VmHWM")
    return peak * 1024 if peak is not None else None


class AppRoute:
    """The web app (tiny model) served on loopback, called through gradio_client."""

    def __init__(self, temp_dir: Path | None = None):
        from benchmarks.serve import app_in_process

        where = [] if temp_dir is None else ["--temp-dir", temp_dir]
        self._served = app_in_process(["--config", TINY / "config.yaml", "--checkpoint", TINY / "checkpoint.pth.tar",
                                       "--device", "cpu", "--keep-minutes", "1", *where])
        self.demo = self._served.__enter__()

    def animate(self, photo: Path, clip: Path) -> str:
        """"ok", or "refused" with our message; raises AssertionError otherwise."""
        from gradio_client import Client, handle_file
        from gradio_client.exceptions import AppError

        try:
            Client(self.demo.local_url, verbose=False).predict(
                source=handle_file(str(photo)), driving=handle_file(str(clip)), relative=True, adapt_scale=True,
                crop_faces=False, find_best_frame=False, max_seconds=5, api_name="/animate")
            return "ok"
        except AppError as e:
            message = str(e).strip()
            assert message and "\n" not in message and "has raised an exception" not in message, \
                f"the app gave no message of ours: {message!r}"
            return "refused"

    def close(self) -> None:
        self._served.__exit__(None, None, None)


def _run_cli(config: Path, checkpoint: Path, photo: Path, clip: Path, out: Path) -> str:
    """The CLI on one case: "ok" (exit 0 and a video) or "refused" (one stderr line
    naming the problem, a non-zero exit, no output)."""
    cmd = [sys.executable, "-m", "fomm_space", "animate", "--config", str(config), "--checkpoint",
           str(checkpoint), "--source", str(photo), "--driving", str(clip), "--output", str(out / "out.mp4"),
           "--overlay", str(out / "overlay.mp4"), "--no-crop", "--max-seconds", "5", "--device", "cpu"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=CASE_SECONDS, cwd=ROOT)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    if done.returncode == 0:
        assert (out / "out.mp4").stat().st_size > 0, "the CLI exited 0 without a video"
        return "ok"
    assert len(lines) == 1 and lines[0].startswith("error: "), f"the CLI's stderr: {done.stderr[-2000:]!r}"
    return "refused"


def run_case(seeds: dict[str, Path], model, rng: random.Random, work: Path, route: str = "library",
             app: AppRoute | None = None) -> tuple[str, str]:
    """Mutate one seed and run it through ``route`` ("library", "cli" or "app"; the app
    takes photos and clips only, others go to the library); returns (seed name, "ok" |
    "refused"). Raises AssertionError for anything else: another exception, a hang, a
    leftover file, a message over one line, or more than CASE_MEMORY of memory."""
    name = rng.choice(sorted(seeds))
    work.mkdir(parents=True, exist_ok=True)
    target = work / ("in" + Path(name).suffix)
    if name == "config.yaml":
        kind, text = mutate_config(seeds[name].read_text(), rng)
        target.write_text(text)
    else:
        kind, data = mutate_bytes(seeds[name].read_bytes(), rng)
        target.write_bytes(data)
    out = work / "out"
    out.mkdir(exist_ok=True)
    model_case = name.endswith((".yaml", ".pth.tar"))
    if route == "app" and model_case:
        route = "library"
    config, checkpoint = TINY / "config.yaml", TINY / "checkpoint.pth.tar"
    if model_case:
        config, checkpoint = (target, checkpoint) if name.endswith(".yaml") else (config, target)
    photo, clip = seeds["photo.png"], seeds["clip.mp4"]
    if not model_case:
        photo, clip = (target, clip) if name.startswith("photo") else (photo, target)
    label = f"{name}/{kind} via {route}"
    base = reset_peak_memory() if route == "library" else None
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(CASE_SECONDS)
    try:
        if route == "cli":
            outcome = _run_cli(config, checkpoint, photo, clip, out)
        elif route == "app":
            outcome = app.animate(photo, clip)
        elif model_case:
            load_model(config=config, checkpoint=checkpoint, device="cpu")
            outcome = "ok"
        else:
            animate_files(model, photo, clip, out / "out.mp4", options=AnimationOptions(crop=False, max_seconds=5),
                          overlay=out / "overlay.mp4")
            assert (out / "out.mp4").stat().st_size > 0, f"{label}: reported done, but no video"
            outcome = "ok"
    except FommError as e:
        message = str(e).strip()
        assert message and "\n" not in message, f"{label}: message of several lines: {message!r}"
        outcome = "refused"
    except CaseTimeout:
        raise AssertionError(f"{label}: no answer within {CASE_SECONDS} s") from None
    except subprocess.TimeoutExpired:
        raise AssertionError(f"{label}: no answer within {CASE_SECONDS} s") from None
    except AssertionError as e:
        raise AssertionError(f"{label}: {e}") from e
    except Exception as e:
        raise AssertionError(f"{label}: unexpected {type(e).__name__}: {e}") from e
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    if outcome == "refused":
        assert not any(out.iterdir()), f"{label}: files left after a refusal: {list(out.iterdir())}"
    if base is not None:
        grown = peak_memory() - base
        run_case.largest_growth = max(getattr(run_case, "largest_growth", 0), grown)
        assert grown < CASE_MEMORY, f"{label}: the case took {grown / 2**30:.1f} GiB"
    for path in out.iterdir():
        path.unlink()
    leftovers = [p for p in work.iterdir() if p.name.startswith(".")]
    assert not leftovers, f"{label}: temporary files left: {leftovers}"
    return name, outcome


def route_of(case: int, cli_every: int, app_every: int) -> str:
    """Which entry point case number ``case`` goes through."""
    if cli_every and case % cli_every == cli_every - 1:
        return "cli"
    if app_every and case % app_every == app_every - 1:
        return "app"
    return "library"


def main() -> None:
    import tempfile

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cli-every", type=int, default=50, help="every N-th case through the CLI (0: none)")
    parser.add_argument("--app-every", type=int, default=10, help="every N-th case through the app's API (0: none)")
    args = parser.parse_args()
    model = load_model(config=TINY / "config.yaml", checkpoint=TINY / "checkpoint.pth.tar", device="cpu")
    rng = random.Random(args.seed)
    counts: Counter = Counter()
    failures = []
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        app = AppRoute(Path(tmp) / "served") if args.app_every else None
        seeds = make_seeds(Path(tmp) / "seeds")
        for i in range(args.cases):
            route = route_of(i, args.cli_every, args.app_every)
            try:
                name, outcome = run_case(seeds, model, rng, Path(tmp) / "work", route, app)
                counts[outcome] += 1
                counts[name] += 1
                counts["via " + route] += 1
            except AssertionError as e:
                failures.append(f"case {i}: {e}")
                print(failures[-1], flush=True)
        if app is not None:
            app.close()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{args.cases} cases (seed {args.seed}) in {time.perf_counter() - t0:.0f} s: {counts['ok']} valid, "
          f"{counts['refused']} refused with our message, {len(failures)} failures (unexpected exceptions, hangs, "
          f"leftover files, memory); peak RSS {peak:.0f} MiB, largest growth of one library case "
          f"{getattr(run_case, 'largest_growth', 0) / 2**20:.0f} MiB")
    print("routes: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()) if k.startswith("via ")))
    print("per seed: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())
                                   if k not in ("ok", "refused") and not k.startswith("via ")))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
