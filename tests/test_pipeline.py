"""The ``image-to-text`` pipeline that every export carries (``trocr_pipeline.py``, named under
``custom_pipelines`` in ``config.json``) on transformers 5.x: loaded as remote code from an export folder and
from a staged upload folder, it reads the same text as ``LineReader``; ``import trocr_lail`` registers it locally."""

import ast
import json
from pathlib import Path

import pytest
import torch
from PIL import Image
from transformers import pipeline

from trocr_lail.cli import main
from trocr_lail.data.synthetic import generate
from trocr_lail.hub.export import export_model
from trocr_lail.hub.push import prepare_upload
from trocr_lail.inference import pipeline as line_pipeline
from trocr_lail.inference.reader import LineReader
from trocr_lail.models.tiny import build_tiny_processor

from conftest import make_tiny_model, run_tf4_pipeline


def image_sensitive_export(out_dir: Path, processor=None, model=None, max_length: int = 10) -> Path:
    """A tiny random model whose text depends on the image: at the default init it reads every line alike, which
    would let a pipeline that ignored its input pass an equality test."""
    if model is None:
        processor = build_tiny_processor(16, 64)
        model = make_tiny_model(processor, seed=0, dropout=0.0)
    with torch.no_grad():
        for name, param in model.encoder.named_parameters():
            if name.endswith("weight") and param.dim() > 1:  # matrices, not position embeddings
                param.mul_(4)
    return export_model(model, processor, out_dir, max_length=max_length)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    run = tmp_path_factory.mktemp("run")
    export = image_sensitive_export(run / "export")
    upload = prepare_upload(run, "someone/tiny-trocr", license_id="mit")
    return {"export": export, "upload": upload}


@pytest.fixture(scope="module")
def paths(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lines")
    out = []
    for i, row in enumerate(generate("test", 6, seed=4, min_aspect=4.0)):
        out.append(folder / f"{i}.png")
        row["image"].save(out[-1])
    return out


def test_export_carries_the_pipeline_file_and_registers_it(folders):
    for folder in folders.values():
        config = json.loads((folder / "config.json").read_text())
        assert config["custom_pipelines"] == {"image-to-text": {
            "impl": "trocr_pipeline.TrOCRLinePipeline", "pt": ["VisionEncoderDecoderModel"], "type": "image"}}
        assert (folder / "trocr_pipeline.py").read_bytes() == Path(line_pipeline.__file__).read_bytes()
    tree = ast.parse(Path(line_pipeline.__file__).read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    # never trocr_lail: Hub users do not have it (torch comes with transformers)
    assert imported == {"__future__", "math", "os", "PIL", "torch", "transformers"}


@pytest.mark.parametrize("name", ["export", "upload"])
def test_remote_code_pipeline_reads_like_line_reader(folders, paths, name):
    folder = folders[name]
    reader = pipeline("image-to-text", model=str(folder), trust_remote_code=True, device="cpu")
    assert type(reader).__name__ == "TrOCRLinePipeline" and type(reader).__module__.startswith("transformers_modules")
    expected = LineReader.from_pretrained(folder, device="cpu").read(paths)
    assert len(set(expected)) >= 4  # the texts differ by image, so equality below means something
    assert reader(str(paths[1])) == [{"generated_text": expected[1]}]
    assert reader(paths[2]) == [{"generated_text": expected[2]}]  # a pathlib.Path
    with Image.open(paths[3]) as image:
        assert reader(image) == [{"generated_text": expected[3]}]
    for batch_size in (1, 4):
        assert reader([str(p) for p in paths], batch_size=batch_size) == [[{"generated_text": t}] for t in expected]


@pytest.mark.parametrize("options", [[], ["--num_beams", "3", "--confidence_temperature", "1.5"]])
def test_pipeline_confidences_equal_predicts(folders, paths, tmp_path, options):
    out = tmp_path / "lines.jsonl"
    assert main(["predict", str(folders["export"]), *map(str, paths), "--confidence", "--output", str(out),
                 "--device", "cpu", "--no_progress", *options]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len({row["conf"] for row in rows}) >= 4  # the lines differ, so equality below means something
    kwargs = {"num_beams": 3, "confidence_temperature": 1.5} if options else {}
    reader = pipeline("image-to-text", model=str(folders["export"]), trust_remote_code=True, device="cpu")
    for batch_size in (1, 4):
        got = [out[0] for out in reader([str(p) for p in paths], batch_size=batch_size, return_confidence=True,
                                        **kwargs)]
        assert_same_scores(got, rows)


@pytest.mark.parametrize("options", [[], ["--num_beams", "3", "--confidence_temperature", "1.5"]])
def test_pipeline_confidences_equal_predicts_on_transformers_4_57(folders, paths, tmp_path, options):
    out = tmp_path / "lines.jsonl"
    assert main(["predict", str(folders["export"]), *map(str, paths), "--confidence", "--output", str(out),
                 "--device", "cpu", "--no_progress", *options]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert_same_scores(run_tf4_pipeline(folders["export"], paths, batch_size=4, options=["--confidence", *options]),
                       rows)


def assert_same_scores(records: list[dict], rows: list[dict]) -> None:
    """Pipeline records against predict's JSONL rows (rounded to 4 decimals)."""
    for record, row in zip(records, rows, strict=True):
        assert record["generated_text"] == row["text"] and record["tokens"] == row["tokens"]
        for key in ("conf", "token_conf", "char_conf"):
            assert record[key] == pytest.approx(row[key], abs=6e-5), key


def test_generation_arguments_override_the_config(folders, paths):
    reader = pipeline("image-to-text", model=str(folders["export"]), trust_remote_code=True, device="cpu")
    line_reader = LineReader.from_pretrained(folders["export"], device="cpu")
    got = [out[0]["generated_text"] for out in reader([str(p) for p in paths], num_beams=3, max_new_tokens=4)]
    assert got == line_reader.read(paths, num_beams=3, max_new_tokens=4)
    assert all(len(text) <= 4 for text in got) and got != line_reader.read(paths)
    with pytest.raises(TypeError, match="unknown arguments.*colour"):
        reader(str(paths[0]), colour="red")


def test_transparent_lines_are_read_on_white_paper(folders, paths, tmp_path):
    reader = pipeline("image-to-text", model=str(folders["export"]), trust_remote_code=True, device="cpu")
    with Image.open(paths[0]) as image:
        ink = image.convert("L")
    rgba = Image.new("RGBA", ink.size, (0, 0, 0, 0))  # transparent black paper: convert("RGB") makes it black
    rgba.putalpha(Image.eval(ink, lambda v: 255 - v))
    rgba.save(tmp_path / "t.png")
    expected = LineReader.from_pretrained(folders["export"], device="cpu").read([tmp_path / "t.png"])
    assert reader(str(tmp_path / "t.png")) == [{"generated_text": expected[0]}]
    assert reader(rgba.convert("RGB"))[0]["generated_text"] != expected[0]  # the black-paper reading differs


def test_local_registration_needs_no_remote_code(folders, paths):
    reader = pipeline("trocr-image-to-text", model=str(folders["export"]), device="cpu")
    assert type(reader) is line_pipeline.TrOCRLinePipeline  # trocr_lail's own class, not the folder's copy
    expected = LineReader.from_pretrained(folders["export"], device="cpu").read(paths)
    assert [out[0]["generated_text"] for out in reader([str(p) for p in paths], batch_size=3)] == expected
    with pytest.raises(ValueError, match="trust_remote_code"):  # transformers never runs the folder's code unasked
        pipeline("image-to-text", model=str(folders["export"]), device="cpu")


def test_image_modes_convert_as_training_decodes_them():
    from trocr_lail.data.images import to_rgb

    deep = Image.new("I;16", (4, 2))
    for x, value in enumerate((1000, 30000, 65535)):
        deep.putpixel((x, 0), value)
    ink = Image.new("LA", (4, 2), (0, 0))
    ink.putpixel((1, 1), (0, 255))
    for image in (deep, deep.convert("I"), ink, Image.new("CMYK", (4, 2)), Image.new("1", (4, 2))):
        assert line_pipeline.open_line_image(image).tobytes() == to_rgb(image).tobytes(), image.mode
    assert line_pipeline.open_line_image(deep).getpixel((1, 0)) == (117, 117, 117)  # 30000 / 257, rounded
