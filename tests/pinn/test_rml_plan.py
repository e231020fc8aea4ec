"""How an RML ensemble's members are configured (pinn/rml_plan.py) and which pick noise they draw from."""

from __future__ import annotations

import numpy as np
import pytest

from pinnprov.pinn import benchmark
from pinnprov.pinn.config import TrainConfig
from pinnprov.pinn.dataset import TraveltimeData
from pinnprov.pinn.rml_plan import MAX_MEMBERS, RmlPlan, picks_sigma

BASE = TrainConfig(epochs=50000, lr_initial=3e-3, seed=1234)


def test_member_configs_draw_distinct_nonzero_perturbations_from_the_plan() -> None:
    plan = RmlPlan(members=8, prior=0.15, prior_length=0.25, prior_weight=0.4, member_lr=5e-4, member_epochs=8000)
    members = [plan.member_config(BASE, k, 3e-5) for k in range(1, 8)]
    seeds = [m.perturb_seed for m in members]
    assert len(set(seeds)) == 7 and 0 not in seeds
    assert seeds == plan.member_seeds(BASE.seed)
    assert len({m.seed for m in members} | {BASE.seed}) == 8  # own network seeds, none the unperturbed run's
    for member in members:
        assert member.perturbation.active
        assert (member.perturb_picks_s, member.perturb_prior, member.perturb_prior_length,
                member.perturb_prior_weight) == (3e-5, 0.15, 0.25, 0.4)
        assert member.lr_initial == 5e-4 and member.lr_decay_rate == plan.member_decay_rate
        assert member.epochs == 8000 and member.stopping == "none"  # a fixed, annealed schedule
        # everything else is the base run's
        assert member.replace(seed=BASE.seed, perturb_seed=0, perturb_picks_s=0.0, perturb_prior=0.0,
                              perturb_prior_length=BASE.perturb_prior_length, perturb_prior_weight=0.0,
                              lr_initial=BASE.lr_initial, epochs=BASE.epochs, lr_decay_rate=BASE.lr_decay_rate,
                              stopping=BASE.stopping) == BASE
    assert not BASE.perturbation.active  # member 0 is the unperturbed base run itself


def test_member_epochs_never_exceed_the_base_runs() -> None:
    plan = RmlPlan(members=3, member_epochs=20000)
    assert plan.member_config(BASE.replace(epochs=500), 1, 1e-5).epochs == 500
    assert plan.member_config(BASE, 2, 1e-5).epochs == 20000


def test_member_seeds_differ_between_base_seeds_and_for_seed_zero() -> None:
    plan = RmlPlan(members=MAX_MEMBERS)
    for base_seed in (0, 1, 2, 1234):
        seeds = plan.member_seeds(base_seed)
        assert len(seeds) == MAX_MEMBERS - 1 == len(set(seeds)) and min(seeds) > 0
    assert not set(plan.member_seeds(1)) & set(plan.member_seeds(2))  # two ensembles draw different problems
    assert not set(plan.member_seeds(1234)) & set(plan.member_seeds(1235))
    zero = TrainConfig(seed=0)
    assert [plan.member_config(zero, k, 1e-5).perturb_seed for k in (1, 2)] == [1, 2]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"members": 1}, "members must be in"),
    ({"members": MAX_MEMBERS + 1}, "members must be in"),
    ({"members": 4, "prior": -0.1}, "prior must be finite"),
    ({"members": 4, "prior": float("inf")}, "prior must be finite"),
    ({"members": 4, "prior": float("nan")}, "prior must be finite"),
    ({"members": 4, "prior_weight": -1.0}, "prior_weight must be finite"),
    ({"members": 4, "prior_length": 0.0}, "prior_length must be > 0"),
    ({"members": 4, "prior_length": float("nan")}, "prior_length must be > 0"),
    ({"members": 4, "member_lr": 0.0}, "member_lr must be in"),
    ({"members": 4, "member_lr": 10.0}, "member_lr must be in"),
    ({"members": 4, "member_epochs": 0}, "member_epochs must be at least 1"),
])
def test_plan_rejects_bad_sizes_with_a_one_line_message(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message) as raised:
        RmlPlan(**kwargs)  # type: ignore[arg-type]
    assert "\n" not in str(raised.value) and str(raised.value).startswith("ensemble: ")


@pytest.mark.parametrize(("k", "sigma", "message"), [
    (0, 1e-5, "member 0 is not one of 1 .. 3"),
    (4, 1e-5, "member 4 is not one of 1 .. 3"),
    (1, -1e-5, "pick noise must be >= 0"),
    (1, float("nan"), "pick noise must be >= 0"),
])
def test_member_config_rejects_a_bad_member_or_noise(k: int, sigma: float, message: str) -> None:
    with pytest.raises(ValueError, match=message) as raised:
        RmlPlan(members=4).member_config(BASE, k, sigma)
    assert "\n" not in str(raised.value)


# --- picks_sigma ---------------------------------------------------------------------------------------------
def plain_data() -> TraveltimeData:
    return benchmark.crosshole_benchmark()  # one pick per ray: no repeated pairs


def with_repeats(sigma_s: float, repeats: int = 40) -> TraveltimeData:
    """The benchmark plus `repeats` of its picks picked again as reciprocals with independent noise."""
    data = plain_data()
    rng = np.random.default_rng(9)
    again = rng.choice(data.picks, repeats, replace=False)
    times = np.concatenate([data.traveltimes, data.traveltimes[again] + sigma_s * np.sqrt(2)
                            * rng.standard_normal(repeats)])
    return TraveltimeData(name="repeats", domain=data.domain, traveltimes=times,
                          sources=np.concatenate([data.sources, data.receivers[again]]),
                          receivers=np.concatenate([data.receivers, data.sources[again]]), origin="repeats.csv")


def test_a_stated_noise_level_wins_over_everything() -> None:
    sigma, source = picks_sigma(BASE.replace(noise_level_s=4e-5), with_repeats(1e-4),
                                {"noise_estimate_s": 2e-5, "data_rms_s": 3e-5})
    assert sigma == 4e-5 and "stated" in source


def test_repeated_pairs_win_over_the_unperturbed_runs_misfit() -> None:
    sigma, source = picks_sigma(BASE, with_repeats(1e-4), {"noise_estimate_s": 2e-5, "data_rms_s": 3e-5})
    # 40 differences of sqrt(2) sigma: the median-based estimate is within about 40 % of sigma
    assert 5e-5 < sigma < 1.6e-4
    assert source == "40 repeated or reciprocal pairs"


def test_the_converged_estimate_wins_over_the_final_misfit() -> None:
    sigma, source = picks_sigma(BASE, plain_data(), {"noise_estimate_s": 2e-5, "data_rms_s": 3e-5})
    assert (sigma, source) == (2e-5, "the unperturbed run's converged misfit")


@pytest.mark.parametrize("estimate", [None, float("nan"), float("inf"), 0.0, -1e-5])
def test_the_final_misfit_when_there_is_no_usable_converged_estimate(estimate: float | None) -> None:
    metrics = {"data_rms_s": 3e-5} if estimate is None else {"noise_estimate_s": estimate, "data_rms_s": 3e-5}
    sigma, source = picks_sigma(BASE, plain_data(), metrics)
    assert sigma == 3e-5 and "not converged" in source


@pytest.mark.parametrize("metrics", [{}, {"data_rms_s": float("nan")}, {"data_rms_s": 0.0, "noise_estimate_s": 0.0}])
def test_no_noise_at_all_is_an_error_naming_the_option(metrics: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="--noise-level") as raised:
        picks_sigma(BASE, plain_data(), metrics)
    assert "\n" not in str(raised.value)
