"""The wheel ships every package and the hub_cards/ templates, and the installed code finds them."""

import os
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_pyproject_lists_every_package():
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    found = {str(p.parent.relative_to(ROOT)).replace(os.sep, ".") for p in (ROOT / "trocr_lail").rglob("__init__.py")}
    assert found <= set(packages), f"add {sorted(found - set(packages))} to [tool.setuptools] packages"


def test_source_tree_finds_templates():
    from trocr_lail.hub.card import template_path

    assert template_path("model_card.md").read_text().startswith("---\n{{ card_data }}")
    assert template_path("lail_sidecar.md").is_file()


@pytest.mark.slow
def test_wheel_ships_templates_and_entry_point(tmp_path):
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(tmp_path), str(ROOT)], capture_output=True, text=True)
    assert built.returncode == 0, built.stderr[-3000:]
    wheel = next(tmp_path.glob("trocr_lail-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = next(archive.read(n).decode() for n in names if n.endswith("entry_points.txt"))
        archive.extractall(tmp_path / "site")
    assert {"trocr_lail/hub_cards/model_card.md", "trocr_lail/hub_cards/lail_sidecar.md"} <= names
    assert "trocr-lail = trocr_lail.cli:main" in entry_points
    # Import from the unpacked wheel only (as an installed package): the template must come from inside it.
    found = subprocess.run([sys.executable, "-c",
                            "from trocr_lail.hub.card import template_path; print(template_path())"],
                           capture_output=True, text=True, cwd=tmp_path,
                           env={**os.environ, "PYTHONPATH": str(tmp_path / "site")})
    assert found.returncode == 0, found.stderr[-3000:]
    assert Path(found.stdout.strip()) == tmp_path / "site" / "trocr_lail" / "hub_cards" / "model_card.md"
