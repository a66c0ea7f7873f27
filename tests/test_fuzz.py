"""Hostile files: seeded mutations of photos, clips, checkpoints and configs through the
library's entry points (the harness of benchmarks/fuzz_inputs.py, 200 cases)."""

import random

import pytest

from benchmarks import fuzz_inputs


@pytest.fixture(scope="module")
def seeds(tmp_path_factory):
    return fuzz_inputs.make_seeds(tmp_path_factory.mktemp("seeds"))


def test_mutated_inputs_give_a_result_or_our_one_line_error(seeds, tiny_model, tmp_path):
    rng = random.Random(0)
    outcomes = [fuzz_inputs.run_case(seeds, tiny_model, rng, tmp_path / "work") for _ in range(200)]
    kinds = {name for name, _ in outcomes}
    assert kinds == set(seeds)  # every seed was mutated at least once
    assert {outcome for _, outcome in outcomes} == {"ok", "refused"}


def test_a_share_goes_through_the_cli_and_the_app(seeds, tiny_model, tmp_path):
    app = fuzz_inputs.AppRoute()
    try:
        rng = random.Random(1)
        routes = [fuzz_inputs.route_of(i, 6, 3) for i in range(24)]
        assert routes.count("cli") == 4 and routes.count("app") == 4
        outcomes = [fuzz_inputs.run_case(seeds, tiny_model, rng, tmp_path / "work", route, app) for route in routes]
    finally:
        app.close()
    assert {outcome for _, outcome in outcomes} <= {"ok", "refused"}


def test_a_case_over_its_memory_bound_fails(seeds, tiny_model, tmp_path, monkeypatch):
    """A reader that allocated past the bound (here 256 MiB against a bound of 32) fails
    its case, even though it ends in one of our errors. (The peak is the process's: the
    margin is wide so that memory another thread frees meanwhile can't hide it.)"""
    import numpy as np

    from fomm_space import InputError

    if fuzz_inputs.reset_peak_memory() is None:
        pytest.skip("no /proc/self/clear_refs here")

    def greedy(*args, **kwargs):
        np.ones(256 << 20, np.uint8)  # written, so resident
        raise InputError("refused after a large allocation")

    monkeypatch.setattr(fuzz_inputs, "CASE_MEMORY", 32 << 20)
    monkeypatch.setattr(fuzz_inputs, "animate_files", greedy)
    monkeypatch.setattr(fuzz_inputs, "load_model", greedy)
    with pytest.raises(AssertionError, match="the case took"):
        fuzz_inputs.run_case(seeds, tiny_model, random.Random(3), tmp_path / "work")


def test_the_harness_catches_an_escaping_exception(seeds, tiny_model, tmp_path, monkeypatch):
    """A reader that let a decoder's error through would fail the harness."""
    def broken(*args, **kwargs):
        raise ValueError("escaped")

    monkeypatch.setattr(fuzz_inputs, "animate_files", broken)
    monkeypatch.setattr(fuzz_inputs, "load_model", broken)
    with pytest.raises(AssertionError, match="unexpected ValueError"):
        fuzz_inputs.run_case(seeds, tiny_model, random.Random(0), tmp_path / "work")
