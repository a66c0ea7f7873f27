"""Steady keypoints: the One-Euro filter, and output jitter with noisy keypoints."""

import contextlib
import numpy as np
import torch

from fomm_space.smoothing import KeypointSmoother


class NoisyKeypoints(torch.nn.Module):
    """Wraps a keypoint detector and adds Gaussian noise to what it finds (a shaky
    detector, the cause of jitter), reproducibly."""

    def __init__(self, detector, sigma):
        super().__init__()
        self.detector, self.sigma = detector, sigma
        self.rng = torch.Generator().manual_seed(0)

    def forward(self, x):
        kp = self.detector(x)
        if x.shape[0] == 1 and getattr(self, "_source_done", False) is False:
            self._source_done = True  # the source image: left clean
            return kp
        noise = torch.randn(kp["value"].shape, generator=self.rng) * self.sigma
        return {**kp, "value": kp["value"] + noise.to(kp["value"].device)}


def jitter(frames):
    return float(np.abs(np.diff(frames, axis=0)).mean())


@contextlib.contextmanager
def noisy_detector(model, sigma):
    """``model``'s keypoint detector wrapped in :class:`NoisyKeypoints` for the block,
    then put back. (Assigned as a submodule: torch keeps those in ``_modules``, which
    pytest's monkeypatch can't restore.)"""
    original = model.networks.kp_detector
    model.networks.kp_detector = NoisyKeypoints(original, sigma)
    try:
        yield
    finally:
        model.networks.kp_detector = original


def test_smoothing_halves_output_jitter(tiny_model):
    rng = np.random.default_rng(0)
    source = (rng.random((64, 64, 3)) * 255).astype(np.uint8)
    driving = np.repeat((rng.random((1, 64, 64, 3)) * 255).astype(np.uint8), 40, axis=0)  # a still clip

    def run(smoothing):
        with noisy_detector(tiny_model, 0.03):
            return tiny_model.animate(source, driving, relative=False, adapt_scale=False, batch_size=4,
                                      smoothing=smoothing)

    raw, steady = jitter(run(0.0)), jitter(run(0.7))
    assert raw > 0
    print(f"jitter: raw {raw:.5f}, smoothed {steady:.5f}, ratio {steady / raw:.2f}")
    assert steady <= 0.5 * raw, (raw, steady)


def test_off_is_the_authors_behaviour(tiny_model):
    rng = np.random.default_rng(1)
    source = (rng.random((64, 64, 3)) * 255).astype(np.uint8)
    driving = (rng.random((6, 64, 64, 3)) * 255).astype(np.uint8)
    assert np.array_equal(tiny_model.animate(source, driving), tiny_model.animate(source, driving, smoothing=0.0))


def test_filter_follows_a_step_without_lasting_lag():
    smoother = KeypointSmoother(0.7, fps=25)
    values = [torch.zeros(1, 10, 2)] * 5 + [torch.full((1, 10, 2), 0.5)] * 50
    out = [smoother({"value": v})["value"] for v in values]
    assert out[5].max() < 0.5  # smoothed at the step
    assert torch.allclose(out[-1], torch.full((1, 10, 2), 0.5), atol=0.01)  # and caught up
    state = smoother.snapshot()
    a = smoother({"value": torch.ones(1, 10, 2)})["value"]
    smoother.restore(state)
    assert torch.equal(smoother({"value": torch.ones(1, 10, 2)})["value"], a)
