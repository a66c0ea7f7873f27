"""fomm-space as an installed package: the wheel built from this checkout, installed into
a clean virtual environment, and its ``fomm-space`` command run from another folder."""

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A new venv with the wheel installed (no dependencies: those of the test
    environment are made visible to it by a .pth file, so nothing is downloaded)."""
    pytest.importorskip("setuptools")
    work = tmp_path_factory.mktemp("install")
    source = work / "source"  # a copy: building writes build/ and *.egg-info beside the sources
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, source / name)
    for name in ("fomm_space", "config"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(work / "dist")], check=True, capture_output=True, cwd=work)
    wheel = next((work / "dist").glob("fomm_space-*.whl"))
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
    python = venv / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], check=True,
                   capture_output=True)
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    (Path(site) / "test-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    elsewhere = work / "elsewhere"
    elsewhere.mkdir()
    return venv, wheel, elsewhere


def test_the_wheel_holds_the_package_and_the_configs(installed):
    import zipfile

    _, wheel, _ = installed
    names = zipfile.ZipFile(wheel).namelist()
    assert "fomm_space/cli.py" in names and "fomm_space/tpsmm/networks/avd.py" in names
    assert {f"fomm_space/configs/{p.name}" for p in (ROOT / "config").glob("*.yaml")} <= set(names)
    assert not any(n.startswith(("tests/", "benchmarks/", "app.py")) for n in names)


def test_the_command_runs_from_another_folder(installed, tiny_files, media):
    venv, _, elsewhere = installed
    command = venv / "bin" / "fomm-space"
    shown = subprocess.run([str(command), "--help"], capture_output=True, text=True, cwd=elsewhere)
    assert shown.returncode == 0 and "usage: fomm-space" in shown.stdout and "animate" in shown.stdout
    models = subprocess.run([str(command), "models"], capture_output=True, text=True, cwd=elsewhere)
    assert models.returncode == 0 and "tps-vox" in models.stdout
    photo, clip = media
    config, checkpoint = tiny_files
    run = subprocess.run([str(command), "animate", "--config", str(config), "--checkpoint", str(checkpoint),
                          "--source", str(photo), "--driving", str(clip), "--output", "out.mp4", "--no-crop",
                          "--device", "cpu"], capture_output=True, text=True, cwd=elsewhere)
    assert run.returncode == 0, run.stderr
    assert (elsewhere / "out.mp4").stat().st_size > 0


def test_the_installed_package_finds_its_own_configs(installed):
    venv, _, elsewhere = installed
    code = ("import fomm_space, fomm_space.registry as r; p = r.MODELS['tps-ted'].config_path; "
            "print(fomm_space.__file__); print(p); print(p.is_file())")
    out = subprocess.run([str(venv / "bin" / "python"), "-c", code], capture_output=True, text=True, cwd=elsewhere,
                         check=True).stdout.split("\n")
    assert str(venv) in out[0] and str(venv) in out[1] and out[1].endswith("fomm_space/configs/tps-ted-384.yaml")
    assert out[2] == "True"
