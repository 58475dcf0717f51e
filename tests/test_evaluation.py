"""``trocr-lail evaluate``'s predictions.jsonl ties every prediction to its image: the file for local folders,
the row id always (synthetic lines have no file)."""

import json

from trocr_lail.cli import main
from trocr_lail.data.synthetic import generate
from trocr_lail.inference.reader import LineReader
from trocr_lail.models.tiny import build_tiny_processor

from conftest import export_tiny


def test_predictions_name_their_images(tmp_path):
    model = export_tiny(build_tiny_processor(16, 64), tmp_path / "export")
    split = tmp_path / "data" / "test"
    split.mkdir(parents=True)
    rows = list(generate("test", 3, seed=2, min_aspect=4.0))
    for i, row in enumerate(rows):
        row["image"].save(split / f"line{i}.png")
    (split / "metadata.jsonl").write_text("".join(json.dumps({"file_name": f"line{i}.png", "text": row["text"]}) + "\n"
                                                  for i, row in enumerate(rows)))
    for name, flags in (("local", ["--data_dir", str(tmp_path / "data")]),
                        ("synthetic", ["--synthetic", "true", "--synthetic_eval_samples", "2"])):
        report = tmp_path / name
        assert main(["evaluate", str(model), "--report_dir", str(report), "--no_progress", *flags]) == 0
        records = [json.loads(line) for line in (report / "predictions.jsonl").read_text().splitlines()]
        assert [r["row"] for r in records] == list(range(len(records)))
        if name == "local":
            paths = [str(split / f"line{i}.png") for i in range(3)]
            assert [r["image"] for r in records] == paths and [r["text"] for r in records] == [r["text"] for r in rows]
            assert [r["prediction"] for r in records] == LineReader.from_pretrained(model, device="cpu").read(paths)
        else:
            assert [r["image"] for r in records] == [None, None]
