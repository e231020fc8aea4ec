"""User input: CSV picks, the domain string and TrainConfig validation give one-line errors naming the problem."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pinnprov.pinn.benchmark import DOMAIN, crosshole_benchmark
from pinnprov.pinn.config import TrainConfig
from pinnprov.pinn.picks_csv import load_picks, parse_domain, write_picks

GOOD = "sx,sz,rx,rz,t\n0,2.5,20,2.5,0.0100\n0,5,20,7.5,0.0105\n"


def write(tmp_path: Path, text: str, name: str = "picks.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_good_file_round_trips(tmp_path: Path) -> None:
    data = load_picks(write(tmp_path, "# survey 1\n" + GOOD + "\n"), DOMAIN, noise_rms_s=1e-5)
    assert data.picks == 2 and data.name == "picks" and data.noise_rms_s == 1e-5
    np.testing.assert_array_equal(data.sources, [[0, 2.5], [0, 5]])
    np.testing.assert_array_equal(data.traveltimes, [0.01, 0.0105])
    bench = crosshole_benchmark()
    again = load_picks(write_picks(tmp_path / "bench.csv", bench), DOMAIN)
    np.testing.assert_array_equal(again.traveltimes, bench.traveltimes)  # repr() keeps every bit
    reordered = load_picks(write(tmp_path, "t,rz,rx,sz,sx\n0.01,2.5,20,2.5,0\n"), DOMAIN)
    np.testing.assert_array_equal(reordered.receivers, [[20, 2.5]])


@pytest.mark.parametrize("text,message", [
    ("", "empty file"),
    ("sx,sz,rx,t\n0,1,20,0.01\n", "missing column 'rz'"),
    ("sx,sz,rx,rz,t,q\n0,1,20,1,0.01,3\n", "unknown column 'q'"),
    ("sx,sz,rx,rz,t\n", "no picks"),
    ("sx,sz,rx,rz,t\n0,1,20,1\n", "row 1 (line 2): expected 5 values, got 4"),
    ("sx,sz,rx,rz,t\n0,1,20,1,0.01\n0,1,20,abc,0.01\n", "row 2 (line 3), column rz: not a number: 'abc'"),
    ("sx,sz,rx,rz,t\n0,1,20,1,nan\n", "column t: not a finite number"),
    ("sx,sz,rx,rz,t\n0,1,25,1,0.01\n", "row 1 (line 2), column rx: 25 is outside the domain [0, 20]"),
    ("sx,sz,rx,rz,t\n0,-1,20,1,0.01\n", "column sz: -1 is outside the domain [0, 28]"),
    ("sx,sz,rx,rz,t\n0,1,20,1,0\n", "column t: traveltime must be positive"),
    ("sx,sz,rx,rz,t\n0,1,20,1,-0.01\n", "column t: traveltime must be positive"),
    ("sx,sz,rx,rz,t\n5,1,5,1,0.01\n", "source and receiver are the same point"),
])
def test_bad_files_name_row_and_column(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ValueError) as error:
        load_picks(write(tmp_path, text), DOMAIN)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_missing_and_binary_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_picks(tmp_path / "nope.csv", DOMAIN)
    binary = tmp_path / "bin.csv"
    binary.write_bytes(b"\xff\xfe\x00\x81")
    with pytest.raises(ValueError, match="not a UTF-8 text file"):
        load_picks(binary, DOMAIN)


@pytest.mark.parametrize("text,message", [("0,20,0", "expected x_min,x_max,z_min,z_max"),
                                          ("0,20,a,28", "four numbers"), ("20,0,0,28", "empty extent"),
                                          ("0,inf,0,28", "finite")])
def test_bad_domain(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_domain(text)
    assert parse_domain(" 0, 20 ,0,28") == DOMAIN


@pytest.mark.parametrize("values,key", [
    ({"activation": "softsign"}, "activation"), ({"optimizer": "sgd"}, "optimizer"), ({"epochs": 0}, "epochs"),
    ({"lr_initial": -1.0}, "lr_initial"), ({"lr_decay_rate": 1.5}, "lr_decay_rate"),
    ({"weight_data": -2.0}, "weight_data"), ({"weight_residual": float("nan")}, "weight_residual"),
    ({"collocation_count": 0}, "collocation_count"), ({"stopping": "never"}, "stopping"),
    ({"stopping": "discrepancy"}, "noise_level_s"), ({"epochs": "ten"}, "epochs"), ({"jit_compile": "yes"}, "jit"),
    ({"learning_rate": 0.1}, "learning_rate"), ({"lr_schedule": "cosine"}, "cosine"),
    ({"residual_form": "abs"}, "residual form"), ({"velocity_min_m_s": 3000.0, "velocity_max_m_s": 2000.0},
                                                  "velocity_max_m_s"),
])
def test_config_rejects_bad_values_naming_the_key(values: dict, key: str) -> None:
    with pytest.raises(ValueError, match=key):
        TrainConfig.from_mapping(values)


def test_config_accepts_file_spellings() -> None:
    config = TrainConfig.from_mapping({"lr-initial": 1, "epochs": 10.0, "jit_compile": True, "activation": "sine"})
    assert config.lr_initial == 1.0 and isinstance(config.lr_initial, float) and config.epochs == 10
    hp = config.hyperparameters()
    assert hp["lr.initial"] == 1.0 and hp["activation"] == "sine" and hp["jit_compile"] is True
