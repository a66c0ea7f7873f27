"""Every way a checkpoint can be wrong gives our own error with a useful message."""

import hashlib
import os
import pickle
import shutil

import pytest
import torch

import fomm_space
from fomm_space.checkpoint import read_checkpoint, sha256_of
from fomm_space.errors import CheckpointError, ConfigError, InputError, ModelNotFoundError
from tests.conftest import PARITY


def load(config, checkpoint, **kw):
    return fomm_space.load_model(config=config, checkpoint=checkpoint, device="cpu", **kw)


def test_loads_legacy_format_and_ignores_training_state(tiny_files):
    state = torch.load(tiny_files[1], map_location="cpu", weights_only=True)
    assert "discriminator" in state  # the fixture carries training state, which is dropped
    assert set(read_checkpoint(tiny_files[1])) == {"kp_detector", "generator"}


def test_module_prefix_is_tolerated(tiny_files, tmp_path):
    state = torch.load(tiny_files[1], map_location="cpu", weights_only=True)
    wrapped = {part: {"module." + k: v for k, v in state[part].items()} for part in ("kp_detector", "generator")}
    torch.save(wrapped, tmp_path / "dp.pth.tar")
    load(tiny_files[0], tmp_path / "dp.pth.tar")


def test_missing_file(tiny_files, tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load(tiny_files[0], tmp_path / "nope.pth.tar")


def test_truncated_file(tiny_files, tmp_path):
    data = tiny_files[1].read_bytes()
    (tmp_path / "cut.pth.tar").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        load(tiny_files[0], tmp_path / "cut.pth.tar")


def test_not_a_checkpoint(tiny_files, tmp_path):
    (tmp_path / "text.pth.tar").write_text("hello")
    with pytest.raises(CheckpointError):
        load(tiny_files[0], tmp_path / "text.pth.tar")


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("touch pwned-by-checkpoint",))


def test_pickle_with_code_is_refused_and_nothing_runs(tiny_files, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with open(tmp_path / "evil.pth.tar", "wb") as f:
        pickle.dump({"generator": {}, "kp_detector": {}, "x": _RunsCode()}, f)
    with pytest.raises(CheckpointError, match="could run code"):
        load(tiny_files[0], tmp_path / "evil.pth.tar")
    assert not (tmp_path / "pwned-by-checkpoint").exists()


def test_checkpoint_of_another_model(tmp_path):
    mgif = PARITY / "tiny-mgif"
    with pytest.raises(CheckpointError, match="does not fit .*jacobian"):
        load(PARITY / "tiny-vox" / "config.yaml", mgif / "checkpoint.pth.tar")


def test_missing_keys(tiny_files, tmp_path):
    state = torch.load(tiny_files[1], map_location="cpu", weights_only=True)
    del state["generator"]["final.weight"]
    torch.save({"generator": state["generator"], "kp_detector": state["kp_detector"]}, tmp_path / "m.pth.tar")
    with pytest.raises(CheckpointError, match="1 missing, e.g. final.weight"):
        load(tiny_files[0], tmp_path / "m.pth.tar")


def test_without_state_dicts(tiny_files, tmp_path):
    torch.save({"epoch": 3}, tmp_path / "e.pth.tar")
    with pytest.raises(CheckpointError, match="needs 'kp_detector' and 'generator'"):
        load(tiny_files[0], tmp_path / "e.pth.tar")


def test_hash_mismatch(tiny_files, tmp_path):
    good = sha256_of(tiny_files[1])
    assert good == hashlib.sha256(tiny_files[1].read_bytes()).hexdigest()
    read_checkpoint(tiny_files[1], sha256=good)
    with pytest.raises(CheckpointError, match="sha256"):
        read_checkpoint(tiny_files[1], sha256="0" * 64)


def test_missing_and_bad_config(tiny_files, tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load(tmp_path / "none.yaml", tiny_files[1])
    (tmp_path / "bad.yaml").write_text("model_params: [1, 2")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load(tmp_path / "bad.yaml", tiny_files[1])
    (tmp_path / "other.yaml").write_text("train_params: {}\n")
    with pytest.raises(ConfigError, match="not a FOMM or TPSMM config"):
        load(tmp_path / "other.yaml", tiny_files[1])


def test_unknown_model_name_and_options(tiny_files):
    with pytest.raises(ModelNotFoundError, match="choose one of: vox, vox-adv"):
        fomm_space.load_model("voxx")
    with pytest.raises(InputError, match="precision"):
        load(*tiny_files, precision="fp8")
    with pytest.raises(InputError, match="fp16 is not supported on the CPU"):
        load(*tiny_files, precision="fp16")
    with pytest.raises(InputError, match="Unknown device"):
        fomm_space.load_model(config=tiny_files[0], checkpoint=tiny_files[1], device="tpu9")


def test_checkpoint_without_config_needs_one(tiny_files, tmp_path):
    shutil.copy(tiny_files[1], tmp_path / "c.pth.tar")
    with pytest.raises(InputError, match="needs its config"):
        fomm_space.load_model(checkpoint=tmp_path / "c.pth.tar")


def test_legacy_checkpoint_cut_after_5000_bytes(tiny_files, tmp_path):
    """The published (legacy, non-zip) format cut short: torch raised struct.error here,
    which a list of exception types let through as a traceback."""
    data = tiny_files[1].read_bytes()
    assert not data.startswith(b"PK")  # the fixture is in the legacy format, as the published files
    (tmp_path / "cut.pth.tar").write_bytes(data[:5000])
    with pytest.raises(CheckpointError, match="can't be read"):
        load(tiny_files[0], tmp_path / "cut.pth.tar")


@pytest.mark.parametrize("legacy", [True, False], ids=["legacy", "zip"])
def test_mutated_checkpoints_give_our_error_or_load(tiny_files, tmp_path, legacy):
    """Seeded truncations, byte flips and block overwrites of both formats: each one loads
    or raises a FommError with a one-line message; no other exception escapes."""
    import io
    import random

    state = torch.load(tiny_files[1], map_location="cpu", weights_only=True)
    buffer = io.BytesIO()
    torch.save({k: state[k] for k in ("kp_detector", "generator")}, buffer,
               _use_new_zipfile_serialization=not legacy)
    data = buffer.getvalue()
    rng = random.Random(1 + legacy)
    path = tmp_path / "m.pth.tar"
    for case in range(40):
        kind = case % 3
        if kind == 0:
            mutated = data[:rng.randrange(len(data))]
        elif kind == 1:
            mutated = bytearray(data)
            for _ in range(rng.randint(1, 8)):
                mutated[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        else:
            mutated = bytearray(data)
            start = rng.randrange(len(data))
            mutated[start:start + 64] = bytes(rng.randrange(256) for _ in range(64))
        path.write_bytes(bytes(mutated))
        try:
            load(tiny_files[0], path)
        except fomm_space.FommError as e:
            assert "\n" not in str(e).strip()
