"""Batched inference speed: trocr-lail's LineReader (what `trocr-lail predict` runs) against transformers 4.57.x
`pipeline("image-to-text")`, same model, same images, same batch size, CPU; checks that the texts are identical.

    python benchmarks/inference_speed.py [--model EXPORT_DIR] [--lines 64] [--batch_size 8] [--rounds 3]

The pipeline exists only on transformers 4.57.x, so both are timed inside that environment (one process,
alternating rounds, best round each: shared machines are noisy); run from a 5.x environment the script prepares
the model and images, re-runs itself with $TROCR_LAIL_TF4_PYTHON, and also times LineReader on 5.x.
Default model: outputs/quickstart-baseline/export if present, else a tiny quickstart-shaped model (random).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import transformers  # noqa: E402
from packaging.version import Version  # noqa: E402

TF4 = Version(transformers.__version__).major < 5


def prepare(args, workdir: Path) -> tuple[Path, Path]:
    model = Path(args.model) if args.model else ROOT / "outputs" / "quickstart-baseline" / "export"
    if not (model / "config.json").is_file():
        from trocr_lail.hub.export import export_model
        from trocr_lail.models.loading import set_special_tokens
        from trocr_lail.models.tiny import build_tiny_model, build_tiny_processor

        processor = build_tiny_processor(32, 256)
        tiny = build_tiny_model(processor, encoder_layers=2, encoder_dim=96, decoder_layers=1, decoder_dim=96,
                                patch_size=(32, 8), max_length=64)
        set_special_tokens(tiny, processor.tokenizer)
        model = export_model(tiny, processor, workdir / "model", max_length=64)
    images = Path(args.images) if args.images else workdir / "images"
    if not args.images:
        from trocr_lail.data.synthetic import generate

        images.mkdir()
        for i, row in enumerate(generate("test", args.lines, seed=1, min_aspect=8.0)):
            row["image"].save(images / f"{i:04d}.png")
    return model, images


def measure(model: Path, images: Path, batch_size: int, rounds: int) -> dict:
    import torch

    from trocr_lail.inference.reader import LineReader

    paths = sorted(str(p) for p in images.glob("*.png"))
    reader = LineReader.from_pretrained(model, device="cpu", batch_size=batch_size)
    runners = {"line_reader": lambda: reader.read(paths, batch_size=batch_size)}
    if TF4:
        from transformers import pipeline
        from transformers.pipelines import ImageToTextPipeline

        # 4.57's own class: exports also name trocr_pipeline.py for this task (that one needs trust_remote_code).
        pipe = pipeline("image-to-text", model=str(model), device="cpu", pipeline_class=ImageToTextPipeline)
        runners["pipeline"] = lambda: [out[0]["generated_text"] for out in pipe(paths, batch_size=batch_size)]
    best, texts = {name: float("inf") for name in runners}, {}
    with torch.inference_mode():
        for name, run in runners.items():  # warm-up: first calls pay for allocation and lazy init
            texts[name] = run()
        for round_ in range(rounds):
            order = list(runners) if round_ % 2 == 0 else list(runners)[::-1]
            for name in order:
                start = time.perf_counter()
                texts[name] = runners[name]()
                best[name] = min(best[name], time.perf_counter() - start)
    result = {"transformers": transformers.__version__, "lines": len(paths), "batch_size": batch_size,
              "torch_threads": torch.get_num_threads(),
              **{f"{name}_lines_per_s": len(paths) / seconds for name, seconds in best.items()}}
    if TF4:
        result["ratio_line_reader_over_pipeline"] = best["pipeline"] / best["line_reader"]
        result["identical_text"] = texts["pipeline"] == texts["line_reader"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="Exported model dir.")
    parser.add_argument("--images", help="Folder of line images (*.png); default: render --lines synthetic lines.")
    parser.add_argument("--lines", type=int, default=64)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="Print only the JSON result (used internally).")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model, images = prepare(args, Path(tmp))
        results = [measure(model, images, args.batch_size, args.rounds)]
        if not TF4:
            python = os.environ.get("TROCR_LAIL_TF4_PYTHON")
            if not python:
                sys.exit("pipeline('image-to-text') needs transformers 4.57.x: set TROCR_LAIL_TF4_PYTHON to that "
                         "venv's python (make venv-tf4), or run this script with it.")
            done = subprocess.run([python, __file__, "--model", str(model), "--images", str(images), "--json",
                                   "--batch_size", str(args.batch_size), "--rounds", str(args.rounds)],
                                  capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
            if done.returncode:
                sys.exit(done.stderr[-3000:])
            results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    if args.json:
        print(json.dumps(results[0]))
        return
    for result in results:
        line = f"transformers {result['transformers']}: LineReader {result['line_reader_lines_per_s']:.2f} lines/s"
        if "pipeline_lines_per_s" in result:
            line += (f", pipeline('image-to-text') {result['pipeline_lines_per_s']:.2f} lines/s, ratio "
                     f"{result['ratio_line_reader_over_pipeline']:.2f}x, identical text: {result['identical_text']}")
        print(line + f" ({result['lines']} lines, batch {result['batch_size']}, {result['torch_threads']} threads)")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
