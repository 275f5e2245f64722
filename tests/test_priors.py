"""Big Five priors and trait banks: reproduce the YAML figures, determinism, age/sex conditioning, speed."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import yaml

from personagen.priors import LEVELS, T_COLUMNS, TRAIT_COLUMNS, add_priors, load_banks
from personagen.priors.big_five import DOMAINS, level_labels, priors_path


@pytest.fixture(scope="module")
def spec() -> dict:
    return yaml.safe_load(priors_path().read_text())


def _cell(spec: dict, band: str, sex: str) -> dict:
    return next(c for c in spec["cells"] if c["age_band"] == band and c["sex"] == sex)


def _draws(n: int, age: int | None, sex: str | None, seed: int = 7) -> pl.DataFrame:
    return add_priors(pl.DataFrame({"persona_id": [str(i) for i in range(n)], "age": [age] * n, "sex": [sex] * n},
                                   schema={"persona_id": pl.String, "age": pl.Int64, "sex": pl.String}), seed)


def test_yaml_header_and_shape(spec: dict) -> None:
    head = priors_path().read_text().splitlines()[:4]
    assert any("SAPA" in h and "psychTools" in h for h in head)
    assert spec["source"]["n"] > 3000 and len(spec["cells"]) == 12
    assert spec["levels"]["cuts"] == [35, 45, 55, 65]


@pytest.mark.parametrize("band,sex,age", [("45-54", "female", 50), ("18-24", "male", 20), ("65+", "male", 80)])
def test_cell_draws_reproduce_yaml(spec: dict, band: str, sex: str, age: int) -> None:
    out = _draws(200_000, age, sex.capitalize())
    x = out.select(T_COLUMNS).to_numpy()
    cell = _cell(spec, band, sex)
    np.testing.assert_allclose(x.mean(0), [cell["mean"][d] for d in DOMAINS], atol=0.15)
    np.testing.assert_allclose(x.std(0), [cell["sd"][d] for d in DOMAINS], atol=0.15)
    np.testing.assert_allclose(np.corrcoef(x, rowvar=False), spec["within_cell_correlation"], atol=0.02)


def test_rows_without_age_or_sex_use_overall(spec: dict) -> None:
    out = add_priors(pl.DataFrame({"persona_id": [str(i) for i in range(200_000)]}), 3)
    x = out.select(T_COLUMNS).to_numpy()
    np.testing.assert_allclose(x.mean(0), 50, atol=0.15)
    np.testing.assert_allclose(x.std(0), 10, atol=0.15)
    np.testing.assert_allclose(np.corrcoef(x, rowvar=False), spec["overall"]["correlation"], atol=0.02)
    # unknown sex label or null age -> overall too
    mixed = _draws(50_000, None, "Female")
    assert abs(mixed["big5_neuroticism"].mean() - 50) < 0.3


def test_age_sex_conditioning_shows(spec: dict) -> None:
    young_m, mid_f = _cell(spec, "18-24", "male"), _cell(spec, "45-54", "female")
    assert mid_f["mean"]["agreeableness"] > young_m["mean"]["agreeableness"] + 3   # the data say so
    a, b = _draws(50_000, 20, "Male"), _draws(50_000, 50, "Female")
    for d in ("agreeableness", "conscientiousness", "neuroticism"):
        gap = b[f"big5_{d}"].mean() - a[f"big5_{d}"].mean()
        assert gap == pytest.approx(mid_f["mean"][d] - young_m["mean"][d], abs=0.3)
    f, m = _draws(50_000, 30, "F"), _draws(50_000, 30, "m")  # short / lower-case labels work
    assert f["big5_neuroticism"].mean() > m["big5_neuroticism"].mean() + 3


def test_deterministic_by_seed_and_levels() -> None:
    df = pl.DataFrame({"persona_id": ["a", "b", "c"], "age": [30, None, 70], "sex": ["Male", "Female", None]})
    a, b, c = add_priors(df, 1), add_priors(df, 1), add_priors(df, 2)
    assert a.equals(b) and not a.equals(c)
    t = a.select(T_COLUMNS).to_numpy()
    for j, col in enumerate(T_COLUMNS):
        assert a[f"{col}_level"].to_list() == [LEVELS[i] for i in level_labels(t[:, j])]
    assert level_labels(np.array([34.9, 35.0, 44.9, 45.0, 55.0, 64.9, 65.0])).tolist() == [0, 1, 1, 2, 3, 3, 4]


def test_traits_from_banks() -> None:
    banks = load_banks()
    for col in TRAIT_COLUMNS:
        assert 30 <= len(banks[col]) <= 60, col
    out = add_priors(pl.DataFrame({"persona_id": [str(i) for i in range(5000)]}), 11)
    for col in TRAIT_COLUMNS[1:]:
        assert set(out[col].to_list()) <= set(banks[col])
        assert out[col].n_unique() == len(banks[col])  # every entry reachable
    sizes = set()
    for v in out["core_values"].to_list():
        parts = v.split(", ")
        assert set(parts) <= set(banks["core_values"]) and len(set(parts)) == len(parts)
        sizes.add(len(parts))
    assert sizes == {2, 3}
    assert out.equals(add_priors(pl.DataFrame({"persona_id": [str(i) for i in range(5000)]}), 11))


def test_estimation_reproduces_yaml(shared_data, spec: dict) -> None:
    from personagen.priors.estimate_big_five import estimate, scale_keys

    data = shared_data / "sapa_psychtools"
    if not (data / "spi.csv").is_file():
        pytest.skip(f"{data}/spi.csv not present")
    keys = scale_keys(data)
    assert all(len(v) == 14 for v in keys.values())
    assert ("q_4296", -1) in keys["agreeableness"]  # "Tell a lot of lies." is reverse keyed
    fresh = estimate(data)
    assert fresh["source"]["n"] == spec["source"]["n"]
    assert fresh["cells"] == spec["cells"] and fresh["within_cell_correlation"] == spec["within_cell_correlation"]
