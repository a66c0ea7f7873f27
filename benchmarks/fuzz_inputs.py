"""Mutated inputs through the library's entry points: every case must end in a valid
result or one of our errors with a one-line message, within a time bound, leaving no
file behind.

    python benchmarks/fuzz_inputs.py [--cases 3000] [--seed 0]

Seeds (made here): photos (PNG, JPEG with EXIF rotation, WebP, GIF, 16-bit PNG), driving
clips (mp4 with sound, webm, mov, gif), checkpoints (legacy and zip formats) and a config.
Mutations: truncation, bit flips, block overwrites, empty files, one format's header on
another's body, huge declared sizes; for the config also wrong types, missing keys, huge
numbers and alias bombs. Photos and clips go through ``animate_files`` (tiny model, crop
off), checkpoints and configs through ``load_model``. Prints counts and peak memory.
"""

from __future__ import annotations

import argparse
import io
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


def run_case(seeds: dict[str, Path], model, rng: random.Random, work: Path) -> tuple[str, str]:
    """Mutate one seed and run it; returns (seed name, "ok" | "refused"). Raises
    AssertionError for anything else: another exception, a hang, a leftover file or a
    message over one line."""
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
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(CASE_SECONDS)
    try:
        if name.endswith((".yaml", ".pth.tar")):
            config, checkpoint = (target, TINY / "checkpoint.pth.tar") if name.endswith(".yaml") else \
                (TINY / "config.yaml", target)
            load_model(config=config, checkpoint=checkpoint, device="cpu")
        else:
            photo, clip = (target, seeds["clip.mp4"]) if name.startswith("photo") else (seeds["photo.png"], target)
            animate_files(model, photo, clip, out / "out.mp4", options=AnimationOptions(crop=False, max_seconds=5),
                          overlay=out / "overlay.mp4")
            assert (out / "out.mp4").stat().st_size > 0, f"{name}/{kind}: reported done, but no video"
        outcome = "ok"
    except FommError as e:
        message = str(e).strip()
        assert message and "\n" not in message, f"{name}/{kind}: message of several lines: {message!r}"
        outcome = "refused"
        assert not any(out.iterdir()), f"{name}/{kind}: files left after a refusal: {list(out.iterdir())}"
    except CaseTimeout:
        raise AssertionError(f"{name}/{kind}: no answer within {CASE_SECONDS} s") from None
    except Exception as e:
        raise AssertionError(f"{name}/{kind}: unexpected {type(e).__name__}: {e}") from e
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    for path in out.iterdir():
        path.unlink()
    leftovers = [p for p in work.iterdir() if p.name.startswith(".")]
    assert not leftovers, f"{name}/{kind}: temporary files left: {leftovers}"
    return name, outcome


def main() -> None:
    import tempfile

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    model = load_model(config=TINY / "config.yaml", checkpoint=TINY / "checkpoint.pth.tar", device="cpu")
    rng = random.Random(args.seed)
    counts: Counter = Counter()
    failures = []
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        seeds = make_seeds(Path(tmp) / "seeds")
        for i in range(args.cases):
            try:
                name, outcome = run_case(seeds, model, rng, Path(tmp) / "work")
                counts[outcome] += 1
                counts[name] += 1
            except AssertionError as e:
                failures.append(f"case {i}: {e}")
                print(failures[-1], flush=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{args.cases} cases (seed {args.seed}) in {time.perf_counter() - t0:.0f} s: {counts['ok']} valid, "
          f"{counts['refused']} refused with our message, {len(failures)} failures (unexpected exceptions, hangs, "
          f"leftover files); peak RSS {peak:.0f} MiB")
    print("per seed: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()) if k not in ("ok", "refused")))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
