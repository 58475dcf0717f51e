"""The README's layout table and the package tree agree: every subpackage and top-level module has a row, and every
path or module the table names exists. A newcomer finds where a change belongs from that table."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "trocr_lail"


def layout_rows() -> dict[str, str]:
    """First cell -> the row's text, for the rows of the README's "## Layout" table."""
    section = ROOT.joinpath("README.md").read_text().split("\n## Layout\n", 1)[1].split("\n## ", 1)[0]
    return {row.split("|")[1].strip(): row for row in section.splitlines() if row.startswith("| `")}


def test_every_package_part_has_a_row():
    rows = layout_rows()
    first_cells = " ".join(rows)
    for path in sorted(PACKAGE.iterdir()):
        if path.is_dir() and (path / "__init__.py").is_file():
            assert f"`trocr_lail/{path.name}/`" in rows, f"README layout table: add a row for trocr_lail/{path.name}/"
        elif path.suffix == ".py" and path.name != "__init__.py":
            assert re.search(rf"`(trocr_lail/)?{path.name}`", first_cells), f"README layout table: add {path.name}"


def test_every_named_module_exists():
    for first, row in layout_rows().items():
        if not first.startswith("`trocr_lail/"):
            continue
        if subpackage := re.fullmatch(r"`trocr_lail/(\w+)/`", first):  # its second cell names modules as `name`
            top = subpackage.group(1)
            for name in re.findall(r"`(\w+)`", row.split("|")[2]):
                assert (PACKAGE / top / f"{name}.py").is_file(), f"README names trocr_lail/{top}/{name}.py"
        for name in re.findall(r"`(?:trocr_lail/)?(\w+\.py)`", first):
            assert (PACKAGE / name).is_file(), f"README names trocr_lail/{name}"
