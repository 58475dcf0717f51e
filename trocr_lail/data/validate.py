"""Check a dataset before any training step: every image decodes (and converts to RGB), has a sane size, every
transcription is non-empty and encodable by the tokenizer, and how many exceed ``max_target_length``.

    trocr-lail validate --config recipes/trocr-base/baseline.yaml [--flag value ...]

``run.main`` calls :func:`validate_splits` before training: problems stop the run with an error naming each row
and file, or, with ``skip_bad_samples``, the rows are dropped and counted. Policy on cost: every image is
decoded once, before training, on the main process only (other DDP ranks receive its report); nothing is
cached, so a big dataset that was validated already can set ``validate_images: false`` to check text only.
Synthetic data (rendered by us, in process) gets the text checks only during training runs.
"""

from __future__ import annotations

import unicodedata
from collections import Counter
from dataclasses import dataclass, field

import datasets

from ..models.ctc_vocab import is_ctc_tokenizer
from ..models.vocabulary import unknown_characters
from .images import BadImage, describe, frame_count, open_image, to_rgb

SHOWN_PROBLEMS = 10
# What to do about characters the tokenizer cannot encode: a TrOCR decoder's vocabulary can grow; a CTC
# recognizer's output classes are its vocabulary (built from stage 1's training texts when it is a saved one).
EXTEND_HINT = "extend_vocabulary: true adds those of the training split"
CTC_HINT = ("a CTC recognizer writes only its vocabulary's characters, a saved one those it was trained with; "
            "skip_bad_samples: true drops these rows, counted")


@dataclass
class Problem:
    split: str
    row: int | None  # 0-based index into the loaded split; None: a metadata line that never became a row
    source: str  # the image file, "embedded image bytes", or the metadata file
    message: str
    line: int | None = None  # 1-based line of the local metadata file the row comes from
    metadata: str | None = None  # ... that file
    line_id: str | None = None  # a page's line (PAGE/ALTO id) the row was cut from; source is then its XML file

    @property
    def key(self) -> tuple:
        """What one bad row or bad input line is: problems with the same key count once."""
        if self.row is not None:
            return ("row", self.row)
        return ("line", self.line) if self.line is not None else (self.source, self.line_id)

    @property
    def where(self) -> str:
        """The file and line a user opens: the metadata line (1-based), a page's line, else the row in the split."""
        if self.line_id is not None or (self.row is None and self.line is None):  # a page file or one of its lines
            return f"{self.source}{f' line {self.line_id}' if self.line_id is not None else ''}"
        where = f"{self.metadata} line {self.line}" if self.line else f"{self.split} row {self.row + 1}"
        return where + (f" ({self.source})" if self.source and self.source != self.metadata else "")

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


@dataclass
class SplitSummary:
    name: str
    rows: int
    problems: list[Problem] = field(default_factory=list)
    truncated: int = 0  # targets longer than max_target_length tokens (truncated, not dropped)
    longest: int = 0  # tokens, EOS included
    modes: Counter = field(default_factory=Counter)
    min_size: tuple[int, int] | None = None  # (width, height) of the narrowest image
    max_size: tuple[int, int] | None = None  # ... and of the widest
    images_checked: bool = True
    multi_frame: int = 0  # animated / multi-page images: only their first frame is read
    unknown: dict = field(default_factory=dict)  # character -> [occurrences, where it first occurs]

    def bad_rows(self) -> list[int]:
        """0-based indices of bad rows in the loaded split (bad metadata lines never became rows)."""
        return sorted({problem.row for problem in self.problems if problem.row is not None})

    def num_bad(self) -> int:
        """Bad rows plus bad metadata lines that were left out of the split."""
        return len(self.bad_rows()) + len({p.key for p in self.problems if p.row is None})


@dataclass
class ValidationSummary:
    splits: dict[str, SplitSummary]
    max_target_length: int
    unknown_hint: str = EXTEND_HINT

    @property
    def problems(self) -> list[Problem]:
        return [problem for split in self.splits.values() for problem in split.problems]

    def num_bad_rows(self) -> int:
        return sum(split.num_bad() for split in self.splits.values())

    def format(self, shown: int | None = SHOWN_PROBLEMS, problems_file: str | None = None) -> str:
        """Per-split counts and the first ``shown`` problems (all with None); ``problems_file`` is named as
        where the rest are."""
        lines = []
        for s in self.splits.values():
            images = (f"modes {dict(s.modes)}, sizes {s.min_size}..{s.max_size} (w x h)" if s.images_checked
                      else "images not checked")
            if s.multi_frame:
                images += f", {s.multi_frame} animated/multi-page (first frame used)"
            lines.append(f"{s.name}: {s.rows} rows, {s.num_bad()} bad; {images}; longest target {s.longest} "
                         f"tokens, {s.truncated} over max_target_length={self.max_target_length} (truncated)")
            if s.unknown:
                lines.append(f"  {len(s.unknown)} character(s) the tokenizer cannot encode ({self.unknown_hint}):")
                lines += [f"    {char!r} U+{ord(char):04X} {unicodedata.name(char, '?')}: {count}x, first at {where}"
                          for char, (count, where) in s.unknown.items()]
        problems = self.problems
        shown = len(problems) if shown is None else shown
        lines += [f"  {problem}" for problem in problems[:shown]]
        if len(problems) > shown:
            lines.append(f"  ... and {len(problems) - shown} more problems"
                         + (f" (all {len(problems)} in {problems_file})" if problems_file else
                            " (--all_problems lists them, --problems_file FILE writes them)"))
        return "\n".join(lines)

    def error_message(self) -> str:
        return (f"Dataset validation found {len(self.problems)} problem(s) in {self.num_bad_rows()} row(s):\n"
                f"{self.format()}\nFix or remove these rows, or set skip_bad_samples: true to drop them (counted).")

    def drop_bad_rows(self, splits: datasets.DatasetDict) -> datasets.DatasetDict:
        kept = {}
        for name, dataset in splits.items():
            bad = set(self.splits[name].bad_rows()) if name in self.splits else set()
            kept[name] = dataset.select([i for i in range(len(dataset)) if i not in bad]) if bad else dataset
            if len(kept[name]) == 0:
                raise ValueError(f"Split '{name}' has no usable rows left after dropping bad samples.")
        return datasets.DatasetDict(kept)


def unencodable_chars(tokenizer, texts) -> set[str]:
    """Characters the tokenizer maps to its unknown token or does not decode back (checked once per distinct
    character; ``models/vocabulary.py``)."""
    return unknown_characters(tokenizer, {ch for text in texts for ch in text})


def validate_split(dataset: datasets.Dataset, tokenizer, max_target_length: int, name: str = "train",
                   check_images: bool = True, scan=None) -> SplitSummary:
    """Check every row of ``dataset``. ``scan`` (``sources.MetadataScan`` of a local folder) adds its bad
    metadata lines to the report and names each row by its metadata line."""
    summary = SplitSummary(name=name, rows=len(dataset), images_checked=check_images)
    texts = list(dataset["text"])
    raw = dataset.cast_column("image", datasets.Image(decode=False)) if check_images else None
    sources = ([describe(value) for value in raw["image"]] if raw is not None
               else [""] * len(texts))
    good_texts = []
    for row, text in enumerate(texts):
        if not isinstance(text, str):
            summary.problems.append(Problem(name, row, sources[row], f"transcription is {text!r}, not text"))
        elif not text.strip():
            summary.problems.append(Problem(name, row, sources[row], "empty or whitespace-only transcription"))
        else:
            good_texts.append((row, text))
    # No tokenizer (`trocr-lail validate DIR` without --model): the image and text checks only.
    unknown = unencodable_chars(tokenizer, [text for _, text in good_texts]) if tokenizer is not None else set()
    first_rows = {}
    for row, text in good_texts:
        bad = sorted(set(text) & unknown)
        for char in bad:
            first_rows.setdefault(char, row)
            summary.unknown[char] = summary.unknown.get(char, 0) + text.count(char)
        if bad:
            summary.problems.append(Problem(name, row, sources[row], f"characters the tokenizer cannot encode: "
                                            f"{''.join(bad)!r}; replace them or use a tokenizer that covers them"))
    encoded = (tokenizer([text for _, text in good_texts], add_special_tokens=False)["input_ids"]
               if good_texts and tokenizer is not None else [])
    eos = tokenizer is not None and tokenizer.eos_token_id is not None  # CTC vocabularies have none
    lengths = [len(tokens) + eos for tokens in encoded]  # + EOS, as the collator builds targets
    summary.longest = max(lengths, default=0)
    summary.truncated = sum(length > max_target_length for length in lengths)
    if raw is not None:
        for row, value in enumerate(raw["image"]):
            try:
                image = open_image(value)
                summary.modes[image.mode] += 1
                summary.multi_frame += frame_count(image) > 1
                to_rgb(image)
            except BadImage as err:
                summary.problems.append(Problem(name, row, sources[row], str(err).removeprefix(sources[row] + ": ")))
                continue
            size = image.size
            summary.min_size = size if summary.min_size is None or size[0] < summary.min_size[0] else summary.min_size
            summary.max_size = size if summary.max_size is None or size[0] > summary.max_size[0] else summary.max_size
    if scan is not None:
        for problem in summary.problems:
            scan.locate(problem)
        summary.problems += scan.problems
        summary.rows += len({problem.key for problem in scan.problems})
    where = {problem.row: problem.where for problem in summary.problems if problem.row is not None}
    summary.unknown = {char: [summary.unknown[char], where[first_rows[char]]] for char in sorted(summary.unknown)}
    # Metadata problems by file line, row problems by row; page problems (neither) keep the scan's order, first.
    summary.problems.sort(key=lambda problem: problem.line or (problem.row + 1 if problem.row is not None else 0))
    return summary


def validate_splits(splits: datasets.DatasetDict, tokenizer, max_target_length: int,
                    check_images: bool = True, scans: dict | None = None) -> ValidationSummary:
    scans = scans or {}
    return ValidationSummary({name: validate_split(dataset, tokenizer, max_target_length, name, check_images,
                                                   scans.get(name))
                              for name, dataset in splits.items()}, max_target_length,
                             CTC_HINT if is_ctc_tokenizer(tokenizer) else EXTEND_HINT)


def write_problems(summary: ValidationSummary, path: str) -> None:
    """Every problem, one a line, for a user to work through (the printed report shows the first few)."""
    with open(path, "w", encoding="utf-8") as handle:
        handle.writelines(f"{problem}\n" for problem in summary.problems)


def report(summary: ValidationSummary, tokenizer_note: str = "", all_problems: bool = False,
           problems_file: str | None = None) -> int:
    """Print the summary (every problem with ``all_problems``, and all written to ``problems_file``); 1 if any
    row is bad, else 0."""
    if problems_file:
        write_problems(summary, problems_file)
    text = summary.format(None if all_problems else SHOWN_PROBLEMS, problems_file)
    print(text + (f"\n{tokenizer_note}" if tokenizer_note else ""))
    if summary.problems:
        print(f"\n{summary.num_bad_rows()} bad row(s). Fix or remove them, or set skip_bad_samples: true.")
        return 1
    print("\nOK: every row is usable.")
    return 0


if __name__ == "__main__":  # the old entry point: say what replaced it rather than exit 0 having checked nothing
    raise SystemExit("`python -m trocr_lail.data.validate` was replaced by `trocr-lail validate --config RECIPE.yaml` "
                     "(or `trocr-lail validate DIR` for a data folder)")
