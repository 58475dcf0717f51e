"""The CTC recognizers are reachable by name like the TrOCR shapes (``config:crnn``, ``config:crnn-2024``,
``config:mobilevit-ctc``) and their saved models load back as their own family."""

import pytest
import torch
from transformers import AutoConfig, MobileViTConfig, MobileViTForImageClassification

from trocr_lail.models.crnn.configuration_crnn import CrnnConfig
from trocr_lail.models.crnn.modeling_crnn import CrnnForCTC
from trocr_lail.models.ctc_families import build_ctc_config, build_ctc_model, is_ctc_shape, load_ctc_model
from trocr_lail.models.mobilevit_ctc.modeling_mobilevit_ctc import MobileVitCtcForCTC
from trocr_lail.models.shapes import shape_of

from test_crnn import small_model
from test_mobilevit_ctc import TINY_BACKBONE, tiny_model


@pytest.mark.parametrize("name, model_class, check", [
    ("config:crnn", CrnnForCTC, lambda c: c.stem_stride == [2, 2] and c.cnn_blocks[-1] == [4, 256]),
    ("config:crnn-2024", CrnnForCTC, lambda c: c.stem_stride == [4, 2] and c.cnn_blocks[-1] == [2, 256]),
    ("config:mobilevit-ctc", MobileVitCtcForCTC, lambda c: c.mobilevit["hidden_sizes"] == [144, 192, 240]),
])
def test_names_build_their_family_with_the_training_charset(name, model_class, check):
    assert is_ctc_shape(name)
    model = build_ctc_model(name, "ab ")
    assert type(model) is model_class and model.config.vocab_size == 4 and check(model.config)


def test_unknown_names_and_misplaced_options_are_refused():
    assert not is_ctc_shape("config:trocr-small") and not is_ctc_shape("crnn")
    names = "config:crnn, config:crnn-2024, config:crnn-quickstart, config:mobilevit-ctc, config:mobilevit-ctc-quickstart"
    with pytest.raises(ValueError, match=names):
        build_ctc_config("config:crnn-2023", "ab")
    with pytest.raises(ValueError, match="CTC recognizer"):  # the TrOCR shape resolver points to the right builder
        shape_of("config:crnn")
    with pytest.raises(ValueError, match="no published backbone"):
        build_ctc_model("config:crnn", "ab", pretrained_backbone="apple/mobilevit-small")


@pytest.mark.parametrize("make", [small_model, tiny_model])
def test_saved_models_load_back_as_their_family(tmp_path, make):
    model = make().eval()
    model.save_pretrained(tmp_path)
    loaded = load_ctc_model(str(tmp_path), use_safetensors=True).eval()
    assert type(loaded) is type(model)
    assert type(AutoConfig.from_pretrained(tmp_path)) is type(model.config)
    x = torch.rand(1, 1, 32, 128)
    with torch.no_grad():
        assert torch.equal(loaded(x).logits, model(x).logits)


def test_mobilevit_name_loads_a_published_backbone(tmp_path):
    published = MobileViTForImageClassification(MobileViTConfig(**TINY_BACKBONE, num_labels=10))
    published.save_pretrained(tmp_path)
    model = build_ctc_model("config:mobilevit-ctc", "ab ", pretrained_backbone=str(tmp_path))
    assert model.config.pretrained_backbone == str(tmp_path) and model.config.mobilevit["hidden_sizes"] == [16] * 3
    assert torch.equal(model.mobilevit.conv_stem.convolution.weight, published.mobilevit.conv_stem.convolution.weight)


def test_a_saved_crnn_keeps_its_preset(tmp_path):
    build_ctc_config("config:crnn-2024", "ab").save_pretrained(tmp_path)
    config = CrnnConfig.from_pretrained(tmp_path)
    assert (config.stem_stride, config.head_dropout, config.shortcut_dropout) == ([4, 2], 0.5, 0.5)


@pytest.mark.parametrize("name", ["config:crnn-quickstart", "config:mobilevit-ctc-quickstart"])
def test_quickstart_presets_read_a_synthetic_line_at_the_full_canvas_height(name, tmp_path):
    """A line of the canvas's aspect (the least of the quickstart's synthetic lines: synthetic_min_aspect) fills the
    32-pixel canvas's height and nearly all its width: at the reference's half height it became 16 x 256 pixels, fewer frames than an 80-character line
    needs, and the quickstarts never learned to read (93.6% and 79.6% CER)."""
    from PIL import Image

    from trocr_lail.models.ctc_processor import build_ctc_processor

    config = build_ctc_config(name, "ab ")
    processor = build_ctc_processor(config)
    processor.save_pretrained(tmp_path)
    reloaded = type(processor.image_processor).from_pretrained(tmp_path)
    aspect = config.image_width // config.image_height
    line = Image.new("RGB", (40 * aspect, 40), "black")  # all ink: the placed box is where the line went
    for image_processor in (processor.image_processor, reloaded):
        ink = image_processor.place(line)[0] < 128
        rows, columns = ink.any(axis=1), ink.any(axis=0)
        assert rows.sum() == config.image_height
        assert columns.sum() >= config.image_width * 0.95
    assert build_ctc_processor(build_ctc_config("config:crnn", "ab ")).image_processor.text_height == 64
