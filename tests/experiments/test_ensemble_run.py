"""`pinnprov train --ensemble N`: real member processes into one SQLite store, then the combined model and its record.

The combination itself is also checked on member folders written here (no training), including the cases where
it must refuse: too few members with a model, members on different grids.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from collector_process import rows
from PIL import Image

from pinnprov.experiments.ensemble_outputs import EnsembleError, Member, combine, sha256_of, write_outputs
from pinnprov.pinn.benchmark import crosshole_benchmark, score_grid, true_velocity
from pinnprov.pinn.metrics import r2

TINY = {"tau_layers": 2, "tau_units": 8, "velocity_layers": 2, "velocity_units": 8, "collocation_count": 200,
        "boundary_points": 20, "steps_per_call": 20, "stopping": "none", "seed": 11}


def _env() -> dict[str, str]:
    env = {k: val for k, val in os.environ.items() if not k.startswith(("OTEL_", "PINNPROV_"))}
    env.update(TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    return env


def _train_ensemble(root: Path, name: str, *flags: str) -> dict:
    """`pinnprov train --ensemble ...` on the tiny config into root/prov.db and root/out; its outputs."""
    config = root / "tiny.json"
    config.write_text(json.dumps(TINY))
    db = root / "prov.db"
    done = subprocess.run(
        [sys.executable, "-m", "pinnprov", "train", *flags, "--config", str(config), "--epochs", "40", "--no-jit",
         "--experiment", "ens", "--run-name", name, "--out", str(root / "out"), "--store", f"sqlite:///{db}"],
        capture_output=True, text=True, env=_env(), timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return {"out": root / "out", "db": db, "stdout": done.stdout,
            "document": json.loads((root / "out" / "ensemble.json").read_text())}


@pytest.fixture(scope="module")
def ensemble(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return _train_ensemble(tmp_path_factory.mktemp("ensemble"), "ens-a", "--ensemble", "2", "--ensemble-method",
                           "seeds")


@pytest.mark.slow
def test_the_members_are_seeds_of_one_configuration_and_their_mean_and_std_are_written(ensemble: dict) -> None:
    out, document = ensemble["out"], ensemble["document"]
    assert document["seeds"] == [11, 12] and document["size"] == 2
    assert [m["run_name"] for m in document["members"]] == ["ens-a-seed11", "ens-a-seed12"]
    grids = np.stack([np.load(out / m["run_name"] / "velocity_pinn.npy") for m in document["members"]])
    assert not np.allclose(grids[0], grids[1])  # different seeds, different models
    np.testing.assert_allclose(np.load(out / "velocity_mean.npy"), grids.mean(axis=0))
    np.testing.assert_allclose(np.load(out / "velocity_std.npy"), grids.std(axis=0, ddof=1))
    for name in ("velocity_mean.npy", "velocity_std.npy"):
        assert document["files"][name]["sha256"] == sha256_of(out / name)
    truth = true_velocity(*score_grid())
    assert document["mean"]["r2"] == pytest.approx(r2(grids.mean(axis=0), truth))
    for member, grid in zip(document["members"], grids, strict=True):
        assert member["r2"] == pytest.approx(r2(grid, truth)) and member["status"] == "completed"
    assert -1.0 <= document["std"]["error_spearman"] <= 1.0
    with Image.open(out / "comparison.png") as image:  # true model, mean, std: three panels and two colour bars
        assert image.size[0] > 3 * 3.2 * 150
    assert "velocity R2 of the mean" in ensemble["stdout"] and "Spearman" in ensemble["stdout"]


@pytest.mark.slow
def test_the_ensemble_is_a_run_its_members_are_member_of(ensemble: dict) -> None:
    db, document = ensemble["db"], ensemble["document"]
    ensemble_id = document["ensemble_run_id"]
    member_ids = sorted(m["run_id"] for m in document["members"])
    runs = rows(db, "SELECT run_id, run_name, experiment, status, service, epochs FROM run ORDER BY run_name")
    assert runs[0] == (ensemble_id, "ens-a", "ens", "completed", "pinnprov-ensemble", 0)
    assert sorted(run[0] for run in runs[1:]) == member_ids and all(run[3] == "completed" for run in runs[1:])
    assert rows(db, "SELECT run_id, related_run_id, relation, reason FROM run_relation ORDER BY reason") == [
        (m["run_id"], ensemble_id, "member_of", f"seed {m['seed']}") for m in document["members"]
    ]
    informed = rows(db, "SELECT informed_id, informant_id FROM was_informed_by WHERE run_id = ?", (ensemble_id,))
    assert sorted(informed) == [(f"run/{ensemble_id}", f"run/{rid}") for rid in member_ids]
    assert rows(db, "SELECT prov_type FROM activity WHERE activity_id = ?", (f"run/{ensemble_id}",)) == [
        ("pinnprov:Ensemble",)
    ]
    hyper = dict(rows(db, "SELECT name, value FROM run_hyperparameter WHERE run_id = ?", (ensemble_id,)))
    assert hyper["ensemble.size"] == "2" and hyper["ensemble.seeds"] == "11,12" and "seed" not in hyper
    summary = dict(rows(db, "SELECT name, value FROM run_summary WHERE run_id = ?", (ensemble_id,)))
    assert summary["r2"] == pytest.approx(document["mean"]["r2"]) and summary["ensemble.members"] == 2
    assert summary["ensemble.std_error_spearman"] == pytest.approx(document["std"]["error_spearman"])
    listed = subprocess.run([sys.executable, "-m", "pinnprov", "runs", "--store", f"sqlite:///{db}"],
                            capture_output=True, text=True, env=_env(), timeout=120)
    assert listed.returncode == 0 and "ens-a " in listed.stdout and "ens-a-seed12" in listed.stdout


# --- the RML ensemble (the default method): the ordinary run, then perturbed members warm-started from it ------
@pytest.fixture(scope="module")
def rml(tmp_path_factory: pytest.TempPathFactory) -> dict:
    return _train_ensemble(tmp_path_factory.mktemp("rml"), "ens-r", "--ensemble", "3", "--perturb-prior", "0.2")


@pytest.mark.slow
def test_rml_members_perturb_picks_and_prior_and_start_from_the_ordinary_run(rml: dict) -> None:
    from pinnprov.experiments.ensemble import SPREAD_INFLATION, student_t_quantile

    db, document, out = rml["db"], rml["document"], rml["out"]
    assert document["method"] == "rml" and document["plan"]["prior"] == 0.2
    names = [m["run_name"] for m in document["members"]]
    assert names == ["ens-r-m0", "ens-r-m1", "ens-r-m2"]
    ids = {m["run_name"]: m["run_id"] for m in document["members"]}
    hyper = {name: dict(rows(db, "SELECT name, value FROM run_hyperparameter WHERE run_id = ?", (run_id,)))
             for name, run_id in ids.items()}
    assert hyper["ens-r-m0"]["rml.seed"] == "0" and "run.warm_start_from" not in hyper["ens-r-m0"]
    perturbed = [hyper[f"ens-r-m{k}"] for k in (1, 2)]
    assert len({h["rml.seed"] for h in perturbed}) == 2 and all(h["rml.seed"] != "0" for h in perturbed)
    sigma = document["picks_sigma"]["s"]
    assert sigma > 0 and "misfit" in document["picks_sigma"]["source"]  # no noise stated, no repeated pairs
    for h in perturbed:
        assert float(h["rml.picks_s"]) == pytest.approx(sigma) and float(h["rml.prior"]) == 0.2
        assert h["run.warm_start_from"] == ids["ens-r-m0"] and float(h["lr.initial"]) == pytest.approx(1e-3)
        # the plan's annealed schedule reaches the member processes: decay per period, fixed steps, no stopping rule
        assert float(h["lr.decay_rate"]) == pytest.approx(0.6) and h["stopping.rule"] == "none"
    grids = np.stack([np.load(out / name / "velocity_pinn.npy") for name in names])
    mean, std = grids.mean(axis=0), grids.std(axis=0, ddof=1)
    half = SPREAD_INFLATION * student_t_quantile(0.95, 2) * np.sqrt(1 + 1 / 3) * std
    np.testing.assert_allclose(np.load(out / "velocity_p05.npy"), mean - half, rtol=1e-9)
    np.testing.assert_allclose(np.load(out / "velocity_p95.npy"), mean + half, rtol=1e-9)
    truth = true_velocity(*score_grid())
    inside = np.mean((truth >= mean - half) & (truth <= mean + half))
    assert document["interval"]["coverage"] == pytest.approx(inside)
    ensemble_id = document["ensemble_run_id"]
    ensemble_hyper = dict(rows(db, "SELECT name, value FROM run_hyperparameter WHERE run_id = ?", (ensemble_id,)))
    assert ensemble_hyper["ensemble.method"] == "rml" and float(ensemble_hyper["ensemble.rml.prior"]) == 0.2
    summary = dict(rows(db, "SELECT name, value FROM run_summary WHERE run_id = ?", (ensemble_id,)))
    assert summary["ensemble.coverage90"] == pytest.approx(inside)
    assert summary["ensemble.picks_sigma_s"] == pytest.approx(sigma)
    kinds = {kind for (kind,) in rows(db, "SELECT kind FROM model_snapshot WHERE run_id = ?", (ensemble_id,))}
    assert {"mean", "std", "p05", "p95", "exact"} <= kinds
    assert "90 % interval covers" in rml["stdout"] and "perturb the picks by" in rml["stdout"]


@pytest.mark.parametrize("flags, message", [
    (["--ensemble-method", "seeds", "--perturb-prior", "0.1"], "--perturb-prior: only with --ensemble-method rml"),
    (["--perturb-seed", "3"], "--perturb-seed: set per member by --ensemble"),
    (["--checkpoint-every", "off"], "members start from the first run's checkpoint"),
])
def test_ensemble_flags_it_cannot_honour_are_refused_in_one_line(tmp_path: Path, flags: list[str],
                                                                  message: str) -> None:
    done = subprocess.run([sys.executable, "-m", "pinnprov", "train", "--ensemble", "2", *flags, "--store",
                           f"sqlite:///{tmp_path / 'prov.db'}"], capture_output=True, text=True, env=_env(),
                          timeout=120)
    assert done.returncode != 0 and message in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "prov.db").exists()


# --- the combination on member folders written here --------------------------------------------------------
def _member(root: Path, seed: int, grid: np.ndarray, status: str = "completed", grid_x: np.ndarray | None = None
            ) -> Member:
    folder = root / f"m{seed}"
    folder.mkdir()
    gx, gz = score_grid()
    np.save(folder / "velocity_pinn.npy", grid)
    np.save(folder / "grid_x.npy", gx if grid_x is None else grid_x)
    np.save(folder / "grid_z.npy", gz)
    return Member(run_name=f"m{seed}", seed=seed, status=status, out=folder, run_id=f"{seed:032x}")


def test_combine_scores_the_mean_and_the_std_against_the_truth(tmp_path: Path) -> None:
    data = crosshole_benchmark()
    truth = true_velocity(*score_grid())
    offset = np.linspace(-200.0, 200.0, truth.size).reshape(truth.shape)  # error grows towards both ends
    members = [_member(tmp_path, 1, truth + offset), _member(tmp_path, 2, truth - offset),
               _member(tmp_path, 3, truth + 0.5 * offset), _member(tmp_path, 4, truth, status="failed")]
    result = combine(members, data)
    assert [m.run_name for m in result.used] == ["m1", "m2", "m3"]
    np.testing.assert_allclose(result.mean, truth + offset / 6.0)
    assert result.skill == pytest.approx(1.0)  # the spread grows exactly with the error
    assert result.r2 == pytest.approx(r2(result.mean, truth)) and members[0].r2 == pytest.approx(r2(truth + offset,
                                                                                                   truth))
    written = write_outputs(tmp_path / "out", result, data, {"ensemble_name": "e"})
    assert {path.name for path in written} == {"velocity_mean.npy", "velocity_std.npy", "grid_x.npy", "grid_z.npy",
                                               "velocity_true.npy", "velocity_p05.npy", "velocity_p95.npy",
                                               "comparison.png", "ensemble.json"}
    document = json.loads((tmp_path / "out" / "ensemble.json").read_text())
    assert [m["used"] for m in document["members"]] == [True, True, True, False]
    assert result.summary()["ensemble.members"] == 3.0


def test_combine_refuses_too_few_models_and_mismatched_grids(tmp_path: Path) -> None:
    data = crosshole_benchmark()
    truth = true_velocity(*score_grid())
    with pytest.raises(EnsembleError, match="only 1 of 2 member"):
        combine([_member(tmp_path, 1, truth), _member(tmp_path, 2, truth, status="failed")], data)
    shifted = score_grid()[0] + 1.0
    with pytest.raises(EnsembleError, match="m4 was sampled on another grid than m3"):
        combine([_member(tmp_path, 3, truth), _member(tmp_path, 4, truth, grid_x=shifted)], data)
