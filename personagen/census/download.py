"""Fetch a state's ACS 1-year PUMS person zip (csv_pXX.zip) into a cache, verified, or find it offline.

Order: $PERSONAGEN_CENSUS_DIR (a local folder holding csv_pXX.zip or psam_pNN.csv[.gz]/.parquet) → the cache
($PERSONAGEN_CACHE, else $XDG_CACHE_HOME/personagen, else ~/.cache/personagen; `cache_dir` overrides) → download
from $PERSONAGEN_CENSUS_URL or the Census base URL in census/download.yaml. A download goes to a temp file in the
cache folder, is checked (zip integrity, holds psam_p*.csv, sha256 when census/download.yaml knows it) and is
then renamed into place, so an interrupted download never poisons the cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from personagen.census.codebook import check_year, download_manifest, resolve_state
from personagen.errors import BadInput, PersonagenError
from personagen.resources import cache_root

ENV_URL = "PERSONAGEN_CENSUS_URL"
ENV_DIR = "PERSONAGEN_CENSUS_DIR"


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def pums_url(state: str, year: int) -> str:
    """URL of the Census person zip for a state (postal code) and year."""
    mf = download_manifest()
    base = os.environ.get(ENV_URL) or mf["base_url"]
    return base.rstrip("/") + "/" + mf["path"].format(year=year, st=state.lower())


def expected_sha256(state: str, year: int) -> str | None:
    return (download_manifest().get("sha256", {}).get(year) or {}).get(state.lower())


def verify_zip(path: Path, *, sha256: str | None = None, what: str | None = None) -> str:
    """Check a PUMS zip (integrity, a psam_p*.csv member, checksum if known); return its sha256."""
    label = what or str(path)
    try:
        with zipfile.ZipFile(path) as zf:
            bad = zf.testzip()
            names = zf.namelist()
    except (zipfile.BadZipFile, OSError) as e:
        raise PersonagenError(f"{label}: downloaded file is not a valid zip ({e})") from None
    if bad is not None:
        raise PersonagenError(f"{label}: zip member {bad} is corrupt (CRC mismatch)")
    if not any(Path(n).name.lower().startswith("psam_p") and n.lower().endswith(".csv") for n in names):
        raise PersonagenError(f"{label}: zip holds no psam_p*.csv person file")
    digest = sha256_file(path)
    if sha256 and digest != sha256:
        raise PersonagenError(f"{label}: sha256 {digest} does not match the recorded {sha256}")
    return digest


def _offline(folder: Path, state: str, fips: str) -> Path | None:
    for name in (f"csv_p{state.lower()}.zip", f"psam_p{fips}.csv", f"psam_p{fips}.csv.gz",
                 f"psam_p{fips}.parquet"):
        if (folder / name).is_file():
            return folder / name
    return None


def fetch_state(state: str, year: int | None = None, *, cache_dir: str | os.PathLike | None = None,
                timeout: float = 60.0, progress: bool = False) -> tuple[Path, str | None]:
    """Return (local path of the state's PUMS person file, source URL or None if found locally)."""
    ab, fips, _name = resolve_state(state)
    year = check_year(int(year or download_manifest()["default_year"]))  # never fetch what we cannot decode
    if os.environ.get(ENV_DIR):
        folder = Path(os.environ[ENV_DIR])
        found = _offline(folder, ab, fips) if folder.is_dir() else None
        if found is not None:
            return found, None
    dest_dir = cache_root(cache_dir) / "pums" / str(year)
    dest = dest_dir / f"csv_p{ab.lower()}.zip"
    url = pums_url(ab, year)
    sha = expected_sha256(ab, year)
    if dest.is_file():
        return dest, url
    try:
        dest_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise BadInput(f"{dest_dir}: cannot create the census cache folder ({e.strerror})") from None
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest_dir)
    try:
        with os.fdopen(fd, "wb") as out:
            _download(url, out, timeout=timeout, progress=progress)
        verify_zip(Path(tmp), sha256=sha, what=url)
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return dest, url


def _download(url: str, out, *, timeout: float, progress: bool) -> None:  # noqa: ANN001
    try:
        resp = urllib.request.urlopen(url, timeout=timeout)  # noqa: S310 (http(s) URL from our manifest/env)
    except urllib.error.HTTPError as e:
        if e.code == 404:
            raise BadInput(f"{url}: not found (no PUMS person file for that state and year)") from None
        raise PersonagenError(f"{url}: HTTP {e.code} {e.reason}") from None
    except (urllib.error.URLError, OSError) as e:
        raise PersonagenError(f"{url}: download failed ({getattr(e, 'reason', e)}); set {ENV_DIR} to a folder "
                              "holding the files to work offline") from None
    with resp:
        total = int(resp.headers.get("Content-Length") or 0) or None
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=total, unit="B", unit_scale=True, desc=f"download {Path(url).name}", leave=False,
                       disable=None)
        try:
            for block in iter(lambda: resp.read(1 << 16), b""):
                out.write(block)
                if bar is not None:
                    bar.update(len(block))
        finally:
            if bar is not None:
                bar.close()
