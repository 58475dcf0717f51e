"""Where line images come from: a Hub dataset, a local folder, or the synthetic generator.

Every source yields a ``DatasetDict`` whose splits have exactly two columns, ``image`` (decoded lazily to PIL)
and ``text``, so nothing downstream cares where the data came from.

A local split holds only the usable rows of its metadata; every bad line (invalid JSON, missing keys, non-string
values, an image outside the split folder or missing, conflicting duplicates) is kept in its
:class:`MetadataScan` and reported by the validator together with the image and text checks.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import random
from dataclasses import dataclass, field
from pathlib import Path

import datasets

from ..availability import hub_resource
from ..configs import DataArguments
from .fonts import refuse_stage1_fonts, split_fonts
from .pages.lines import cut_line, holds_pages, page_files, scan_pages
from .stream import SyntheticLineStream, line_spec
from .synthetic import RENDER_VERSION, LineFactory
from .validate import Problem

METADATA_FILES = ("metadata.jsonl", "metadata.csv")
PAGE_SPLIT_SEED = 0  # one folder of pages: which pages validate and test is fixed, not drawn anew per run
PAGE_HELD_OUT = 0.1  # ... and each of validation and test gets this share of the pages (at least one each)
CUT_VERSION = 1  # part of the cut-line cache key: bump it when cutting changes
logger = logging.getLogger("trocr_lail")


def load_splits(args: DataArguments) -> datasets.DatasetDict:
    splits = [s for s in (args.train_split, args.validation_split, args.test_split) if s]
    if args.synthetic and args.synthetic_target_fonts:
        refuse_stage1_fonts(args.synthetic_target_fonts, args.synthetic_stage1_font_dir)
    return datasets.DatasetDict({split: load_split(args, split) for split in splits})


def source_problem(args: DataArguments) -> str | None:
    chosen = [name for name in ("dataset_name", "data_dir", "synthetic") if getattr(args, name)]
    if len(chosen) != 1:
        return f"data source: set exactly one of dataset_name, data_dir, synthetic (got {', '.join(chosen) or 'none'})"
    return None


def load_split(args: DataArguments, split: str) -> datasets.Dataset:
    """One split of the configured source, truncated to max_train_samples (the train split) or max_eval_samples."""
    if problem := source_problem(args):
        raise ValueError(problem)
    if args.synthetic:
        dataset = _synthetic_split(args, split)
    elif args.data_dir:
        dataset = load_local_split(Path(args.data_dir) / split, args)
    else:
        dataset = _hub_splits(args, [split])[split]
    if len(dataset) == 0:
        scan = _scans.get((Path(args.data_dir) / split).resolve()) if args.data_dir else None
        if scan is not None and scan.problems:
            shown = "\n  ".join(str(problem) for problem in scan.problems[:10])
            raise ValueError(f"Split '{split}' has no usable rows: all {len(scan.problems)} line(s) of {scan.path} "
                             f"are bad:\n  {shown}")
        raise ValueError(f"Split '{split}' is empty.")
    if isinstance(dataset, SyntheticLineStream):
        return dataset
    limit = args.max_train_samples if split == args.train_split else args.max_eval_samples
    return dataset if limit is None else dataset.select(range(min(limit, len(dataset))))


def _hub_splits(args: DataArguments, splits: list[str]) -> dict[str, datasets.Dataset]:
    with hub_resource("dataset", args.dataset_name, "dataset_name", repo_type="dataset"):
        loaded = datasets.load_dataset(args.dataset_name, args.dataset_config_name)
    result = {}
    for split in splits:
        if split not in loaded:
            raise ValueError(f"Dataset {args.dataset_name} has no split '{split}'; it has {sorted(loaded)}.")
        result[split] = _standard_columns(loaded[split], args.image_column, args.text_column,
                                          f"{args.dataset_name}[{split}]")
    return result


def _standard_columns(dataset: datasets.Dataset, image_column: str, text_column: str, name: str):
    missing = [c for c in (image_column, text_column) if c not in dataset.column_names]
    if missing:
        raise ValueError(f"{name} has no column(s) {missing}; its columns are {dataset.column_names}. "
                         "Set image_column / text_column in the recipe.")
    dataset = dataset.select_columns([image_column, text_column])
    if image_column != "image":
        dataset = dataset.rename_column(image_column, "image")
    if text_column != "text":
        dataset = dataset.rename_column(text_column, "text")
    return dataset.cast_column("image", datasets.Image())


@dataclass
class MetadataScan:
    """A split folder's metadata, read once: usable rows ``(line, image path, text)`` and every bad line."""

    path: Path
    rows: list[tuple[int, str, str]] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    def locate(self, problem: Problem) -> None:
        """Name a problem of a loaded row by the metadata line it comes from."""
        problem.line, problem.metadata = self.rows[problem.row][0], str(self.path)


@dataclass
class PageScan:
    """A split of page files: per row of the split, ``(XML file, line id, page, reading order)``, and every bad
    page or line."""

    path: Path
    rows: list[tuple[str, str, str, int]] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    def locate(self, problem: Problem) -> None:
        problem.source, problem.line_id = self.rows[problem.row][:2]


# The scan each local split was built from, by folder, so the validator reports the same rows and lines the
# dataset holds (re-reading could see a file that changed in between).
_scans: dict[Path, MetadataScan] = {}


def metadata_path(folder: Path) -> Path:
    found = [folder / name for name in METADATA_FILES if (folder / name).is_file()]
    if not found:
        raise FileNotFoundError(f"{folder} has no {' or '.join(METADATA_FILES)}; each split folder needs one "
                                "(columns file_name and text)")
    return found[0]


def _records(path: Path):
    """``(line, record or None, error)`` per non-blank row: JSONL one object a line, CSV with a header row; a
    UTF-8 byte order mark (Excel, Notepad) is accepted in both. Line numbers are 1-based file lines."""
    if path.suffix == ".jsonl":
        for number, raw in enumerate(path.read_bytes().split(b"\n"), start=1):
            try:
                line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as err:
                yield number, None, f"not UTF-8 text ({err.reason} at byte {err.start}); save the file as UTF-8"
                continue
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                yield number, None, f"not valid JSON ({err.msg} at column {err.colno})"
                continue
            yield (number, record, None) if isinstance(record, dict) else \
                (number, None, f"a JSON {type(record).__name__}, not an object with file_name and text")
        return
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start}); save it as UTF-8") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    missing = [key for key in ("file_name", "text") if key not in (reader.fieldnames or [])]
    if missing:
        raise ValueError(f"{path}, line 1: header {reader.fieldnames} lacks {missing}; the first row must name the "
                         "columns file_name and text")
    start = 2
    for record in reader:  # line_num is the row's last line (quoted fields may span lines)
        yield start, {k: v for k, v in record.items() if v is not None}, None
        start = reader.line_num + 1


def _row_problem(record: dict) -> str | None:
    missing = [key for key in ("file_name", "text") if key not in record]
    if missing:
        return f"missing {missing}; each row needs file_name and text"
    for key in ("file_name", "text"):
        value = record[key]
        if not isinstance(value, str):
            return (f"{key} is {value!r} ({type(value).__name__}), not a string; write it in quotes"
                    if value is not None else f"{key} is null; give a string")
    if not record["file_name"].strip():
        return "empty file_name"
    return None


def scan_metadata(folder: Path) -> MetadataScan:
    """Read ``metadata.jsonl`` / ``metadata.csv`` of one split folder and collect every bad line: invalid JSON
    or text encoding, missing keys, non-string values, an image outside the folder (``..``, an absolute path, a
    symlink leading out), a missing image, and a file listed twice with different texts (all its lines)."""
    path = metadata_path(folder)
    scan, split, root = MetadataScan(path), folder.name, folder.resolve()
    seen: dict[str, list[tuple[int, str]]] = {}

    def bad(number: int, message: str, source: str | None = None) -> None:
        scan.problems.append(Problem(split, None, source or str(path), message, line=number, metadata=str(path)))

    for number, record, error in _records(path):
        error = error or _row_problem(record)
        if error:
            bad(number, error)
            continue
        name = record["file_name"]
        try:
            image = (folder / name).resolve()  # follows symlinks: where the bytes really are
            exists = image.is_file()
        except (OSError, ValueError) as err:  # a NUL byte, a name too long for the file system, a symlink loop
            bad(number, f"file_name {name!r} is not a usable path ({err})")
            continue
        if not image.is_relative_to(root):
            bad(number, f"file_name {name!r} resolves to {image}, outside the split folder {root}; images must "
                        "be inside it (no '..', absolute paths or symlinks leading out)", str(folder / name))
        elif not exists:
            bad(number, f"file_name {name!r}: no such file in {folder}; fix the name or restore the file",
                str(folder / name))
        else:
            seen.setdefault(str(image), []).append((number, record["text"]))
    for image, listed in seen.items():
        texts = {text for _, text in listed}
        if len(texts) > 1:
            lines = ", ".join(str(number) for number, _ in listed)
            for number, _ in listed:
                bad(number, f"listed {len(listed)} times (lines {lines}) with different texts; keep one row per "
                            "image", image)
        else:
            scan.rows += [(number, image, text) for number, text in listed]
    scan.rows.sort()
    scan.problems.sort(key=lambda problem: problem.line)
    return scan


def is_page_folder(folder: Path) -> bool:
    """A folder of PAGE-XML / ALTO files (and their images) rather than line images with a metadata file."""
    return folder.is_dir() and not any((folder / name).is_file() for name in METADATA_FILES) and holds_pages(folder)


def _held_out_pages(folder: Path, args: DataArguments | None, split: str) -> list[Path]:
    """One folder of pages for all splits: a fixed shuffle of its page files, PAGE_HELD_OUT of them (at least one)
    each for validation and test, the rest for training."""
    files = page_files(folder)
    random.Random(PAGE_SPLIT_SEED).shuffle(files)
    held = max(1, round(PAGE_HELD_OUT * len(files))) if len(files) >= 3 else 0
    names = (args.validation_split, args.test_split) if args else ("validation", "test")
    parts = {names[0]: files[:held], names[1]: files[held:2 * held]}
    return sorted(parts.get(split, files[2 * held:]))


def load_page_split(folder: Path, root: Path, files: list[Path] | None = None) -> tuple[datasets.Dataset, PageScan]:
    """Lines cut from the pages under ``folder`` (or ``files``), with text; a line without text is a problem here
    (training needs it; ``predict`` reads such lines). Cut once: ``datasets`` caches the rows by the page files'
    names, sizes and modification times (and CUT_VERSION)."""
    found = scan_pages(folder, root, files)
    scan = PageScan(folder)
    scan.problems = [Problem(folder.name, None, xml, message, line_id=line_id)
                     for xml, line_id, message in found.problems]
    jobs, stamps = [], []
    for page in found.pages:
        cuts = []
        for line, polygon in page.lines:
            if not (line.text or "").strip():
                scan.problems.append(Problem(folder.name, None, str(page.page.xml), "no transcription (such lines "
                                             "are read by predict, but cannot train)", line_id=line.id))
                continue
            scan.rows.append((str(page.page.xml), line.id, page.image.name, line.order))
            cuts.append((line.text, polygon))
        if cuts:
            jobs.append((str(page.image), cuts))
            stamps += [(str(path), path.stat().st_size, path.stat().st_mtime_ns)
                       for path in (page.page.xml, page.image)]
    features = datasets.Features({"image": datasets.Image(), "text": datasets.Value("string")})
    if not jobs:
        return datasets.Dataset.from_dict({"image": [], "text": []}, features=features), scan
    kwargs = {"jobs": jobs, "stamps": tuple(stamps), "version": CUT_VERSION}  # a tuple: not a list to shard over
    dataset = datasets.Dataset.from_generator(_cut_rows, features=features, gen_kwargs=kwargs)
    return dataset, scan


def _cut_rows(jobs: list, stamps: list, version: int):
    del stamps, version  # cache-key only (see load_page_split)
    from .images import PAGE_MAX_PIXELS, BadImage, load_rgb

    for image_path, cuts in jobs:
        try:
            page = load_rgb(image_path, max_pixels=PAGE_MAX_PIXELS)
        except BadImage:  # its header read, its pixels do not: each line's row names the page image, and the
            # validator reports the same error for it, so it is refused or skipped like any bad row
            yield from ({"image": {"bytes": None, "path": image_path}, "text": text} for text, _ in cuts)
            continue
        for text, polygon in cuts:
            buffer = io.BytesIO()
            cut_line(page, polygon).save(buffer, format="PNG", compress_level=1)
            yield {"image": {"bytes": buffer.getvalue(), "path": None}, "text": text}


def load_local_split(folder: Path, args: DataArguments | None = None) -> datasets.Dataset:
    """The usable rows of ``folder``, a split folder of line images with metadata or of page files, or a split
    drawn from one folder of pages (``folder``'s parent); the bad input lines are in :func:`metadata_scans`."""
    names = (args.train_split, args.validation_split, args.test_split) if args else ("train", "validation", "test")
    if not folder.exists() and is_page_folder(folder.parent) and \
            not any((folder.parent / name).is_dir() for name in names if name):  # not a missing split folder
        dataset, scan = load_page_split(folder.parent, folder.parent, _held_out_pages(folder.parent, args,
                                                                                      folder.name))
        _scans[folder.resolve()] = scan
        return dataset
    if is_page_folder(folder):
        dataset, scan = load_page_split(folder, folder)
        _scans[folder.resolve()] = scan
        return dataset
    scan = scan_metadata(folder)
    _scans[folder.resolve()] = scan
    features = datasets.Features({"image": datasets.Value("string"), "text": datasets.Value("string")})
    dataset = datasets.Dataset.from_dict({"image": [image for _, image, _ in scan.rows],
                                          "text": [text for _, _, text in scan.rows]}, features=features)
    return dataset.cast_column("image", datasets.Image())


def metadata_scans(args: DataArguments, splits) -> dict[str, MetadataScan | PageScan]:
    """The metadata (or page) scans behind the local ``splits`` (empty for Hub and synthetic data). The degraded test
    copies are made in memory: they have no folder and no scan."""
    if not args.data_dir:
        return {}
    degraded = {f"{args.test_split}_{name}" for name in getattr(args, "test_degradations", None) or ()}
    scans = {}
    for name in splits:
        if name in degraded:
            continue
        folder = Path(args.data_dir) / name
        if folder.resolve() not in _scans:
            load_local_split(folder, args)
        scans[name] = _scans[folder.resolve()]
    return scans


def require_clean_metadata(args: DataArguments, split: str) -> None:
    """For commands that run no full validation (``evaluate``): bad metadata lines stop them, naming each, unless
    ``skip_bad_samples`` (then they are left out and counted in a warning): a score over silently fewer lines
    would not be the score of the split."""
    scan = metadata_scans(args, [split]).get(split)
    if scan is None or not scan.problems:
        return
    lines = len({problem.key for problem in scan.problems})
    shown = "\n  ".join(str(problem) for problem in scan.problems[:10])
    if not args.skip_bad_samples:
        raise ValueError(f"{lines} bad line(s) in {scan.path}:\n  {shown}\nFix them, or set skip_bad_samples: "
                         "true to leave them out (counted).")
    logger.warning("Left out %d bad line(s) of %s (skip_bad_samples):\n  %s", lines, scan.path, shown)


def _synthetic_split(args: DataArguments, split: str):
    size = args.synthetic_train_samples if split == args.train_split else args.synthetic_eval_samples
    # The recipe's split names pick the font roles; other names (evaluating a split by its role name) map to
    # themselves.
    role = {args.train_split: "train", args.validation_split: "validation", args.test_split: "test"}.get(split, split)
    spec = line_spec(args, role)
    if args.synthetic_stream and split == args.train_split:  # rendered on the fly in the DataLoader workers
        limit = args.max_train_samples
        return SyntheticLineStream(spec, size if limit is None else min(size, limit), augment=args.augment)
    features = datasets.Features({"image": datasets.Image(), "text": datasets.Value("string")})
    # from_generator caches by (function, kwargs): re-running a recipe reuses the rendered lines. The spec (fonts,
    # text sources, geometry) and RENDER_VERSION are kwargs so that a change renders anew instead of reusing stale
    # lines; the font lists and text files are named in it, and their contents are assumed fixed. Lines are a pure
    # function of their index, so index ranges render in parallel (one per core) with the same result.
    workers = max(1, min(os.cpu_count() or 1, size // 2000))
    bounds = [size * k // workers for k in range(workers + 1)]
    return datasets.Dataset.from_generator(
        _synthetic_rows, features=features, num_proc=workers if workers > 1 else None,
        gen_kwargs={"spec": spec, "fonts": split_fonts(role), "ranges": list(zip(bounds[:-1], bounds[1:])),
                    "version": RENDER_VERSION},
    )


def _synthetic_rows(spec, fonts: tuple[str, ...], ranges: list[tuple[int, int]], version: int):
    del fonts, version  # cache-key only (see _synthetic_split)
    factory = LineFactory(spec)
    for start, stop in ranges:
        for index in range(start, stop):
            row = factory(index)
            # Encode ourselves: grayscale PNG at low compression is ~6x faster than datasets' default RGB
            # encoding, which otherwise dominates the quickstart's data preparation. Lossless.
            buffer = io.BytesIO()
            row["image"].save(buffer, format="PNG", compress_level=1)
            yield {"image": {"bytes": buffer.getvalue(), "path": None}, "text": row["text"]}
