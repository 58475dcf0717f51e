"""PAGE-XML (2013-07-15 and 2019-07-15 namespaces; Transkribus and eScriptorium exports): read a page's lines into
a :class:`~.containers.Page`, and write recognised text back into a copy of the file.

Reading order: regions in the order of ``ReadingOrder`` (``RegionRefIndexed`` indices, nested groups
flattened), regions it does not name after them in document order; lines in document order within their region.
A line's text is its own ``TextEquiv`` (``index="0"`` if several, else the first), never its words'.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from . import xmlio
from .containers import Line, Page, PageFileError, local_name, namespace, parse_points

NAMESPACES = ("http://schema.primaresearch.org/PAGE/gts/pagecontent/2013-07-15",
              "http://schema.primaresearch.org/PAGE/gts/pagecontent/2019-07-15")


def is_page(root: ET.Element) -> bool:
    return local_name(root.tag) == "PcGts"


def _children(element: ET.Element, name: str) -> list[ET.Element]:
    return [child for child in element if isinstance(child.tag, str) and local_name(child.tag) == name]


def _region_order(page: ET.Element) -> dict[str, int]:
    order: dict[str, int] = {}
    for reading in _children(page, "ReadingOrder"):
        refs = [ref for ref in reading.iter() if isinstance(ref.tag, str) and local_name(ref.tag) in
                ("RegionRefIndexed", "RegionRef") and ref.get("regionRef")]
        for ref in refs:  # document order within a group is the order when no index is given
            order.setdefault(ref.get("regionRef"), len(order))
    return order


def _line_text(line: ET.Element) -> str | None:
    equivs = _children(line, "TextEquiv")
    chosen = next((e for e in equivs if e.get("index") == "0"), equivs[0] if equivs else None)
    if chosen is None:
        return None
    unicode = _children(chosen, "Unicode")
    return (unicode[0].text or "") if unicode else None


def _text_lines(page: ET.Element) -> list[ET.Element]:
    """TextLines grouped by region in reading order (regions may nest: a line belongs to its nearest region)."""
    order = _region_order(page)
    regions = [r for r in page.iter() if isinstance(r.tag, str) and local_name(r.tag) == "TextRegion"]
    ranked = sorted(range(len(regions)), key=lambda i: (order.get(regions[i].get("id"), len(order) + i)))
    return [line for i in ranked for line in _children(regions[i], "TextLine")]


def read(path: Path, tree: ET.ElementTree | None = None) -> Page:
    root = (tree or xmlio.parse(path)[0]).getroot()
    if not is_page(root):
        raise PageFileError(f"{path}: not a PAGE-XML file (root {local_name(root.tag)!r})")
    pages = _children(root, "Page")
    if not pages:
        raise PageFileError(f"{path}: PAGE-XML without a Page element")
    element = pages[0]

    def size(name: str) -> int | None:
        value = element.get(name)
        return int(float(value)) if value else None

    page = Page(path, element.get("imageFilename") or "", size("imageWidth"), size("imageHeight"), format="page")
    for order, xml_line in enumerate(_text_lines(element)):
        line = Line(xml_line.get("id") or f"line {order + 1}", order, text=_line_text(xml_line))
        try:
            coords = _children(xml_line, "Coords")
            line.polygon = parse_points(coords[0].get("points")) if coords else []
            baseline = _children(xml_line, "Baseline")
            line.baseline = parse_points(baseline[0].get("points")) if baseline else []
        except ValueError as err:
            line.problem = f"unusable coordinates: {err}"
        page.lines.append(line)
    return page


def write(path: Path, texts: dict[str, tuple[str, float | None]], out: Path) -> None:
    """Copy ``path`` to ``out`` with each line's ``TextEquiv/Unicode`` (the one :func:`read` reads) set to its
    recognised text and ``conf`` (when given); a line without one gets a new ``TextEquiv`` after its other
    content. Everything else is kept."""
    tree, prefixes = xmlio.parse(path)
    root = tree.getroot()
    ns = namespace(root.tag)
    for xml_line in (e for e in root.iter() if isinstance(e.tag, str) and local_name(e.tag) == "TextLine"):
        if xml_line.get("id") not in texts:
            continue
        text, conf = texts[xml_line.get("id")]
        equivs = _children(xml_line, "TextEquiv")
        equiv = next((e for e in equivs if e.get("index") == "0"), equivs[0] if equivs else None)
        if equiv is None:
            equiv = ET.Element(f"{{{ns}}}TextEquiv" if ns else "TextEquiv")
            styles = _children(xml_line, "TextStyle")  # the schema puts TextStyle after TextEquiv
            xml_line.insert(list(xml_line).index(styles[0]) if styles else len(xml_line), equiv)
        unicode = _children(equiv, "Unicode")
        if not unicode:
            unicode = [ET.SubElement(equiv, f"{{{ns}}}Unicode" if ns else "Unicode")]
        unicode[0].text = text
        if conf is not None:
            equiv.set("conf", f"{conf:.4f}")
    xmlio.write(tree, prefixes, out)
