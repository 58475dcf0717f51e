"""Where line images come from: a Hub dataset, a local folder, or the synthetic generator.

Every source yields a ``DatasetDict`` whose splits have exactly two columns, ``image`` (decoded lazily to PIL)
and ``text``, so nothing downstream cares where the data came from.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import datasets

from ..availability import hub_resource
from ..configs import DataArguments
from .fonts import split_fonts
from .stream import SyntheticLineStream, line_spec
from .synthetic import RENDER_VERSION, LineFactory

METADATA_FILES = ("metadata.jsonl", "metadata.csv")


def load_splits(args: DataArguments) -> datasets.DatasetDict:
    splits = [s for s in (args.train_split, args.validation_split, args.test_split) if s]
    return datasets.DatasetDict({split: load_split(args, split) for split in splits})


def load_split(args: DataArguments, split: str) -> datasets.Dataset:
    """One split of the configured source, truncated to max_train_samples (the train split) or max_eval_samples."""
    chosen = [name for name, on in (("dataset_name", args.dataset_name), ("data_dir", args.data_dir),
                                    ("synthetic", args.synthetic)) if on]
    if len(chosen) != 1:
        raise ValueError(f"Choose exactly one data source (dataset_name, data_dir or synthetic); got {chosen or 'none'}")
    if args.synthetic:
        dataset = _synthetic_split(args, split)
    elif args.data_dir:
        dataset = load_local_split(Path(args.data_dir) / split)
    else:
        dataset = _hub_splits(args, [split])[split]
    if len(dataset) == 0:
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


def read_metadata(folder: Path) -> list[dict]:
    """Rows of ``metadata.jsonl`` / ``metadata.csv`` in ``folder``; errors name the file and row."""
    found = [folder / name for name in METADATA_FILES if (folder / name).is_file()]
    if not found:
        raise FileNotFoundError(f"{folder} has no {' or '.join(METADATA_FILES)}")
    path = found[0]
    if path.suffix == ".jsonl":
        rows = []
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as err:
                    raise ValueError(f"{path}, line {number}: not valid JSON ({err.msg})") from None
    else:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    for number, row in enumerate(rows, start=1):
        missing = [key for key in ("file_name", "text") if key not in row]
        if missing:
            raise ValueError(f"{path}, row {number}: missing {missing}; each row needs file_name and text")
    return rows


def load_local_split(folder: Path) -> datasets.Dataset:
    rows = read_metadata(folder)
    paths = [folder / row["file_name"] for row in rows]
    absent = [(n, str(p)) for n, p in enumerate(paths, start=1) if not p.is_file()]
    if absent:
        shown = "; ".join(f"row {n}: {p}" for n, p in absent[:5])
        raise FileNotFoundError(f"{len(absent)} image(s) listed in {folder} metadata do not exist ({shown})")
    dataset = datasets.Dataset.from_dict({"image": [str(p) for p in paths], "text": [r["text"] for r in rows]})
    return dataset.cast_column("image", datasets.Image())


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
