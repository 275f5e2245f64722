"""PUMS readers (csv, csv.gz, Census zip, parquet), code padding, decoding, year vocabularies and refusals."""

from __future__ import annotations

import gzip
import zipfile
from pathlib import Path

import polars as pl
import pytest

from personagen.census import load_population
from personagen.census.codebook import codebook, resolve_state, supported_years
from personagen.census.read import read_raw
from personagen.errors import BadInput

COLS = ["RT", "SERIALNO", "SPORDER", "PUMA", "ST", "ADJINC", "PWGTP", "AGEP", "SEX", "RAC1P", "HISP", "SCHL",
        "ESR", "COW", "OCCP", "INDP", "POBP", "PINCP", "LANX", "LANP", "ENG", "MAR", "CIT", "DIS", "HICOV",
        "HINS1", "HINS3", "FER", "MIL"]


@pytest.fixture(scope="module")
def vt_small(vt_pums: Path) -> pl.DataFrame:
    """600 real Vermont records, every column as the string written in the file (codes padded)."""
    return pl.read_csv(gzip.decompress(vt_pums.read_bytes()), infer_schema=False, columns=COLS).head(600)


def test_gz_and_census_zip_decode_identically(vt_pums: Path, shared_data: Path) -> None:
    a = load_population(vt_pums, min_age=0)
    b = load_population(shared_data / "acs_pums" / "original_zips" / "csv_pvt.zip", min_age=0)
    assert a.height == 6436 and a.equals(b)
    assert a["pwgtp"].sum() == 626_299  # PROVENANCE: ΣPWGTP = Vermont's 2018 population
    assert a["state"].unique().to_list() == ["Vermont"] and a["state_code"].unique().to_list() == ["50"]
    assert set(a["puma"].unique().to_list()) == {"00100", "00200", "00300", "00400"}
    assert a["serialno"].dtype == pl.String and a["serialno"][0].startswith("2018")


def test_decoded_labels_are_readable(vt_pums: Path) -> None:
    df = load_population(vt_pums)
    assert df["age"].min() >= 18
    assert set(df["sex"].unique()) == {"Male", "Female"}
    assert "Regular high school diploma" in set(df["education"])
    occ = set(df["occupation"].drop_nulls())
    assert "Retail salespersons" in occ and not any(o[:4].isupper() and o[3] == "-" for o in occ)
    assert "English only" in set(df["language"]) and "French" in set(df["language"])
    assert set(df["disability"].unique()) == {"With a disability", "No disability"}
    # not-applicable is null, never a "None"/"nan" string
    for c in df.columns:
        if df[c].dtype == pl.String:
            assert not df[c].is_in(["None", "nan", "null", ""]).any(), c
    # English ability is null exactly for English-only speakers
    assert df.filter(pl.col("language") == "English only")["english_ability"].null_count() == \
        df.filter(pl.col("language") == "English only").height
    # income = PINCP * ADJINC / 1e6 (2018 factor 1.013097), rounded
    raw = read_raw(vt_pums)
    r0 = raw.df.row(0, named=True)
    assert df["income"][0] == round(r0["PINCP"] * r0["ADJINC"] / 1e6)
    assert df["income_band"].null_count() == 0


def test_unpadded_codes_and_parquet_decode_the_same(tmp_path: Path, vt_small: pl.DataFrame) -> None:
    padded = tmp_path / "psam_p50.csv"
    vt_small.write_csv(padded)
    unpadded = tmp_path / "unpadded.csv"
    strip = [c for c in COLS if c not in ("RT", "SERIALNO")]
    vt_small.with_columns([pl.col(c).str.strip_chars_start("0").replace("", "0") for c in strip]).write_csv(unpadded)
    assert ",00200," in padded.read_text() and ",00200," not in unpadded.read_text()
    parquet = tmp_path / "p.parquet"
    vt_small.with_columns([pl.col(c).cast(pl.Int64) for c in strip]).write_parquet(parquet)
    a = load_population(padded, min_age=0)
    assert a.equals(load_population(unpadded, min_age=0))
    assert a.equals(load_population(parquet, min_age=0))
    assert a["puma"].str.len_chars().unique().to_list() == [5]


def test_zip_with_member_in_subfolder(tmp_path: Path, vt_small: pl.DataFrame) -> None:
    z = tmp_path / "csv_pvt.zip"
    with zipfile.ZipFile(z, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("README.txt", "not data")
        zf.writestr("data/psam_p50.csv", vt_small.write_csv())
    assert load_population(z, min_age=0).height == 600


def test_min_age_and_state_filters(vt_pums: Path) -> None:
    assert load_population(vt_pums, min_age=65)["age"].min() >= 65
    assert load_population(vt_pums, state="VT").height == load_population(vt_pums).height
    assert load_population(vt_pums, state="HI").height == 0


def test_bad_files_are_bad_input(tmp_path: Path, vt_small: pl.DataFrame) -> None:
    with pytest.raises(BadInput, match="does not exist"):
        load_population(tmp_path / "nope.csv.gz")
    nopw = tmp_path / "nopw.csv"
    vt_small.drop("PWGTP").write_csv(nopw)
    with pytest.raises(BadInput, match=r"nopw\.csv: no PWGTP column"):
        load_population(nopw)
    txt = tmp_path / "x.txt"
    txt.write_text("a,b\n")
    with pytest.raises(BadInput, match="unsupported PUMS file type"):
        load_population(txt)
    badzip = tmp_path / "csv_pvt.zip"
    badzip.write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(BadInput, match="zip"):
        load_population(badzip)
    empty = tmp_path / "empty.zip"
    with zipfile.ZipFile(empty, "w") as zf:
        zf.writestr("other.csv", "x\n")
    with pytest.raises(BadInput, match="no psam_p"):
        load_population(empty)


def test_year_vocabularies_and_refusal(tmp_path: Path, vt_small: pl.DataFrame) -> None:
    assert supported_years() == [2018, 2021]
    # same codes, different dictionary wording: the codebook keeps a short label for both years
    assert codebook(2018)["CIT"][5] == codebook(2021)["CIT"][5] == "Not a US citizen"
    assert codebook(2018)["OCCP"][10] == "Chief executives and legislators"
    y21 = tmp_path / "y2021.csv"
    vt_small.with_columns(pl.col("SERIALNO").str.replace("^2018", "2021")).write_csv(y21)
    assert load_population(y21, min_age=0).height == 600
    y20 = tmp_path / "y2020.csv"
    vt_small.with_columns(pl.col("SERIALNO").str.replace("^2018", "2020")).write_csv(y20)
    with pytest.raises(BadInput, match="year 2020 is not supported"):
        load_population(y20)
    with pytest.raises(BadInput, match="holds PUMS year 2021, not the requested --year 2018"):
        read_raw(y21, year=2018)


def test_resolve_state() -> None:
    assert resolve_state("vt") == ("VT", "50", "Vermont")
    assert resolve_state("15") == ("HI", "15", "Hawaii")
    assert resolve_state("Wyoming")[0] == "WY"
    with pytest.raises(BadInput, match="--state XX: unknown state"):
        resolve_state("XX")


def test_big_file_paths_scan_lazily(tmp_path: Path, vt_pums: Path, shared_data: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Force the big-file code paths (decompress to a temp file, lazy scan, streaming engine)."""
    import personagen.census.read as rd

    want = load_population(vt_pums, min_age=30, state="VT")
    monkeypatch.setattr(rd, "IN_MEMORY_LIMIT", 0)
    monkeypatch.setattr(rd, "GZ_IN_MEMORY_LIMIT", 0)
    assert load_population(vt_pums, min_age=30, state="VT").equals(want)
    assert load_population(shared_data / "acs_pums" / "original_zips" / "csv_pvt.zip", min_age=30).equals(want)
    plain = tmp_path / "psam_p50.csv"
    plain.write_bytes(gzip.decompress(vt_pums.read_bytes()))
    assert load_population(plain, min_age=30).equals(want)
