"""ALTO (v2, v3, v4; eScriptorium and Transkribus exports): read a page's lines into a
:class:`~.containers.Page`, and write recognised text back into a copy of the file.

A line's outline is its ``Shape/Polygon`` if it has one, else its ``HPOS/VPOS/WIDTH/HEIGHT`` rectangle; its text is
its ``String`` CONTENTs joined with spaces. Reading order is document order. Coordinates are taken as pixels
(``MeasurementUnit`` other than ``pixel`` is refused).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from . import xmlio
from .containers import Line, Page, PageFileError, local_name, namespace, parse_points

STRING_PARTS = ("String", "SP", "HYP")


def is_alto(root: ET.Element) -> bool:
    return local_name(root.tag) == "alto"


def _find(element: ET.Element, name: str) -> list[ET.Element]:
    return [e for e in element.iter() if isinstance(e.tag, str) and local_name(e.tag) == name]


def _children(element: ET.Element, name: str) -> list[ET.Element]:
    return [child for child in element if isinstance(child.tag, str) and local_name(child.tag) == name]


def _rectangle(element: ET.Element) -> list[tuple[float, float]]:
    values = [element.get(name) for name in ("HPOS", "VPOS", "WIDTH", "HEIGHT")]
    if None in values:
        return []
    x, y, w, h = (float(v) for v in values)
    return [(x, y), (x + w, y), (x + w, y + h), (x, y + h)]


def _baseline(element: ET.Element) -> list[tuple[float, float]]:
    value = (element.get("BASELINE") or "").strip()
    if not value:
        return []
    if " " in value or "," in value:  # ALTO 4: a polyline
        return parse_points(value)
    rectangle = _rectangle(element)  # ALTO 2/3: one y across the line's width
    return [(rectangle[0][0], float(value)), (rectangle[1][0], float(value))] if rectangle else []


def read(path: Path, tree: ET.ElementTree | None = None) -> Page:
    root = (tree or xmlio.parse(path)[0]).getroot()
    if not is_alto(root):
        raise PageFileError(f"{path}: not an ALTO file (root {local_name(root.tag)!r})")
    unit = next((e.text for e in _find(root, "MeasurementUnit")), None)
    if unit and unit.strip() != "pixel":
        raise PageFileError(f"{path}: MeasurementUnit {unit.strip()!r}; only pixel coordinates are supported")
    names = [e.text.strip() for e in _find(root, "fileName") if e.text and e.text.strip()]
    pages = _find(root, "Page")
    if not pages:
        raise PageFileError(f"{path}: ALTO without a Page element")

    def size(name: str) -> int | None:
        value = pages[0].get(name)
        return int(float(value)) if value else None

    page = Page(path, names[0] if names else "", size("WIDTH"), size("HEIGHT"), format="alto")
    for order, xml_line in enumerate(_find(pages[0], "TextLine")):
        strings = [s.get("CONTENT") for s in _children(xml_line, "String")]
        text = " ".join(s for s in strings if s) if strings else None
        line = Line(xml_line.get("ID") or f"line {order + 1}", order, text=text)
        try:
            polygons = [p for shape in _children(xml_line, "Shape") for p in _children(shape, "Polygon")]
            line.polygon = parse_points(polygons[0].get("POINTS")) if polygons else _rectangle(xml_line)
            line.baseline = _baseline(xml_line)
        except ValueError as err:
            line.problem = f"unusable coordinates: {err}"
        page.lines.append(line)
    return page


def write(path: Path, texts: dict[str, tuple[str, float | None]], out: Path) -> None:
    """Copy ``path`` to ``out`` with each recognised line's ``String``/``SP`` children replaced by one ``String``
    per word (CONTENT, and WC when a confidence is given; no word geometry, which the recogniser does not give)
    with ``SP`` between them. Everything else is kept."""
    tree, prefixes = xmlio.parse(path)
    ns = namespace(tree.getroot().tag)
    tag = (lambda name: f"{{{ns}}}{name}") if ns else (lambda name: name)
    for xml_line in _find(tree.getroot(), "TextLine"):
        if xml_line.get("ID") not in texts:
            continue
        text, conf = texts[xml_line.get("ID")]
        parts = [child for child in xml_line if isinstance(child.tag, str) and local_name(child.tag) in STRING_PARTS]
        at = list(xml_line).index(parts[0]) if parts else len(xml_line)
        for child in parts:
            xml_line.remove(child)
        new = []
        for index, word in enumerate(text.split()):
            if index:
                new.append(ET.Element(tag("SP")))
            string = ET.Element(tag("String"), {"ID": f"{xml_line.get('ID')}_w{index}", "CONTENT": word})
            if conf is not None:
                string.set("WC", f"{conf:.4f}")
            new.append(string)
        for offset, element in enumerate(new):
            xml_line.insert(at + offset, element)
    xmlio.write(tree, prefixes, out)
