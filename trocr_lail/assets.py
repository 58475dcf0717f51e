"""Fetch or build, once, the offline assets the quickstart and tests use: ``python -m trocr_lail.assets``."""

from __future__ import annotations

from .data.corpus import corpus_path
from .data.fonts import ALL_FONTS, font_files
from .lail.smollm2 import smollm2_dir


def main() -> None:
    print(f"corpus: {corpus_path()}")
    print(f"fonts : {sum(len(font_files(name)) for name in ALL_FONTS)} files from {len(ALL_FONTS)} fontpkg packages")
    print(f"LLM   : {smollm2_dir()}")


if __name__ == "__main__":
    main()
