"""Evaluation report: metrics, the worst lines (image, truth, prediction, line CER) and the most frequent
character confusions, as Markdown and as a self-contained-folder HTML page (images next to it)."""

from __future__ import annotations

import difflib
import html
from collections import Counter
from pathlib import Path

import jiwer

from .metrics import line_cer

EMPTY = "∅"  # the missing side of an insertion or deletion


def visible(text: str) -> str:
    """Spaces shown as ␣ so a confused or dropped space can be seen in a table."""
    return text.replace(" ", "␣") if text else EMPTY


def char_confusions(references: list[str], predictions: list[str]) -> Counter:
    """(truth, predicted) character pairs from the minimal edit alignment that the CER counts: substitutions
    pair characters one to one, deletions pair with "" and insertions come from ""."""
    counts: Counter = Counter()
    pairs = [(r, p) for r, p in zip(references, predictions) if r or p]
    if not pairs:
        return counts
    refs, hyps = zip(*pairs)
    output = jiwer.process_characters(list(refs), list(hyps))
    for ref, hyp, chunks in zip(refs, hyps, output.alignments):
        for chunk in chunks:
            truth = ref[chunk.ref_start_idx : chunk.ref_end_idx]
            pred = hyp[chunk.hyp_start_idx : chunk.hyp_end_idx]
            if chunk.type == "substitute":
                counts.update(zip(truth, pred))
            elif chunk.type == "delete":
                counts.update((c, "") for c in truth)
            elif chunk.type == "insert":
                counts.update(("", c) for c in pred)
    return counts


def worst_lines(references: list[str], predictions: list[str], count: int) -> list[tuple[int, float]]:
    """(index, line CER) of the ``count`` lines with the highest CER, ties by input order."""
    scored = [(i, line_cer(r, p) if r else float(bool(p))) for i, (r, p) in enumerate(zip(references, predictions))]
    return sorted(scored, key=lambda item: (-item[1], item[0]))[:count]


def write_report(report_dir: str | Path, title: str, metrics: dict[str, float | int | str], images: list,
                 references: list[str], predictions: list[str], num_worst: int = 20,
                 num_confusions: int = 20, confidences: list[float] | None = None) -> tuple[Path, Path]:
    """Write ``report.md``, ``report.html`` and ``images/`` (the worst lines, and with ``confidences`` the
    ``num_worst`` least confident ones) into ``report_dir``.

    ``images`` are PIL images or paths, aligned with ``references``; ``metrics`` go into the summary table as
    given (rates between 0 and 1 are shown as percentages)."""
    from ..inference.reader import load_image

    report_dir = Path(report_dir)
    (report_dir / "images").mkdir(parents=True, exist_ok=True)

    def line_rows(kind: str, indices: list[int]) -> list[dict]:
        rows = []
        for rank, index in enumerate(indices, start=1):
            name = f"images/{kind}_{rank:03d}.png"
            load_image(images[index]).save(report_dir / name)
            truth, prediction = references[index], predictions[index]
            rows.append({"rank": rank, "index": index, "image": name, "truth": truth, "prediction": prediction,
                         "cer": line_cer(truth, prediction) if truth else float(bool(prediction)),
                         "confidence": confidences[index] if confidences else None})
        return rows

    sections = [("Worst {} lines (highest line CER)", line_rows("worst", [i for i, _ in worst_lines(
        references, predictions, num_worst)]))]
    if confidences:
        least = sorted(range(len(confidences)), key=lambda i: (confidences[i], i))[:num_worst]
        sections.append(("The {} least confident lines", line_rows("least_confident", least)))
    confusions = char_confusions(references, predictions).most_common(num_confusions)
    markdown = _markdown(title, metrics, sections, confusions)
    page = _html(title, metrics, sections, confusions)
    (report_dir / "report.md").write_text(markdown, encoding="utf-8")
    (report_dir / "report.html").write_text(page, encoding="utf-8")
    return report_dir / "report.md", report_dir / "report.html"


def _format(key: str, value) -> str:
    if isinstance(value, float) and (key.endswith(("cer", "wer")) or key.endswith("rate")):
        return f"{value:.2%}"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("`", "'") if text else EMPTY


def _confidence(row: dict) -> str:
    return "" if row["confidence"] is None else f"{row['confidence']:.3f}"


def _markdown(title, metrics, sections, confusions) -> str:
    lines = [f"# {title}", "", "| metric | value |", "| --- | --- |"]
    lines += [f"| {key} | {_format(key, value)} |" for key, value in metrics.items()]
    for heading, rows in sections:
        lines += ["", f"## {heading.format(len(rows))}", "",
                  "| # | image | truth | prediction | line CER | confidence |", "| --- | --- | --- | --- | --- | --- |"]
        lines += [f"| {r['rank']} | ![line {r['index']}]({r['image']}) | {_md_cell(r['truth'])} | "
                  f"{_md_cell(r['prediction'])} | {r['cer']:.1%} | {_confidence(r)} |" for r in rows]
    lines += ["", "## Most frequent character confusions", "",
              f"Truth → prediction; `␣` is a space, `{EMPTY}` a missing character (deletion / insertion).", "",
              "| truth | prediction | count |", "| --- | --- | --- |"]
    lines += [f"| `{visible(t)}` | `{visible(p)}` | {n} |" for (t, p), n in confusions]
    return "\n".join(lines) + "\n"


def _diff_html(truth: str, prediction: str) -> str:
    """The prediction with characters not in the truth marked, and truth characters it lacks struck through."""
    out = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, truth, prediction, autojunk=False).get_opcodes():
        if op in ("replace", "delete"):
            out.append(f"<del>{html.escape(visible(truth[i1:i2]))}</del>")
        if op in ("replace", "insert"):
            out.append(f"<ins>{html.escape(visible(prediction[j1:j2]))}</ins>")
        if op == "equal":
            out.append(html.escape(prediction[j1:j2]))
    return "".join(out)


STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; max-width: 80em; }
table { border-collapse: collapse; margin-bottom: 2em; }
th, td { border: 1px solid #ccc; padding: 0.35em 0.7em; text-align: left; vertical-align: middle; }
th { background: #f2f2f2; }
td.text { font-family: ui-monospace, monospace; white-space: pre; }
td img { max-height: 64px; max-width: 40em; background: #fff; }
ins { background: #c8f0c8; text-decoration: none; }
del { background: #f6c6c6; }
"""


def _html(title, metrics, sections, confusions) -> str:
    esc = html.escape
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(title)}</title>",
             f"<style>{STYLE}</style></head><body><h1>{esc(title)}</h1>",
             "<table><tr><th>metric</th><th>value</th></tr>"]
    parts += [f"<tr><td>{esc(k)}</td><td>{esc(_format(k, v))}</td></tr>" for k, v in metrics.items()]
    parts.append("</table>")
    for heading, rows in sections:
        parts += [f"<h2>{esc(heading.format(len(rows)))}</h2>",
                  "<p>In the diff, <ins>green</ins> is predicted but not in the truth and <del>red</del> is in the "
                  "truth but missed.</p>",
                  "<table><tr><th>#</th><th>image</th><th>truth</th><th>prediction</th><th>diff</th>"
                  "<th>line CER</th><th>confidence</th></tr>"]
        parts += [f"<tr><td>{r['rank']}</td><td><img src='{r['image']}' alt='line {r['index']}'></td>"
                  f"<td class='text'>{esc(r['truth'])}</td><td class='text'>{esc(r['prediction'])}</td>"
                  f"<td class='text'>{_diff_html(r['truth'], r['prediction'])}</td><td>{r['cer']:.1%}</td>"
                  f"<td>{_confidence(r)}</td></tr>" for r in rows]
        parts.append("</table>")
    parts += ["<h2>Most frequent character confusions</h2>",
              f"<p>␣ is a space, {EMPTY} a missing character (deletion / insertion).</p>",
              "<table><tr><th>truth</th><th>prediction</th><th>count</th></tr>"]
    parts += [f"<tr><td class='text'>{esc(visible(t))}</td><td class='text'>{esc(visible(p))}</td><td>{n}</td></tr>"
              for (t, p), n in confusions]
    parts.append("</table></body></html>\n")
    return "\n".join(parts)
