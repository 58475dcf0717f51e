"""Run a shipped recipe for a few optimizer steps on CPU, changing only what a CPU machine without a hub needs:
the model (the recipe's real architecture built from config at slim widths, or tiny), the data (a small local
folder), the LLM (SmolLM2), fp16/bf16 off, small batches. Everything else (report_to, evaluation/save strategy, early stopping, beams, PEFT, LAIL
options) runs as shipped."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from PIL import Image, ImageDraw

LINES = ("A MOVE to stop Mr. Gaitskell", "from nominating any more Labour", "life Peers is to be made",
         "at a meeting of Labour", "M Ps tomorrow.")

SIZE_RE = re.compile(r"microsoft/trocr-(small|base|large)")
RECIPES = Path(__file__).parents[1] / "recipes"


def ends_lines_at_once(model):
    """Random weights that end every line at its first token. A random decoder never writes EOS, so the recipes'
    beam 10 x 200-token evaluation would spend minutes per line on CPU for no extra coverage. The last decoder
    layer's post-layer-norm outputs (nearly) the constant 1, which the EOS row of the output projection favours;
    gradients still reach every weight (scaled by the small norm gain). Beams, lengths and the loop run as shipped."""
    import torch

    decoder = model.decoder
    norm = decoder.model.decoder.layers[-1].final_layer_norm
    with torch.no_grad():
        norm.weight.fill_(1e-3)
        norm.bias.fill_(1.0)
        decoder.output_projection.weight[model.config.decoder.eos_token_id] = 1.0
    return model


def slim_model(name: str):
    """The recipe's real architecture with its widths cut to 4 per attention head: the same encoder class and depth
    (so the recipe's LAIL taps and PEFT target modules are the real ones), decoder depth, vocabulary, tokenizer,
    384x384 input with its 577/578 patch states, and special tokens. What a recipe run proves does not depend on the
    widths, and at full width a trocr-large step costs minutes on CPU; test_real_shapes.py trains the full widths."""
    from transformers import VisionEncoderDecoderModel

    from trocr_lail.models.shapes import build_config

    config = build_config(name)
    encoder, decoder = config.encoder, config.decoder
    encoder.hidden_size = 4 * encoder.num_attention_heads
    encoder.intermediate_size = 2 * encoder.hidden_size
    decoder.d_model = 4 * decoder.decoder_attention_heads
    decoder.decoder_ffn_dim = 2 * decoder.d_model
    decoder.cross_attention_hidden_size = encoder.hidden_size
    return ends_lines_at_once(VisionEncoderDecoderModel(config=config))


def slim_ctc_model(name: str, charset: str, **_):
    """A CTC recipe's preset with its widths cut and everything else kept: input size (so the taps' frame counts and
    the connectors' prefix lengths are the real ones), the CRNN's stem, stage and pool layout, BiLSTM depth and
    shortcut, MobileViT's stages, output stride and attention heads. test_crnn.py / test_mobilevit_ctc.py check the
    full widths."""
    from trocr_lail.models.crnn.configuration_crnn import POOL, CrnnConfig
    from trocr_lail.models.ctc_families import FAMILIES, build_ctc_config
    from trocr_lail.models.mobilevit_ctc.configuration_mobilevit_ctc import backbone_values

    config = build_ctc_config(name, charset)
    if isinstance(config, CrnnConfig):
        config.stem_channels = 4
        config.cnn_blocks = [block if block == POOL else [block[0], 4] for block in config.cnn_blocks]
        config.lstm_hidden_size = 4
    else:
        heads = config.mobilevit["num_attention_heads"]
        config.mobilevit = backbone_values(config.mobilevit, hidden_sizes=[4 * heads] * 3,
                                           neck_hidden_sizes=[4] * 6 + [8])
    return FAMILIES[type(config)](config)


def write_line_folder(root: Path, rows_per_split: dict[str, int]) -> Path:
    """``root/<split>/`` with printed line images and ``metadata.jsonl``: the local-folder layout recipes read."""
    for split, count in rows_per_split.items():
        folder = root / split
        folder.mkdir(parents=True, exist_ok=True)
        rows = []
        for i in range(count):
            text = LINES[i % len(LINES)]
            image = Image.new("L", (12 * len(text) + 20, 40), 255)
            ImageDraw.Draw(image).text((10, 12), text, fill=0)
            image.save(folder / f"{i}.png")
            rows.append({"file_name": f"{i}.png", "text": text})
        (folder / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def is_run_output(name: str) -> bool:
    """A recipe that starts from another recipe's output_dir (adaptation starts from stage 1's)."""
    return name.startswith("outputs/")


def stage1_recipe(output_dir: str, recipes: Path = RECIPES) -> dict:
    """The shipped recipe that writes ``output_dir`` (adaptation starts from its stage 1's)."""
    for path in sorted(recipes.glob("*/*.yaml")):
        recipe = yaml.safe_load(path.read_text())
        if isinstance(recipe, dict) and recipe.get("output_dir") == output_dir:
            return recipe
    raise ValueError(f"no recipe under {recipes} writes {output_dir}, which a recipe starts from")


def save_stage1(stage1: dict, folder: Path) -> Path:
    """The smoke stand-in for a stage-1 recipe's output_dir (model, processor; a TrOCR's CTC head), saved in
    ``folder`` once: a tiny TrOCR with a CTC head for a tiny stage 1, or a CTC recognizer's preset at slim widths
    (its real input size and taps) with the smoke lines' characters as its vocabulary."""
    if (folder / "config.json").is_file():
        return folder
    from trocr_lail.models.ctc import CtcVisionEncoderDecoderModel
    from trocr_lail.models.ctc_families import is_ctc_shape
    from trocr_lail.models.ctc_processor import build_ctc_processor
    from trocr_lail.models.ctc_vocab import charset_from_texts
    from trocr_lail.models.loading import set_special_tokens
    from trocr_lail.models.tiny import build_tiny_model, build_tiny_processor

    name = str(stage1.get("model_name_or_path", "tiny"))
    if name == "tiny":
        processor = build_tiny_processor(image_height=16, image_width=64)
        model = build_tiny_model(processor, encoder_layers=2, encoder_dim=32, decoder_layers=1, decoder_dim=32,
                                 patch_size=(16, 8), max_length=128, dropout=0.0)
        set_special_tokens(model, processor.tokenizer)
        model = CtcVisionEncoderDecoderModel.from_plain(model)
    elif is_ctc_shape(name):
        model = slim_ctc_model(name, charset_from_texts(LINES))
        processor = build_ctc_processor(model.config)
    else:
        raise ValueError(f"no smoke stand-in for a stage 1 of model_name_or_path {name}")
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def smoke_shape(recipe: dict, stage1_dir: Path | None = None) -> str:
    """The model a recipe's smoke run uses: its published shape from config, tiny for tiny recipes, or, for a
    recipe that starts from a run's output_dir, a stand-in for the recipe that writes it (``save_stage1``), saved
    in ``stage1_dir``."""
    name = str(recipe.get("model_name_or_path", "tiny"))
    if name == "tiny" or name.startswith("config:"):
        return name
    if is_run_output(name):
        if stage1_dir is None:
            raise ValueError(f"model_name_or_path {name} is a run's output: pass stage1_dir for its smoke stand-in")
        return str(save_stage1(stage1_recipe(name), stage1_dir))
    match = SIZE_RE.search(name)
    if not match:
        raise ValueError(f"no config shape known for model_name_or_path {name}")
    return f"config:trocr-{match.group(1)}"


def smoke_recipe(recipe_path: Path, data_dir: Path, output_dir: Path, steps: int = 2,
                 stage1_dir: Path | None = None) -> dict:
    """The recipe with the smoke-run substitutions; steps are optimizer steps (one micro-batch each)."""
    recipe = yaml.safe_load(recipe_path.read_text())
    for key in ("dataset_name", "dataset_config_name", "synthetic", "synthetic_train_samples",
                "synthetic_eval_samples", "corpus_file", "max_train_samples", "max_eval_samples",
                "synthetic_target_fonts", "synthetic_stage1_font_dir"):
        recipe.pop(key, None)
    recipe.update(model_name_or_path=smoke_shape(recipe, stage1_dir), data_dir=str(data_dir), output_dir=str(output_dir),
                  fp16=False, bf16=False, use_cpu=True, max_steps=steps, per_device_train_batch_size=1,
                  per_device_eval_batch_size=1, gradient_accumulation_steps=1, push_to_hub=False)
    if recipe.get("lail"):
        recipe.update(lail_llm="smollm2", lail_llm_dtype="float32", lail_llm_4bit=False)
    return recipe
