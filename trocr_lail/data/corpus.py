"""Real text for synthetic lines (English by default; any script from a user's file), laid out like handwritten pages.

Text sources are the bundled prose below plus any user text files. Each source is cut into sentences, the
sentences are grouped into paragraphs, and every paragraph is laid out at its own page width, so lines are whole
sentence runs broken at spaces, and a paragraph's last line is as short as it happens to be: IAM's mix of full
lines around 40-60 characters and short ones down to a single word. Scripts written without spaces (Chinese,
Japanese: the CJK ranges below) end sentences at 。！？, lose the line breaks of a hard-wrapped file between two such
characters, and break lines between any two of them.

The LAIL loss scores transcriptions with a language model, so synthetic labels must be real language, not lorem
ipsum. Offline and license-clean, we use *Botchan* (Project Gutenberg eBook #8868, public domain), which the
sentencepiece source distribution on PyPI ships as ``test/botchan.txt``; sentencepiece is already a dependency.
"""

from __future__ import annotations

import gzip
import os
import random
import re
import subprocess
import sys
import tarfile
import tempfile
from functools import lru_cache
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


SPLIT_RULE = {"train": lambda i: i % 10 not in (3, 7), "validation": lambda i: i % 10 == 3,
              "test": lambda i: i % 10 == 7}
# Page widths in characters, per paragraph: a normal spread around 53 gives line lengths with a mean near IAM's 43
# (paragraph tails pull it down; measured in tests/test_data.py).
WIDTH_MEAN, WIDTH_SD, WIDTH_MIN = 53.0, 12.0, 16
# Scripts written without spaces between words: CJK punctuation, kana, CJK ideographs, full-width forms.
CJK = "\u3000-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef"
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')]?\s+(?=[\"'(]?[A-Z0-9])"  # Latin: . ! ? then a capital or digit
                           r"|(?<=[。！？])\s*(?=[^」』）\s])|(?<=[。！？][」』）])\s*")  # CJK: after 。！？ (and a closing quote)
_CJK_GAP = re.compile(f"(?<=[{CJK}]) (?=[{CJK}])")  # a hard line wrap inside CJK text: no space there
_UNIT = re.compile(f"[{CJK}]|[^\\s{CJK}]+")  # what a line may break between: a CJK character, else a word


def sentences(text: str) -> list[str]:
    flat = _CJK_GAP.sub("", re.sub(r"\s+", " ", text).strip())
    return [s.strip() for s in _SENTENCE_END.split(flat) if s.strip()]


def _units(text: str) -> list[tuple[str, bool]]:
    """``(unit, space before it)`` for each word, and each CJK character, of ``text``."""
    return [(m.group(), m.start() > 0 and text[m.start() - 1] == " ") for m in _UNIT.finditer(text)]


def _join(sentence_list: list[str]) -> str:
    """Sentences as one run: a space between them, except where either side is CJK (written without spaces)."""
    text = ""
    for sentence in sentence_list:
        space = text and not re.match(f"[{CJK}]", text[-1]) and not re.match(f"[{CJK}]", sentence[0])
        text += (" " if space else "") + sentence
    return text


def paragraphs(text: str, seed: int = 0) -> list[list[str]]:
    """Sentences grouped 1-6 at a time (a fixed, seeded grouping: the split by paragraph must never move)."""
    rng, items, result = random.Random(seed), sentences(text), []
    while items:
        size = rng.randint(1, 6)
        result.append(items[:size])
        items = items[size:]
    return result


def layout(paragraph: list[str], width: int, max_chars: int) -> list[str]:
    """Greedy line breaking at spaces (and between CJK characters) to ``width`` characters; a single word longer
    than ``max_chars`` is dropped."""
    lines, current = [], ""
    for word, spaced in _units(_join(paragraph)):
        if len(word) > max_chars:
            continue
        candidate = f"{current}{' ' if spaced and current else ''}{word}"
        if len(candidate) <= width or not current:
            current = candidate
        else:
            lines.append(current)
            current = word
    if current:
        lines.append(current)
    return [line for line in lines if len(line) <= max_chars]


def text_lines(text: str, split: str = "train", max_chars: int = 90, passes: int = 3, seed: int = 0) -> list[str]:
    """The lines of ``split``'s paragraphs (every 10th paragraph to validation, the next to test: disjoint text),
    laid out ``passes`` times at different page widths so the same prose is broken in several ways."""
    if split not in SPLIT_RULE:
        raise ValueError(f"Unknown synthetic split '{split}': use train, validation or test")
    kept = [p for i, p in enumerate(paragraphs(text, seed)) if SPLIT_RULE[split](i)]
    rng, lines = random.Random(f"layout/{seed}"), []
    for _ in range(passes):
        for paragraph in kept:
            width = int(min(max_chars, max(WIDTH_MIN, rng.gauss(WIDTH_MEAN, WIDTH_SD))))
            lines.extend(layout(paragraph, width, max_chars))
    return lines


def read_source(source: str | None) -> str:
    """Text of one source: ``None`` is the bundled prose, anything else a UTF-8 text file (``.gz``: gzipped)."""
    path = Path(source) if source else corpus_path()
    if not path.is_file():
        raise FileNotFoundError(f"synthetic text file {path} does not exist.")
    try:
        if path.suffix == ".gz":
            return gzip.decompress(path.read_bytes()).decode("utf-8")
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise ValueError(f"synthetic text file {path}: not UTF-8 text (byte {err.start}); re-save it as UTF-8") \
            from None


@lru_cache(maxsize=16)
def source_lines(sources: tuple[str | None, ...], split: str, max_chars: int = 90) -> tuple[tuple[str, ...], ...]:
    """Lines per source (one tuple each); a source that yields no line for ``split`` is an error naming it."""
    result = []
    for source in sources:
        lines = tuple(text_lines(read_source(source), split, max_chars))
        if not lines:
            raise ValueError(f"synthetic text source {source or corpus_path()} yields no {split} lines of at most "
                             f"{max_chars} characters (it needs at least 10 sentences for every split to get text)")
        result.append(lines)
    return tuple(result)


def load_lines(corpus_file: str | None = None, split: str = "train", max_chars: int = 90) -> list[str]:
    return list(source_lines((corpus_file,), split, max_chars)[0])
