"""TPSMM through the engine, the pipeline, the command line and the Hub: the family told
by the config, checkpoints of the wrong family refused, AVD only where it exists, the
384-pixel frame size carried through crop, paste-back and overlay."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import fomm_space
from fomm_space import AnimationOptions, CheckpointError, ConfigError, InputError
from fomm_space.families import config_from_dict, read_config
from fomm_space.fomm import FommConfig
from fomm_space.pipeline import animate_files
from fomm_space.tpsmm import TpsmmConfig
from fomm_space.video import probe, read_frames
from tests.conftest import write_video
from tests.test_hub import fake_hub

ROOT = Path(__file__).resolve().parents[2]


def tiny_tps_config(side: int = 64, **common) -> dict:
    return {"dataset_params": {"frame_shape": [side, side, 3]},
            "model_params": {"common_params": {"num_tps": 2, "num_channels": 3, "bg": False, "multi_mask": True,
                                               **common},
                             "generator_params": {"block_expansion": 4, "max_features": 16, "num_down_blocks": 3},
                             "dense_motion_params": {"block_expansion": 4, "max_features": 16, "num_blocks": 3,
                                                     "scale_factor": 0.25},
                             "avd_network_params": {"id_bottle_size": 8, "pose_bottle_size": 8}}}


def save_tps_model(folder: Path, data: dict, *, avd: bool = True, seed: int = 0) -> tuple[Path, Path]:
    """A config and a random checkpoint in the published layout (with the training-only extras)."""
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "config.yaml"
    config.write_text(yaml.safe_dump(data))
    torch.manual_seed(seed)
    networks = read_config(config).build()
    state = {part: getattr(networks, part).state_dict() for part in
             ("kp_detector", "dense_motion_network", "inpainting_network")}
    if avd:
        state["avd_network"] = networks.avd_network.state_dict()
    state.update(optimizer_avd={"state": {}, "param_groups": []}, epoch=0)
    checkpoint = folder / "model.pth.tar"
    torch.save(state, checkpoint)
    return config, checkpoint


def test_the_config_says_the_family(tiny_files, tiny_tps_files):
    assert isinstance(read_config(tiny_files[0]), FommConfig)
    tps = read_config(tiny_tps_files[0])
    assert isinstance(tps, TpsmmConfig) and tps.family == "tpsmm" and tps.num_kp == 20
    with pytest.raises(ConfigError, match="is a TPSMM config, not a FOMM one"):
        FommConfig.from_yaml(tiny_tps_files[0])
    data = yaml.safe_load(tiny_tps_files[0].read_text())
    del data["model_params"]["common_params"]["num_tps"]
    with pytest.raises(ConfigError, match="neither num_kp"):
        config_from_dict(data)


def test_published_configs_without_frame_shape_take_the_size_in_their_name(tmp_path):
    data = yaml.safe_load((ROOT / "config" / "tps-ted-384.yaml").read_text())
    data["dataset_params"]["frame_shape"] = None
    path = tmp_path / "ted-384.yaml"
    path.write_text(yaml.safe_dump(data))
    assert read_config(path).size == (384, 384)


@pytest.mark.parametrize("change, message", [
    ({"dataset_params": {"frame_shape": [200, 200, 3]}}, "does not fit the networks"),
    ({"generator_params": {"num_down_blocks": 2}}, "num_down_blocks = 3"),
    ({"dense_motion_params": {"block_expansion": "wide"}}, "must be a whole number"),
    ({"dense_motion_params": {"max_features": 10 ** 12}}, "must be a whole number"),
])
def test_configs_that_cannot_run_are_refused_clearly(change, message):
    data = tiny_tps_config()
    for key, sub in change.items():
        target = data if key == "dataset_params" else data["model_params"]
        target.setdefault(key, {}).update(sub)
    with pytest.raises(ConfigError, match=message):
        config_from_dict(data)


def test_a_checkpoint_of_the_other_family_is_refused(tiny_files, tiny_tps_files):
    with pytest.raises(CheckpointError, match="is a FOMM checkpoint, but the config is a TPSMM one"):
        fomm_space.load_model(config=tiny_tps_files[0], checkpoint=tiny_files[1], device="cpu")
    with pytest.raises(CheckpointError, match="is a TPSMM checkpoint, but the config is a FOMM one"):
        fomm_space.load_model(config=tiny_files[0], checkpoint=tiny_tps_files[1], device="cpu")


def test_published_layout_loads_strictly_and_extras_are_ignored(tiny_tps_files):
    data = torch.load(tiny_tps_files[1], weights_only=True)
    assert {"optimizer_avd", "bg_predictor", "epoch"} <= set(data)
    model = fomm_space.load_model(config=tiny_tps_files[0], checkpoint=tiny_tps_files[1], device="cpu")
    assert model.family == "tpsmm" and model.has_avd


def test_avd_only_where_there_is_an_avd_network(tiny_model, tmp_path):
    frames = np.random.default_rng(0).random((2, 64, 64, 3), dtype=np.float32)
    with pytest.raises(InputError, match="has no AVD network"):
        tiny_model.animate(frames[0], frames, avd=True)
    config, checkpoint = save_tps_model(tmp_path / "no-avd", tiny_tps_config(), avd=False)
    model = fomm_space.load_model(config=config, checkpoint=checkpoint, device="cpu")
    assert not model.has_avd and model.networks.avd_network is None  # never random weights
    assert model.animate(frames[0], frames).shape == (2, 64, 64, 3)
    with pytest.raises(InputError, match="has no AVD network"):
        model.animate(frames[0], frames, avd=True)


def test_384_pixel_model_through_crop_paste_back_and_overlay(tmp_path, colour_detector):
    config, checkpoint = save_tps_model(tmp_path / "ted", tiny_tps_config(384))
    model = fomm_space.load_model(config=config, checkpoint=checkpoint, device="cpu")
    assert model.size == (384, 384)
    photo = np.full((600, 800, 3), 110, np.uint8)
    photo[200:400, 300:450] = (255, 0, 0)
    from PIL import Image

    Image.fromarray(photo).save(tmp_path / "photo.png")
    frames = np.full((6, 240, 320, 3), 90, np.uint8)
    for t in range(6):
        frames[t, 60:160, 100 + 4 * t:170 + 4 * t] = (255, 0, 0)
    clip = write_video(tmp_path / "clip.mp4", frames)
    report = animate_files(model, tmp_path / "photo.png", clip, tmp_path / "out.mp4", options=AnimationOptions(avd=True),
                           overlay=tmp_path / "overlay.mp4", preview=tmp_path / "preview.png", detector=colour_detector)
    assert report.pasted and report.size == (800, 600) and report.frames == 6
    assert probe(report.output).size == (800, 600)
    assert probe(report.overlay).size == (3 * 384, 384)
    assert np.asarray(Image.open(report.preview)).shape == (384, 384, 3)
    first = next(read_frames(report.output))
    assert np.abs(first[:110].astype(int) - 110).max() <= 3  # above the crop square (from row 120): the photo


def test_tps_checkpoint_downloads_from_the_fake_hub_by_name(tiny_tps_files, tmp_path, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("FOMM_REPO_ID", "fomm/mirror")       # the other family's mirror: not used
    monkeypatch.setenv("TPSMM_REPO_ID", "tps/mirror")
    files = {"tps/mirror:vox.pth.tar": tiny_tps_files[1].read_bytes()}
    with fake_hub(files) as (url, requests):
        monkeypatch.setenv("HF_ENDPOINT", url)
        model = fomm_space.load_model("tps-vox", config=tiny_tps_files[0], cache_dir=tmp_path / "cache",
                                      device="cpu")
    assert model.family == "tpsmm" and model.size == (64, 64)
    assert any(r.startswith("GET /tps/mirror/resolve/main/vox.pth.tar") for r in requests)


def cli(*args):
    return subprocess.run([sys.executable, "-m", "fomm_space", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)


def test_cli_lists_both_families_and_runs_avd(tiny_files, tiny_tps_files, media, tmp_path):
    listing = cli("models").stdout.splitlines()
    assert listing[0].startswith("First Order Motion Model") and "tps-ted" in listing[-2]
    photo, clip = media
    out = tmp_path / "out.mp4"
    result = cli("animate", "--source", photo, "--driving", clip, "--output", out, "--no-crop", "--avd",
                 "--config", tiny_tps_files[0], "--checkpoint", tiny_tps_files[1], "--device", "cpu")
    assert result.returncode == 0, result.stderr
    assert probe(out).frame_count == 12
    fomm = cli("animate", "--source", photo, "--driving", clip, "--output", tmp_path / "f.mp4", "--no-crop",
               "--avd", "--config", tiny_files[0], "--checkpoint", tiny_files[1], "--device", "cpu")
    assert fomm.returncode == 2 and "--avd needs a TPSMM model" in fomm.stderr
    assert len(fomm.stderr.strip().splitlines()) == 1 and not (tmp_path / "f.mp4").exists()
    # A published FOMM model is refused before anything is downloaded (offline here).
    hub = cli("animate", "--source", photo, "--driving", clip, "--output", tmp_path / "h.mp4", "--model", "vox",
              "--avd")
    assert hub.returncode == 2 and hub.stderr.strip() == "error: --avd needs a TPSMM model (tps-*); this one is " \
        "FOMM. Drop --avd."
