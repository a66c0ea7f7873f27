"""benchmarks/gpu_check.py, the one-shot GPU check, in its dry run on the CPU: every
section runs and the table names each figure."""


def test_the_gpu_check_runs_every_section_in_its_dry_run(capsys):
    from benchmarks import gpu_check

    assert gpu_check.main(["--dry-run"]) == 0
    out = capsys.readouterr().out
    table = out[out.index("check "):]
    for row in ("FOMM parity tiny-vox, fp32", "TPSMM parity tiny-tps-mgif avd, fp32", "FOMM tiny-vox engine bf16",
                "TPSMM tiny-tps-vox engine bf16", "whole request, --no-crop, x264 asked", "whole request, --no-crop, nvenc",
                "live frame on the server"):
        assert row in table, row
    assert "failed:" not in table and "skipped" not in table
    assert "| NO" not in table  # the parity checks hold on the CPU too


def test_without_a_gpu_the_check_says_so():
    import torch

    from benchmarks import gpu_check

    if not torch.cuda.is_available():
        assert gpu_check.main([]) == 2
