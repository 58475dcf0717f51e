"""A folder of page files as lines: find the PAGE-XML and ALTO files, resolve their page images (never outside
the data folder), check each line's geometry against its page, and cut lines out.

Every problem is ``(file, line id or None, message)``; a page with a problem of its own (XML that does not
parse, a missing or unreadable image, an image reference leaving the data folder) gives no lines. Cutting: the
bounding box of the line's polygon, with everything outside the polygon painted white; a line with only a
baseline gets a band ``height`` tall around it (three quarters above, a quarter below), ``height`` being the
median polygon height on its page, else ``DEFAULT_LINE_HEIGHT``.
"""

from __future__ import annotations

import statistics
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageDraw

from . import alto, pagexml, xmlio
from .containers import Line, Page, PageFileError, Point, local_name

DEFAULT_LINE_HEIGHT = 48  # pixels; a handwritten line at ~300 dpi
ASCENT = 0.75  # share of a baseline-only line's band above the baseline
PageProblem = tuple[str, "str | None", str]


@dataclass
class PageLines:
    """One page's usable lines: ``(line, polygon in page pixels)``, in reading order."""

    page: Page
    image: Path
    size: tuple[int, int]
    lines: list[tuple[Line, list[Point]]] = field(default_factory=list)


@dataclass
class PagesScan:
    pages: list[PageLines] = field(default_factory=list)
    problems: list[PageProblem] = field(default_factory=list)


def page_files(folder: Path) -> list[Path]:
    """XML files under ``folder`` (recursive: Transkribus keeps them in ``page/``), sorted by path."""
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() == ".xml" and p.is_file())


def holds_pages(folder: Path) -> bool:
    """Whether ``folder`` (recursively) has a PAGE-XML or ALTO file, judged by its root element, or an XML file
    that does not parse (to be reported, not taken for some other XML)."""
    for path in page_files(folder):
        try:
            _, root = next(ET.iterparse(path, events=("start",)))
        except (ET.ParseError, OSError, StopIteration):
            return True
        if local_name(root.tag) in ("PcGts", "alto"):
            return True
    return False


def read_page(path: Path) -> Page | None:
    """The page in ``path``; None for XML that is neither PAGE nor ALTO (a METS or metadata file of an export)."""
    tree, _ = xmlio.parse(path)
    root = tree.getroot()
    if pagexml.is_page(root):
        return pagexml.read(path, tree)
    if alto.is_alto(root):
        return alto.read(path, tree)
    return None


def writer(page: Page):
    return pagexml.write if page.format == "page" else alto.write


def resolve_image(page: Page, root: Path) -> Path:
    """The page image: next to the XML, or one folder up (Transkribus' ``page/``); ValueError if the reference
    leaves ``root`` (``..``, an absolute path, a symlink) or names no file."""
    ref = page.image_ref
    if not ref:
        raise ValueError("names no page image (imageFilename / fileName is empty)")
    folders = [page.xml.parent] + ([page.xml.parent.parent] if page.xml.parent.resolve() != root else [])
    for folder in folders:
        candidate = (folder / ref).resolve()
        if not candidate.is_relative_to(root):
            raise ValueError(f"image {ref!r} resolves to {candidate}, outside the data folder {root}; page images "
                             "must be inside it")
        if candidate.is_file():
            return candidate
    raise ValueError(f"page image {ref!r} not found next to the XML{' or one folder up' if len(folders) > 1 else ''}")


def _band(baseline: list[Point], height: float) -> list[Point]:
    top = [(x, y - ASCENT * height) for x, y in baseline]
    bottom = [(x, y + (1 - ASCENT) * height) for x, y in reversed(baseline)]
    return top + bottom


def _bbox(points: list[Point]) -> tuple[float, float, float, float]:
    xs, ys = [x for x, _ in points], [y for _, y in points]
    return min(xs), min(ys), max(xs), max(ys)


def line_polygon(line: Line, size: tuple[int, int], height: float) -> list[Point]:
    """The outline to cut ``line`` by; ValueError saying why it cannot be cut."""
    if line.problem:
        raise ValueError(line.problem)
    if line.polygon:
        if len(set(line.polygon)) < 3:
            raise ValueError(f"degenerate polygon ({len(set(line.polygon))} distinct point(s))")
        polygon = line.polygon
    elif len(line.baseline) >= 2:
        polygon = _band(line.baseline, height)
    else:
        raise ValueError("no polygon and no baseline (or a baseline of one point)")
    left, top, right, bottom = _bbox(polygon)
    if right - left < 1 or bottom - top < 1:
        raise ValueError(f"degenerate polygon ({right - left:g} x {bottom - top:g} pixels)")
    if right <= 0 or bottom <= 0 or left >= size[0] or top >= size[1]:
        raise ValueError(f"outside the page: box ({left:g}, {top:g})-({right:g}, {bottom:g}) on a "
                         f"{size[0]}x{size[1]} image")
    return polygon


def _rescale(page: Page, sx: float, sy: float) -> None:
    """PAGE and ALTO coordinates are in the XML's page size; a smaller or larger image file (a downscaled copy)
    gets them scaled to its own pixels."""
    for line in page.lines:
        line.polygon = [(x * sx, y * sy) for x, y in line.polygon]
        line.baseline = [(x * sx, y * sy) for x, y in line.baseline]


def scan_pages(folder: Path, root: Path | None = None, files: list[Path] | None = None) -> PagesScan:
    """Every page file under ``folder`` (or just ``files``), checked; images must lie inside ``root`` (default
    ``folder``)."""
    root = (root or folder).resolve()
    scan = PagesScan()
    for path in page_files(folder) if files is None else files:
        try:
            if not path.resolve().is_relative_to(root):  # a symlink leading out: never read
                raise ValueError(f"resolves to {path.resolve()}, outside the data folder {root}")
            page = read_page(path)
            if page is None:
                continue
            image = resolve_image(page, root)
            with Image.open(image) as opened:  # the header only: size without decoding
                size = opened.size
        except (PageFileError, ValueError, OSError) as err:
            scan.problems.append((str(path), None, str(err).removeprefix(f"{path}: ")))
            continue
        if page.width and page.height and (page.width, page.height) != size:
            _rescale(page, size[0] / page.width, size[1] / page.height)
        heights = [_bbox(line.polygon)[3] - _bbox(line.polygon)[1] for line in page.lines
                   if len(line.polygon) >= 3 and not line.problem]
        height = statistics.median(heights) if heights else DEFAULT_LINE_HEIGHT
        usable = PageLines(page, image, size)
        for line in page.lines:
            try:
                usable.lines.append((line, line_polygon(line, size, height)))
            except ValueError as err:
                scan.problems.append((str(path), line.id, str(err)))
        scan.pages.append(usable)
    return scan


def cut_line(page_image: Image.Image, polygon: list[Point]) -> Image.Image:
    """The polygon's bounding box (clipped to the page), white outside the polygon."""
    left, top, right, bottom = _bbox(polygon)
    box = (max(0, int(left)), max(0, int(top)), min(page_image.width, int(-(-right // 1))),
           min(page_image.height, int(-(-bottom // 1))))
    crop = page_image.crop(box)
    mask = Image.new("L", crop.size, 0)
    ImageDraw.Draw(mask).polygon([(x - box[0], y - box[1]) for x, y in polygon], fill=255)
    white = Image.new(crop.mode, crop.size, "white")
    white.paste(crop, mask=mask)
    return white
