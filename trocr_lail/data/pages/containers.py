"""The neutral page container that the PAGE-XML and ALTO modules meet at (the kraken habit): readers build a
:class:`Page`, the line source and ``inference/pages.py`` use it, writers take recognised text back by line id.
Nothing here knows a format or a model.

Geometry is in page pixels. A line has a ``polygon`` (its outline), or only a ``baseline`` (a height is chosen
when it is cut, see ``crop.py``); the format modules fill whichever the file has.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

Point = tuple[float, float]


class PageFileError(ValueError):
    """A page file that cannot be read at all (not XML, not PAGE or ALTO); the message names the file."""


@dataclass
class Line:
    id: str
    order: int  # 0-based reading order on its page
    polygon: list[Point] = field(default_factory=list)
    baseline: list[Point] = field(default_factory=list)
    text: str | None = None  # None: the file has no transcription for the line
    problem: str | None = None  # set by a reader for geometry it cannot use (e.g. unparseable points)


@dataclass
class Page:
    xml: Path  # the PAGE or ALTO file
    image_ref: str  # the image file name as written in the XML
    width: int | None
    height: int | None
    lines: list[Line] = field(default_factory=list)
    format: str = ""  # "page" or "alto"


def parse_points(text: str | None) -> list[Point]:
    """``"x1,y1 x2,y2 ..."`` (PAGE, ALTO 4) or ``"x1 y1 x2 y2 ..."`` (ALTO 2/3 polygons) as points; raises
    ValueError on anything else."""
    if not text or not text.strip():
        return []
    if "," in text:
        pairs = [item.split(",") for item in text.split()]
        if any(len(pair) != 2 for pair in pairs):
            raise ValueError(f"points {text[:40]!r} are not x,y pairs")
        return [(float(x), float(y)) for x, y in pairs]
    numbers = [float(value) for value in text.split()]
    if len(numbers) % 2:
        raise ValueError(f"points {text[:40]!r} have an odd number of coordinates")
    return list(zip(numbers[::2], numbers[1::2]))


def local_name(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def namespace(tag: str) -> str:
    return tag[1:].split("}", 1)[0] if tag.startswith("{") else ""
