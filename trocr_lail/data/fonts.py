"""Fonts for synthetic lines: handwriting and printed faces from the PyPI ``fontpkg-*`` packages, any user folder
of TTF/OTF files, and the font-level train/validation/test split.

TrOCR's stage-1/2 data was text rendered in handwriting fonts, with printed lines mixed in. Holding whole fonts out
of training mimics IAM's writer-independent split: the test set measures reading a *new hand*, not memorising
glyphs.
"""

from __future__ import annotations

import glob
import hashlib
import importlib.util
from functools import lru_cache
from pathlib import Path

# Fonts a user can read at a glance, so held-out CER measures generalisation rather than illegibility.
# Highly ornate scripts (great-vibes, zeyada) stay in training, where they act as strong augmentation.
# lobster-two, oleo-script (scripts) and comfortaa (a rounded print face) widen the training styles: with them the
# quickstart's held-out CER at 3000 steps fell from 46% to 39% (test) and from 56% to 39% (validation).
# permanent-marker (a felt-pen hand) and lobster (a bold script) were added with the streaming engine.
TRAIN_FONTS = ("caveat", "dancing-script", "indie-flower", "shadows-into-light", "zeyada", "great-vibes",
               "pacifico", "satisfy", "yellowtail", "lobster-two", "oleo-script", "comfortaa", "permanent-marker",
               "lobster")
# Printed faces (serif, sans, slab; roman and italic files), training only: the paper mixed printed lines in.
PRINTED_FONTS = ("pt-serif", "open-sans", "lora", "crimson-text", "roboto-slab")
VALIDATION_FONTS = ("delius",)
TEST_FONTS = ("kalam",)
ALL_FONTS = TRAIN_FONTS + PRINTED_FONTS + VALIDATION_FONTS + TEST_FONTS
FONT_SUFFIXES = (".ttf", ".otf")


def font_files(name: str) -> list[Path]:
    """The .ttf/.otf files of one ``fontpkg-<name>`` package (several weights for some families)."""
    module = "fontpkg_" + name.replace("-", "_")
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"Font '{name}' is not installed: pip install fontpkg-{name}")
    folder = Path(next(iter(spec.submodule_search_locations)), "files")
    files = sorted(p for p in folder.glob("*") if p.suffix.lower() in FONT_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"fontpkg-{name} has no .ttf/.otf files under {folder}")
    return files


def folder_fonts(folder: str | Path, what: str = "synthetic_font_dir") -> list[tuple[str, Path]]:
    """``(name, path)`` for every TTF/OTF under ``folder`` (recursive); the name is the file stem."""
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"{what} {root} is not a folder")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in FONT_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"{what} {root} holds no .ttf or .otf files")
    return [(path.stem, path) for path in files]


def target_fonts(path: str | Path) -> list[tuple[str, str]]:
    """``(name, file)`` of a target writer's hand: one TTF/OTF file, or every one under a folder."""
    target = Path(path)
    if target.is_dir():
        return [(name, str(file)) for name, file in folder_fonts(target, "synthetic_target_fonts")]
    if not target.is_file():
        raise FileNotFoundError(f"synthetic_target_fonts {target}: no such font file or folder")
    if target.suffix.lower() not in FONT_SUFFIXES:
        raise ValueError(f"synthetic_target_fonts {target} is not a .ttf or .otf file")
    return [(target.stem, str(target))]


def refuse_stage1_fonts(target: str | Path, stage1_font_dir: str | None = None) -> None:
    """Refuse a target font that stage 1 was given (the toolkit's training, printed, validation and test fonts,
    plus ``stage1_font_dir``): adapting to a hand the model already knows measures nothing. A renamed copy (same
    bytes) or another version of the family (same family name) counts as the same hand."""
    stage1 = [(name, str(path)) for name in ALL_FONTS for path in font_files(name)]
    if stage1_font_dir:
        stage1 += [(name, str(path)) for name, path in folder_fonts(stage1_font_dir, "synthetic_stage1_font_dir")]
    known = {}
    for name, path in stage1:
        known.setdefault(_digest(path), (name, path))
        known.setdefault(_family(path), (name, path))
    for _, path in target_fonts(target):
        hit = known.get(_digest(path)) or known.get(_family(path))
        if hit:
            raise ValueError(f"synthetic_target_fonts file {path} is stage 1's font '{hit[0]}' ({hit[1]}): a target "
                             "writer must be a hand stage 1 never saw; choose another font")


@lru_cache(maxsize=None)
def _digest(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@lru_cache(maxsize=None)
def _family(path: str) -> str:
    from PIL import ImageFont

    return "family:" + ImageFont.truetype(path, 12).getname()[0].strip().lower()


def listed_fonts(entries: list[str], what: str) -> list[str]:
    """TTF/OTF files named by ``entries``: files, folders (searched recursively) or glob patterns."""
    files = []
    for entry in entries:
        path = Path(entry).expanduser()
        if path.is_dir():
            files += [str(file) for _, file in folder_fonts(path, what)]
        elif path.is_file():
            files.append(str(path))
        else:
            matches = sorted(m for m in glob.glob(str(path), recursive=True) if Path(m).suffix.lower() in FONT_SUFFIXES)
            if not matches:
                raise FileNotFoundError(f"{what}: {entry} is no font file, folder or pattern matching any")
            files += matches
    return sorted(set(files))


def split_font_files(lists: dict[str, list[str]], role: str) -> tuple[str, ...] | None:
    """The role's own font files (``synthetic_<role>_fonts``: any script's hands), or None for the toolkit's
    split. A validation/test file with the bytes of a training one is refused: the held-out hand must be new."""
    if not lists.get(role):
        return None
    files = listed_fonts(lists[role], f"synthetic_{role}_fonts")
    if role != "train" and lists.get("train"):
        train = {_digest(file): file for file in listed_fonts(lists["train"], "synthetic_train_fonts")}
        clash = [f"{file} (= {train[_digest(file)]})" for file in files if _digest(file) in train]
        if clash:
            raise ValueError(f"synthetic_{role}_fonts holds training fonts: {', '.join(clash)}; a held-out hand must "
                             "be one training never sees")
    return tuple(files)


def split_fonts(split: str) -> tuple[str, ...]:
    """The handwriting ``fontpkg`` families of a split (printed faces are added to training separately)."""
    try:
        return {"train": TRAIN_FONTS, "validation": VALIDATION_FONTS, "test": TEST_FONTS}[split]
    except KeyError:
        raise ValueError(f"Unknown synthetic split '{split}': use train, validation or test") from None


def resolve_fonts(names: tuple[str, ...], font_dir: str | None = None) -> list[tuple[str, str]]:
    """``(name, file)`` pairs for ``fontpkg`` family names plus a user folder's files. A user file that is also
    a held-out (validation/test) font is refused: it would leak the test hand into training."""
    pairs = [(name, str(path)) for name in names for path in font_files(name)]
    if font_dir:
        heldout = {path.name for name in VALIDATION_FONTS + TEST_FONTS for path in font_files(name)}
        for name, path in folder_fonts(font_dir):
            if path.name in heldout:
                raise ValueError(f"synthetic_font_dir file {path} is a held-out validation/test font; remove it "
                                 "from the folder (training on it would make the held-out CER meaningless)")
            pairs.append((name, str(path)))
    return pairs
