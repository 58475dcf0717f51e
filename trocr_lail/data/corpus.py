"""Real English text for synthetic lines.

The LAIL loss scores transcriptions with a language model, so synthetic labels must be real language, not lorem
ipsum. Offline and license-clean, we use *Botchan* (Project Gutenberg eBook #8868, public domain), which the
sentencepiece source distribution on PyPI ships as ``test/botchan.txt``; sentencepiece is already a dependency.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

SENTENCEPIECE_SDIST = "sentencepiece==0.2.3"
_MEMBER_SUFFIX = "/test/botchan.txt"


def cache_dir() -> Path:
    return Path(os.environ.get("TROCR_LAIL_CACHE", Path.home() / ".cache" / "trocr_lail"))


def corpus_path() -> Path:
    """Path of the cached corpus, fetching it from PyPI (once) if it is not there yet."""
    path = cache_dir() / "corpus" / "botchan.txt"
    if not path.exists():
        _fetch(path)
    return path


def _fetch(dest: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
               SENTENCEPIECE_SDIST, "-d", tmp]
        result = subprocess.run(cmd, capture_output=True, text=True)
        sdists = list(Path(tmp).glob("sentencepiece-*.tar.gz"))
        if result.returncode != 0 or not sdists:
            raise RuntimeError(
                f"Could not fetch the text corpus ({SENTENCEPIECE_SDIST} source distribution from PyPI): "
                f"{result.stderr.strip()[-500:]}\nRun `make assets` with network access, or pass your own "
                "plain-text file with `corpus_file:` in the recipe."
            )
        with tarfile.open(sdists[0]) as tar:
            member = next(m for m in tar.getmembers() if m.name.endswith(_MEMBER_SUFFIX))
            text = tar.extractfile(member).read().decode("utf-8-sig")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp_dest = dest.with_suffix(".tmp")
    tmp_dest.write_text(strip_gutenberg_boilerplate(text), encoding="utf-8")
    tmp_dest.replace(dest)  # atomic, so concurrent test workers never read half a file


def strip_gutenberg_boilerplate(text: str) -> str:
    start = re.search(r"\*\*\* ?START OF TH(?:IS|E) PROJECT GUTENBERG EBOOK[^\n]*\n", text)
    end = re.search(r"\*\*\* ?END OF TH(?:IS|E) PROJECT GUTENBERG EBOOK", text)
    body = text[start.end() if start else 0 : end.start() if end else len(text)]
    # The licence trailer sometimes sits above the END marker in this file.
    return body.split("End of Project Gutenberg")[0]


def text_lines(text: str, min_chars: int = 12, max_chars: int = 48) -> list[str]:
    """Re-flow prose into handwriting-line-sized chunks, breaking only at spaces.

    Lines are packed greedily up to a target length that cycles through [min_chars, max_chars] so the line
    length distribution is spread out, like IAM's; chunks shorter than ``min_chars`` are dropped.
    """
    words = re.sub(r"\s+", " ", text).strip().split(" ")
    span = max_chars - min_chars + 1
    lines, current, target = [], "", max_chars
    for word in words:
        candidate = f"{current} {word}" if current else word
        if len(candidate) <= target:
            current = candidate
            continue
        if len(current) >= min_chars:
            lines.append(current)
            target = min_chars + (len(lines) * 7919) % span  # cheap deterministic spread of lengths
        current = word if len(word) <= max_chars else ""
    if len(current) >= min_chars:
        lines.append(current)
    return lines


def load_lines(corpus_file: str | None = None, min_chars: int = 12, max_chars: int = 48) -> list[str]:
    path = Path(corpus_file) if corpus_file else corpus_path()
    if not path.is_file():
        raise FileNotFoundError(f"corpus_file {path} does not exist.")
    lines = text_lines(path.read_text(encoding="utf-8"), min_chars, max_chars)
    if not lines:
        raise ValueError(f"corpus_file {path} yields no lines of {min_chars}-{max_chars} characters.")
    return lines
