"""Reading and writing the XML of a page file with the standard library, keeping what a round trip should keep:
comments, processing instructions and the file's own namespace prefixes (ElementTree would otherwise write
``ns0:``)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from .containers import PageFileError


def parse(path: Path) -> tuple[ET.ElementTree, dict[str, str]]:
    """The tree of ``path`` (comments and processing instructions kept) and its ``prefix -> namespace`` map;
    PageFileError naming the file if it is not well-formed XML."""
    try:
        prefixes = {prefix: uri for _, (prefix, uri) in ET.iterparse(path, events=("start-ns",))}
        builder = ET.TreeBuilder(insert_comments=True, insert_pis=True)
        tree = ET.parse(path, parser=ET.XMLParser(target=builder))
    except ET.ParseError as err:
        raise PageFileError(f"{path}: not well-formed XML ({err}); re-export the file") from None
    except OSError as err:
        raise PageFileError(f"{path}: cannot be read ({err})") from None
    return tree, prefixes


def write(tree: ET.ElementTree, prefixes: dict[str, str], path: Path) -> None:
    for prefix, uri in prefixes.items():  # process-wide in ElementTree; harmless, a prefix maps to its own URI
        ET.register_namespace(prefix, uri)
    path.parent.mkdir(parents=True, exist_ok=True)
    tree.write(path, encoding="utf-8", xml_declaration=True)
