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


def test_the_harness_catches_an_escaping_exception(seeds, tiny_model, tmp_path, monkeypatch):
    """A reader that let a decoder's error through would fail the harness."""
    def broken(*args, **kwargs):
        raise ValueError("escaped")

    monkeypatch.setattr(fuzz_inputs, "animate_files", broken)
    monkeypatch.setattr(fuzz_inputs, "load_model", broken)
    with pytest.raises(AssertionError, match="unexpected ValueError"):
        fuzz_inputs.run_case(seeds, tiny_model, random.Random(0), tmp_path / "work")
