"""PAGE-XML and ALTO pages in (lines cut by polygon or baseline, text, order, bad input named and counted) and out
(``trocr-lail predict PAGES_DIR --output OUT`` changes only the text)."""

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from trocr_lail.cli import main
from trocr_lail.configs import DataArguments
from trocr_lail.data.sources import load_local_split, load_split, metadata_scans
from trocr_lail.data.prepare import skip_report
from trocr_lail.data.validate import validate_splits
from trocr_lail.models.tiny import build_tiny_processor

from conftest import export_tiny
from page_fixtures import GREY, LINES, alto_xml, page_xml, render_page, write_page

READING_ORDER = ["l2", "l3", "l1"]  # page_xml's ReadingOrder puts region r2 first
BOXES = {id_: (min(x for x, _ in p), min(y for _, y in p), max(x for x, _ in p), max(y for _, y in p))
         for id_, _, p in LINES}
TEXTS = {id_: text for id_, text, _ in LINES}


def _split(folder):
    dataset = load_local_split(folder)
    scan = metadata_scans(DataArguments(data_dir=str(folder.parent)), [folder.name])[folder.name]
    return dataset, scan


@pytest.mark.parametrize("flavour", ["page2013-transkribus", "page2019-escriptorium", "alto4-polygons",
                                     "alto2-rectangles"])
def test_lines_read_back_with_text_order_and_crop_geometry(tmp_path, flavour):
    folder = tmp_path / "train"
    if flavour.startswith("page"):
        transkribus = "transkribus" in flavour  # XML in page/, image one folder up
        write_page(folder, xml=page_xml(2013 if "2013" in flavour else 2019),
                   subfolder="page" if transkribus else "")
        (folder / "mets.xml").write_text('<mets:mets xmlns:mets="http://www.loc.gov/METS/"/>')  # exports have one
        order = READING_ORDER
    else:
        write_page(folder, xml=alto_xml(4 if "alto4" in flavour else 2, polygons="polygons" in flavour))
        order = ["l1", "l2", "l3"]
    dataset, scan = _split(folder)
    assert [row[1] for row in scan.rows] == order and not scan.problems
    assert [row[3] for row in scan.rows] == sorted(row[3] for row in scan.rows)  # reading order kept, ascending
    assert dataset["text"] == [TEXTS[id_] for id_ in order]  # the line's index-0 TextEquiv, never its words'
    for (_, id_, page, _), image in zip(scan.rows, dataset["image"]):
        left, top, right, bottom = BOXES[id_]
        assert page == "page.png" and image.size == (right - left, bottom - top)
        pixels = np.asarray(image.convert("L"))
        assert pixels[2, (right - left) // 2] == GREY  # inside the polygon: the page
        if id_ == "l1" and "rectangles" not in flavour:  # the trapezoid's bottom-left corner lies outside it
            assert pixels[-2, 2] == 255
        assert pixels.min() < 100  # the ink of the line was cut, not blank paper


def test_a_line_with_only_a_baseline_gets_a_band_around_it(tmp_path):
    xml = page_xml(2019).replace('<Coords points="20,160 320,160 320,210 20,210"/>', "")
    write_page(tmp_path / "train", xml=xml)
    dataset, scan = _split(tmp_path / "train")
    row = [r[1] for r in scan.rows].index("l3")
    # baseline y=205 from x=20 to 320; height = the median polygon height on the page (50): 37.5 up, 12.5 down,
    # cut to whole pixels that cover the band
    width, height = dataset[row]["image"].size
    assert width == 300 and 50 <= height <= 51


def test_every_bad_page_and_line_is_named_and_counted(tmp_path, capsys):
    folder = tmp_path / "data" / "train"
    write_page(folder, "good")
    write_page(folder, "broken", xml="<PcGts><Page>")
    write_page(folder, "noimage", image=False, xml=page_xml(image="noimage.png"))
    Image.new("L", (10, 10)).save(tmp_path / "data" / "outside.png")
    write_page(folder, "escape", xml=page_xml(image="../outside.png"))
    bad_lines = ('<TextLine id="flat"><Coords points="10,10 50,10 90,10"/><TextEquiv><Unicode>x</Unicode>'
                 '</TextEquiv></TextLine><TextLine id="away"><Coords points="900,900 950,900 950,950"/>'
                 '<TextEquiv><Unicode>x</Unicode></TextEquiv></TextLine>'
                 '<TextLine id="blank"><Coords points="20,215 300,215 300,235 20,235"/></TextLine>')
    write_page(folder, "lines", xml=page_xml(image="lines.png", extra_line=bad_lines))
    (tmp_path / "data" / "elsewhere.xml").write_text(page_xml(image="good.png"))
    (folder / "linked.xml").symlink_to(tmp_path / "data" / "elsewhere.xml")
    dataset, scan = _split(folder)
    assert len(dataset) == 6  # good.xml's and lines.xml's three good lines each
    summary = validate_splits({"train": dataset}, None, 128, scans={"train": scan})
    shown = [str(problem) for problem in summary.problems]
    expected = [("broken.xml", "not well-formed XML"), ("noimage.xml", "not found"),
                ("escape.xml", "outside the data folder"), ("lines.xml line flat", "degenerate polygon"),
                ("lines.xml line away", "outside the page"), ("lines.xml line blank", "no transcription"),
                ("linked.xml", "outside the data folder")]
    for where, what in expected:
        assert any(where in text and what in text for text in shown), (where, shown)
    assert summary.splits["train"].num_bad() == 7 and len(shown) == 7
    assert "7 row(s) before training" in skip_report(summary, {})  # skip_bad_samples counts them like bad rows

    problems = tmp_path / "problems.txt"
    assert main(["validate", str(tmp_path / "data"), "--problems_file", str(problems)]) == 1
    assert sorted(problems.read_text().splitlines()) == sorted(shown)


def test_one_folder_of_pages_is_split_by_page_with_a_fixed_seed(tmp_path):
    for i in range(6):
        write_page(tmp_path, f"p{i}", xml=page_xml(image=f"p{i}.png"))
    args = DataArguments(data_dir=str(tmp_path))
    pages = {}
    for split in ("train", "validation", "test"):
        load_split(args, split)
        scan = metadata_scans(args, [split])[split]
        pages[split] = {row[0] for row in scan.rows}
    assert len(pages["validation"]) == len(pages["test"]) == 1 and len(pages["train"]) == 4
    assert not (pages["train"] & pages["validation"]) and not (pages["train"] & pages["test"])


def _without_text(root):
    """The tree as comparable tuples, with what predict may change taken out: PAGE TextEquiv Unicode text and conf
    of lines, ALTO String/SP children of lines."""
    def strip(element, in_line=False):
        name = element.tag.rsplit("}", 1)[-1] if isinstance(element.tag, str) else str(element.tag)
        attrib = {k: v for k, v in element.attrib.items() if not (in_line and name == "TextEquiv" and k == "conf")}
        text = None if in_line and name == "Unicode" else (element.text or "").strip()
        children = [c for c in element if not (name == "TextLine" and isinstance(c.tag, str) and
                                               c.tag.rsplit("}", 1)[-1] in ("String", "SP"))]
        is_line = name == "TextLine"
        return (element.tag, attrib, text, [strip(c, is_line or (in_line and name == "TextEquiv")) for c in children])
    return strip(root)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return export_tiny(build_tiny_processor(16, 64), tmp_path_factory.mktemp("export"), max_length=6)


@pytest.mark.parametrize("kind", ["page", "alto"])
def test_predict_on_pages_changes_only_the_text_and_never_the_inputs(tmp_path, model, kind, capsys):
    pages = tmp_path / "pages"
    write_page(pages, xml=page_xml(2013) if kind == "page" else alto_xml(4))
    before = (pages / "page.xml").read_bytes()
    out = tmp_path / "out"
    assert main(["predict", str(model), str(pages), "--output", str(out), "--no_progress", "--device", "cpu"]) == 0
    assert (pages / "page.xml").read_bytes() == before
    read = ET.parse(out / "page.xml").getroot()
    original = ET.parse(pages / "page.xml").getroot()
    assert _without_text(read) == _without_text(original)
    lines = [e for e in read.iter() if e.tag.endswith("}TextLine")]
    if kind == "page":  # the index-0 TextEquiv of each line (the one that was read) holds the recognised text
        texts = [[u.text for q in line if q.tag.endswith("}TextEquiv") and q.get("index") in (None, "0")
                  for u in q if u.tag.endswith("}Unicode")][0] for line in lines]
        words = [u.text for w in read.iter() if w.tag.endswith("}Word") for u in w.iter() if u.tag.endswith("}Unicode")]
        assert words == ["WORD"]  # word-level text is not the line's and is kept
        assert "exported by a test" in (out / "page.xml").read_text()  # comments kept
        assert 'xmlns="http' in (out / "page.xml").read_text()  # the default namespace, not ns0:
    else:
        texts = [" ".join(s.get("CONTENT") for s in line if s.tag.endswith("}String")) for line in lines]
    assert len(texts) == 3 and not set(texts) & set(TEXTS.values())  # a random model: not the input's text
    confs = ([float(q.get("conf")) for line in lines for q in line if q.tag.endswith("}TextEquiv")
              and q.get("index") in (None, "0")] if kind == "page" else
             [float(s.get("WC")) for line in lines for s in line if s.tag.endswith("}String")])
    assert confs and all(0 < conf <= 1 for conf in confs)
    write_page(pages, "torn", xml=page_xml(image="torn.png"))
    (pages / "torn.png").write_bytes((pages / "torn.png").read_bytes()[:300])
    assert main(["predict", str(model), str(pages), "--output", str(tmp_path / "again"), "--device", "cpu"]) == 0
    assert (tmp_path / "again" / "page.xml").is_file() and not (tmp_path / "again" / "torn.xml").exists()
    assert "torn.png" in capsys.readouterr().err  # named, and the other pages read
    with pytest.raises(ValueError, match="overwrite"):
        main(["predict", str(model), str(pages), "--output", str(pages), "--debug", "--device", "cpu"])


def test_evaluate_on_pages_reports_cer_per_page_and_overall(tmp_path, model, capsys):
    write_page(tmp_path / "data" / "test", "a", xml=page_xml(2019, image="a.png"))
    write_page(tmp_path / "data" / "test", "b", xml=alto_xml(4, image="b.png"))
    report = tmp_path / "report"
    assert main(["evaluate", str(model), "--data_dir", str(tmp_path / "data"), "--split", "test", "--report_dir",
                 str(report), "--no_progress", "--device", "cpu", "--fit_temperature_on", "test"]) == 0
    metrics = json.loads((report / "metrics.json").read_text())
    # a random model reads no line right: nothing to fit, temperature 1, the same ECE
    assert metrics["confidence_temperature"] == 1.0 and metrics["temperature_fitted_on"] == "test (6 lines)"
    assert metrics["confidence_ece_at_temperature"] == pytest.approx(metrics["confidence_ece"])
    assert {Path(page).name: scores["lines"] for page, scores in metrics["pages"].items()} == {"a.xml": 3, "b.xml": 3}
    assert metrics["lines"] == 6 and all(0 < scores["cer"] for scores in metrics["pages"].values())
    rows = [json.loads(line) for line in (report / "predictions.jsonl").read_text().splitlines()]
    assert [row["line_id"] for row in rows] == READING_ORDER + ["l1", "l2", "l3"]
    assert all(0 < row["confidence"] <= 1 for row in rows) and 0 <= metrics["confidence_ece"] <= 1
    assert "a.xml" in capsys.readouterr().out


def test_lines_are_cut_once_and_cut_again_when_a_page_changes(tmp_path):
    folder = tmp_path / "train"
    write_page(folder)
    first, _ = _split(folder)
    again = load_local_split(folder)
    assert again.cache_files == first.cache_files  # the cached cut lines, not a new cut
    render_page(folder / "page.png", [(id_, text.upper(), poly) for id_, text, poly in LINES])
    changed = load_local_split(folder)
    assert changed.cache_files != first.cache_files


def test_coordinates_follow_an_image_smaller_than_the_xml_says(tmp_path):
    doubled = [(id_, text, [(2 * x, 2 * y) for x, y in poly]) for id_, text, poly in LINES]
    xml = page_xml(2019, lines=doubled).replace('imageWidth="400" imageHeight="240"', 'imageWidth="800" '
                                                                                      'imageHeight="480"')
    write_page(tmp_path / "train", xml=xml)
    dataset, scan = _split(tmp_path / "train")
    for (_, id_, _, _), image in zip(scan.rows, dataset["image"]):
        left, top, right, bottom = BOXES[id_]
        assert image.size == (right - left, bottom - top)


def test_validate_can_list_every_problem(tmp_path, capsys):
    folder = tmp_path / "train"
    for i in range(12):
        write_page(folder, f"p{i:02d}", image=False, xml=page_xml(image=f"p{i:02d}.png"))
    assert main(["validate", str(folder)]) == 1
    out = capsys.readouterr().out
    assert out.count("not found") == 10 and "... and 2 more problems" in out and "--problems_file" in out
    assert main(["validate", str(folder), "--all_problems"]) == 1
    out = capsys.readouterr().out
    assert out.count("not found") == 12 and "more problems" not in out


def test_a_page_image_that_does_not_decode_makes_its_lines_bad_rows(tmp_path):
    folder = tmp_path / "train"
    write_page(folder, "good")
    write_page(folder, "torn", xml=page_xml(image="torn.png"))
    data = (folder / "torn.png").read_bytes()
    (folder / "torn.png").write_bytes(data[: len(data) // 2])  # the header reads, the pixels do not
    dataset, scan = _split(folder)
    summary = validate_splits({"train": dataset}, None, 128, scans={"train": scan})
    bad = [str(problem) for problem in summary.problems]
    assert len(bad) == 3 and all("torn.xml line l" in text and "corrupt" in text for text in bad), bad
    assert summary.splits["train"].num_bad() == 3 and len(summary.drop_bad_rows({"train": dataset})["train"]) == 3


def test_predict_on_line_images_adds_confidence_on_request(tmp_path, model, capsys):
    Image.effect_noise((120, 30), 80).convert("RGB").save(tmp_path / "a.png")
    (tmp_path / "notes.xml").write_text("<notes/>")  # some other XML: still a folder of line images
    assert main(["predict", str(model), str(tmp_path), "--device", "cpu", "--no_progress"]) == 0
    assert len(capsys.readouterr().out.strip().split("\t")) == 2  # unchanged without the flag
    out = tmp_path / "lines.jsonl"
    assert main(["predict", str(model), str(tmp_path / "a.png"), "--confidence", "--output", str(out),
                 "--device", "cpu", "--no_progress"]) == 0
    (row,) = [json.loads(line) for line in out.read_text().splitlines()]
    from trocr_lail.inference.reader import LineReader

    (line,) = LineReader.from_pretrained(model, device="cpu").read_scored([Image.open(tmp_path / "a.png")
                                                                           .convert("RGB")])
    assert row["text"] == line["text"] and row["conf"] == pytest.approx(line["conf"], abs=1e-4)
    assert row["token_conf"] == pytest.approx(line["token_conf"], abs=1e-4) and row["tokens"] == line["tokens"]
    assert row["char_conf"] == pytest.approx(line["char_conf"], abs=1e-4) and len(row["char_conf"]) == len(row["text"])
    assert main(["predict", str(model), str(tmp_path / "a.png"), "--confidence", "--output", str(tmp_path / "l.csv"),
                 "--device", "cpu", "--no_progress"]) == 0
    assert (tmp_path / "l.csv").read_text().splitlines()[0] == "file,text,conf"  # CSV keeps its columns
