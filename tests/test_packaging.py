"""The built wheel ships templates/, census/ and datasets/ and the installed package finds them there."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("build")
    pytest.importorskip("hatchling")
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "-o", str(out), str(REPO)],
                   check=True, capture_output=True, timeout=300)
    (whl,) = out.glob("personagen-*.whl")
    return whl


def test_wheel_contains_every_resource_file(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for top in ("templates", "census", "datasets"):
        files = [p for p in (REPO / top).rglob("*") if p.is_file() and "__pycache__" not in p.parts]
        assert files, top
        for p in files:
            assert f"personagen/_data/{p.relative_to(REPO).as_posix()}" in names, p
    assert "personagen/cli.py" in names
    assert "personagen/py.typed" in names  # PEP 561: type checkers read the package's annotations
    assert any(n.endswith(".dist-info/licenses/LICENSE") or n.endswith(".dist-info/LICENSE") for n in names), names


def test_installed_wheel_uses_its_own_resources(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    code = ("from personagen.resources import templates_dir, census_dir, datasets_dir;"
            "from personagen.templating import render;"
            "print(templates_dir()); print(census_dir()); print(datasets_dir());"
            "print(render('elicit/user.j2', question='Q?', options=[{'letter': 'A', 'text': 'yes'}]))")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env={"PYTHONPATH": str(target)},
                         check=True, capture_output=True, text=True, timeout=120).stdout.splitlines()
    for line in out[:3]:
        assert line.startswith(str(target / "personagen" / "_data")), line
    assert "A. yes" in out
