"""The pick-noise estimate (pinnprov/pinn/noise_estimate.py) on small synthetic surveys with a known sigma."""

from __future__ import annotations

import numpy as np
import pytest

from pinnprov.pinn import model_suite
from pinnprov.pinn.dataset import TraveltimeData
from pinnprov.pinn.noise_estimate import estimate, from_repeated_pairs, repeated_pairs


def with_reciprocals(data: TraveltimeData, sigma_s: float, seed: int) -> TraveltimeData:
    """The survey fired again from the other borehole: every ray picked twice, each pick with its own noise."""
    rng = np.random.default_rng(seed)
    clean = data.traveltimes  # stands in for the clean times: only differences of two picks of a ray matter
    first = clean + rng.normal(0, sigma_s, clean.shape)
    second = clean + rng.normal(0, sigma_s, clean.shape)
    return TraveltimeData(name="reciprocal", domain=data.domain,
                          sources=np.concatenate([data.sources, data.receivers]),
                          receivers=np.concatenate([data.receivers, data.sources]),
                          traveltimes=np.concatenate([first, second]), origin="test")


@pytest.mark.parametrize("sigma_s", [5e-6, 2e-5, 1e-4])
def test_reciprocal_surveys_give_sigma_within_a_fifth(sigma_s: float) -> None:
    data = with_reciprocals(model_suite.case("fast-small").data(), sigma_s, seed=int(sigma_s * 1e7))
    assert len(repeated_pairs(data)) == 100
    found = from_repeated_pairs(data)
    assert found is not None and found.method == "repeated" and found.pairs == 100
    assert found.sigma_s == pytest.approx(sigma_s, rel=0.2)


def test_a_mispick_does_not_throw_the_estimate() -> None:
    data = with_reciprocals(model_suite.case("fast-small").data(), 2e-5, seed=4)
    times = data.traveltimes.copy()
    times[:3] += 2e-3  # three picks 2 ms off: 100 sigma
    spoiled = TraveltimeData(name="x", domain=data.domain, sources=data.sources, receivers=data.receivers,
                             traveltimes=times, origin="test")
    found = from_repeated_pairs(spoiled)
    assert found is not None and found.sigma_s == pytest.approx(2e-5, rel=0.3)


def test_without_repeated_pairs_only_a_converged_fit_speaks() -> None:
    data = model_suite.case("fast-small").data()  # one pick per ray
    assert len(repeated_pairs(data)) == 0 and from_repeated_pairs(data) is None
    assert estimate(data, None) is None
    residual = estimate(data, 1.4e-5)
    assert residual is not None and residual.method == "residual" and residual.sigma_s == 1.4e-5
    assert "converged fit" in residual.describe()
