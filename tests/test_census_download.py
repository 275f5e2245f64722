"""Downloader against a real loopback HTTP server serving the Census zips (no network mocks)."""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from personagen.census.download import cache_root, expected_sha256, fetch_state, sha256_file
from personagen.errors import BadInput, PersonagenError


class _Handler(http.server.SimpleHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server API)
        _Handler.hits.append(self.path)
        super().do_GET()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def census_server(tmp_path: Path, shared_data: Path) -> Iterator[str]:
    """Serve {root}/2018/1-Year/csv_p{vt,wy}.zip (real files) and a corrupt csv_phi.zip on 127.0.0.1."""
    root = tmp_path / "www"
    d = root / "2018" / "1-Year"
    d.mkdir(parents=True)
    src = shared_data / "acs_pums" / "original_zips"
    shutil.copy(src / "csv_pvt.zip", d / "csv_pvt.zip")
    shutil.copy(src / "csv_pwy.zip", d / "csv_pwy.zip")
    (d / "csv_phi.zip").write_bytes((src / "csv_phi.zip").read_bytes()[:50_000])  # truncated download
    _Handler.hits = []
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                          functools.partial(_Handler, directory=str(root)))
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.shutdown()
        srv.server_close()


@pytest.fixture()
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, census_server: str) -> Path:
    cache = tmp_path / "cache"
    monkeypatch.setenv("PERSONAGEN_CENSUS_URL", census_server)
    monkeypatch.setenv("PERSONAGEN_CACHE", str(cache))
    monkeypatch.delenv("PERSONAGEN_CENSUS_DIR", raising=False)
    return cache


def test_recorded_checksums_are_the_census_originals(shared_data: Path) -> None:
    src = shared_data / "acs_pums" / "original_zips"
    for st in ("vt", "wy", "hi"):
        assert sha256_file(src / f"csv_p{st}.zip") == expected_sha256(st.upper(), 2018)


def test_download_verifies_and_reuses_cache(env: Path) -> None:
    path, url = fetch_state("VT", 2018)
    assert path == env / "pums" / "2018" / "csv_pvt.zip" and path.is_file()
    assert url.endswith("/2018/1-Year/csv_pvt.zip")
    assert _Handler.hits == ["/2018/1-Year/csv_pvt.zip"]
    assert fetch_state("vt", 2018)[0] == path            # cached: no second request
    assert len(_Handler.hits) == 1
    assert [p.name for p in path.parent.iterdir()] == ["csv_pvt.zip"]  # no temp leftovers


def test_cache_dir_argument_overrides_env(env: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    assert fetch_state("WY", 2018, cache_dir=other)[0] == other / "pums" / "2018" / "csv_pwy.zip"
    assert cache_root(other) == other and cache_root() == env


def test_corrupt_download_is_rejected_and_not_cached(env: Path) -> None:
    with pytest.raises(PersonagenError, match="csv_phi.zip"):
        fetch_state("HI", 2018)
    d = env / "pums" / "2018"
    assert not any(d.iterdir())


def test_missing_year_and_unknown_state(env: Path) -> None:
    with pytest.raises(BadInput, match="not found"):
        fetch_state("VT", 2021)
    with pytest.raises(BadInput, match="unknown state"):
        fetch_state("ZZ", 2018)
    assert _Handler.hits == ["/2021/1-Year/csv_pvt.zip"]
    with pytest.raises(BadInput, match="year 2019 is not supported"):
        fetch_state("VT", 2019)


def test_offline_folder_is_used_first(env: Path, monkeypatch: pytest.MonkeyPatch, vt_pums: Path) -> None:
    monkeypatch.setenv("PERSONAGEN_CENSUS_DIR", str(vt_pums.parent))
    path, url = fetch_state("VT", 2018)
    assert path == vt_pums and url is None and _Handler.hits == []


def test_build_by_state_downloads(env: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from personagen.cli import main

    out = tmp_path / "lib"
    with pytest.raises(SystemExit) as e:
        main(["build", "-o", str(out), "--state", "WY", "--year", "2018", "-n", "50", "--seed", "3"])
    assert e.value.code == 0, capsys.readouterr().err
    import json

    mf = json.loads((out / "manifest.json").read_text())
    assert mf["census"]["state"] == "WY" and mf["census"]["year"] == 2018
    assert mf["census"]["sha256"] == expected_sha256("WY", 2018)
    assert mf["census"]["url"].endswith("csv_pwy.zip")
    assert os.path.samefile(mf["census"]["path"], env / "pums" / "2018" / "csv_pwy.zip")
