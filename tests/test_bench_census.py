"""bench census (docs/design.md §7) on Vermont, Wyoming and Hawaii: the default simplex fixes held-out
variables.

A 1,000-adult pool drawn uniformly from a state's PUMS is calibrated on 6 demographics and scored on 8 held-out
variables. Single pools are noisy (sampling error of the held-out shares ≈ the bias), so each state averages the
first three pools (seeds 0, 1, 2). Required: simplex (CV λ) cuts held-out MSE by ≥ 30% versus no weighting
and is within 15% of raking.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from personagen.bench import CALIB_VARS, TEST_VARS, run_census_bench
from personagen.cli import main

STATES = {"Vermont": "psam_p50.csv.gz", "Wyoming": "psam_p56.csv.gz", "Hawaii": "psam_p15.csv.gz"}
SEEDS = (0, 1, 2)


@pytest.mark.parametrize("state", list(STATES))
def test_bench_census_simplex_vs_rake(shared_data: Path, state: str) -> None:
    p = shared_data / "acs_pums" / STATES[state]
    if not p.is_file():
        pytest.skip(f"{p} not present")
    res = run_census_bench(p, pool_size=1000, seeds=SEEDS, methods=("simplex", "simplex-lam0", "rake", "uniform"))
    assert res["state"] == state and res["calib_vars"] == list(CALIB_VARS) and res["test_vars"] == list(TEST_VARS)
    m = res["methods"]
    assert len(m["simplex"]["per_seed"]) == len(SEEDS)
    vs_uniform = res["ratios"]["test_mse_vs_uniform"]["simplex"]
    vs_rake = res["ratios"]["test_mse_vs_rake"]["simplex"]
    assert vs_uniform <= 0.70, f"{state}: simplex held-out MSE only {100 * (1 - vs_uniform):.0f}% below uniform"
    assert vs_rake <= 1.15, f"{state}: simplex held-out MSE {vs_rake:.2f}x rake"
    # the calibration margins themselves are matched much better than by the unweighted pool
    assert m["simplex"]["train_mse"] < 0.1 * m["uniform"]["train_mse"]
    for k in ("test_mse", "test_one_minus_jsd", "test_wd", "nonzeros", "ess", "lam"):
        assert k in m["simplex"]
    assert all(lam is not None and lam >= 0 for lam in m["simplex"]["lam"])
    assert all(lam == 0 for lam in m["simplex-lam0"]["lam"])
    assert m["uniform"]["ess"] == pytest.approx(1000)


def test_bench_census_cli_json(vt_pums: Path, capsys) -> None:  # noqa: ANN001
    with pytest.raises(SystemExit) as e:
        main(["bench", "census", "--census", str(vt_pums), "--pool-size", "300", "--seed", "1",
              "--methods", "rake,uniform,sparse", "--json"])
    out = capsys.readouterr()
    assert e.value.code == 0, out.err
    res = json.loads(out.out.strip().splitlines()[-1])
    assert res["pool_size"] == 300 and res["seeds"] == [1]
    assert set(res["methods"]) == {"rake", "uniform", "sparse"}
    for v in res["methods"].values():
        assert v["test_mse"] > 0 and 0 < v["test_one_minus_jsd"] <= 1 and v["test_wd"] is not None
    assert res["methods"]["rake"]["train_mse"] < res["methods"]["uniform"]["train_mse"]


@pytest.mark.parametrize("args,needle", [
    (["--calib-vars", "age_band,shoe_size"], "shoe_size"),
    (["--calib-vars", "age_band,sex", "--test-vars", "sex,veteran"], "both calibrated and held out"),
    (["--methods", "magic"], "magic"),
])
def test_bench_census_bad_input(vt_pums: Path, capsys, args: list[str], needle: str) -> None:  # noqa: ANN001
    with pytest.raises(SystemExit) as e:
        main(["bench", "census", "--census", str(vt_pums), "--pool-size", "100", *args])
    err = capsys.readouterr().err
    assert e.value.code == 2 and needle in err and err.startswith("error: ")
