"""Reading whole pages: cut each PAGE-XML / ALTO line from its page, read the lines with a :class:`LineReader`,
and write a copy of every page file with the recognised text (``trocr-lail predict PAGES_DIR --output OUT_DIR``).

Every line with usable geometry is read, with or without a transcription in the input. The copies keep the
input's folder layout under the output folder; an input file is never written (an output folder that would
overwrite one is refused). Lines that cannot be cut, and page files that cannot be read, are reported and left
as they are (unreadable page files are not copied). Each line's confidence (``LineReader.read_scored``: the
geometric mean of its tokens' probabilities) goes into PAGE ``conf`` and ALTO ``WC`` (the line's, on every word).
Token and character confidences are not written: PAGE ``Word`` and ``Glyph`` need coordinates, which a line
recogniser does not give.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..data.images import PAGE_MAX_PIXELS, BadImage, load_rgb
from ..data.pages.lines import cut_line, scan_pages, writer


@dataclass
class PagesResult:
    written: list[Path] = field(default_factory=list)
    lines: int = 0
    problems: list[tuple[str, str | None, str]] = field(default_factory=list)  # (file, line id, message)


def output_paths(folder: Path, out_dir: Path, files: list[Path]) -> dict[Path, Path]:
    """Where each page file's copy goes; ValueError if any would overwrite an input."""
    targets = {path: out_dir / path.relative_to(folder) for path in files}
    inputs = {path.resolve() for path in files}
    clashes = [str(target) for target in targets.values() if target.resolve() in inputs]
    if clashes:
        raise ValueError(f"--output {out_dir} would overwrite the input page file(s) {clashes[:3]}; choose another "
                         "folder")
    return targets


def read_pages(reader, folder: Path, out_dir: Path, progress: bool = False, confidence_temperature: float = 1.0,
               **generate_kwargs) -> PagesResult:
    """Read every line of the page files under ``folder`` and write their copies under ``out_dir``."""
    folder, out_dir = Path(folder), Path(out_dir)
    generate_kwargs = {k: v for k, v in generate_kwargs.items() if v is not None}
    scan = scan_pages(folder)
    result = PagesResult(problems=list(scan.problems))
    targets = output_paths(folder, out_dir, [page.page.xml for page in scan.pages])
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=sum(len(page.lines) for page in scan.pages), unit="line", desc="reading pages")
    for page in scan.pages:
        try:
            image = load_rgb(str(page.image), max_pixels=PAGE_MAX_PIXELS)
        except BadImage as err:
            result.problems.append((str(page.page.xml), None, str(err)))
            continue
        cuts = [cut_line(image, polygon) for _, polygon in page.lines]
        texts = []
        for start in range(0, len(cuts), reader.batch_size):
            texts += reader.read_scored(cuts[start : start + reader.batch_size],
                                        confidence_temperature=confidence_temperature, **generate_kwargs)
            if bar is not None:
                bar.update(len(cuts[start : start + reader.batch_size]))
        recognised = {line.id: (scored["text"], scored["conf"]) for (line, _), scored in zip(page.lines, texts)}
        writer(page.page)(page.page.xml, recognised, targets[page.page.xml])
        result.written.append(targets[page.page.xml])
        result.lines += len(texts)
    if bar is not None:
        bar.close()
    return result
