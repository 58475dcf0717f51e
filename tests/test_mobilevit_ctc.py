"""MobileViT-CTC: the -small architecture at output stride 8 (more frames than characters), its taps, the loss's
reduction, grey input, the save/load round trip, and loading a published backbone (a Hub-style checkpoint saved
here, since tests never reach the Hub)."""

import pytest
import torch
import torch.nn.functional as F
from transformers import MobileViTConfig, MobileViTForImageClassification, MobileViTModel

from trocr_lail.models.mobilevit_ctc.configuration_mobilevit_ctc import MobileVitCtcConfig, backbone_values
from trocr_lail.models.mobilevit_ctc.modeling_mobilevit_ctc import MobileVitCtcForCTC

from test_crnn import IAM_CHARSET

TINY_BACKBONE = dict(hidden_sizes=[16, 16, 16], neck_hidden_sizes=[8, 8, 8, 8, 8, 8, 16], num_attention_heads=2,
                     expand_ratio=2.0, output_stride=8)


def tiny_model(seed=0, **overrides) -> MobileVitCtcForCTC:
    torch.manual_seed(seed)
    backbone = backbone_values(MobileViTConfig(**TINY_BACKBONE))
    return MobileVitCtcForCTC(MobileVitCtcConfig(charset="abc ", mobilevit=backbone, **overrides))


def count(module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_small_architecture_shapes_parameters_and_taps():
    config = MobileVitCtcConfig(charset=IAM_CHARSET)
    backbone = config.backbone_config()
    assert (backbone.hidden_sizes, backbone.neck_hidden_sizes, backbone.output_stride) == \
        ([144, 192, 240], [16, 32, 64, 96, 128, 160, 640], 8)
    assert config.image_width // config.width_stride == 128  # frames of a 1024-pixel line: more than characters
    model = MobileVitCtcForCTC(config).eval()
    # apple/mobilevit-small has 5.6M parameters with its 1000-class ImageNet classifier (640 -> 1000).
    assert count(model.mobilevit) + 640 * 1000 + 1000 == pytest.approx(5.6e6, abs=0.05e6)
    assert count(model) == count(model.mobilevit) + 640 * 80 + 80
    with torch.no_grad():  # a quarter of the 64x1024 line keeps the test short: 256 / 8 = 32 frames
        outputs = model(torch.rand(1, 1, 64, 256), output_hidden_states=True)
    assert outputs.logits.shape == (1, 32, 80)
    assert [tuple(h.shape) for h in outputs.hidden_states] == [
        (1, 128, 32), (1, 64, 64), (1, 32, 96), (1, 32, 128), (1, 32, 160), (1, 32, 640)]


def test_taps_are_stage_maps_pooled_over_height_and_the_head_input():
    model = tiny_model().eval()
    x = torch.rand(2, 3, 32, 128)
    with torch.no_grad():
        outputs = model(x, output_hidden_states=True)
        encoded = model.mobilevit(x, output_hidden_states=True)
    for tap, stage in zip(outputs.hidden_states, encoded.hidden_states):
        torch.testing.assert_close(tap, stage.amax(dim=2).transpose(1, 2))
    torch.testing.assert_close(outputs.logits, model.head(outputs.hidden_states[-1]))
    assert outputs.logits.shape == (2, 16, 5) and model(x).hidden_states is None


def test_grey_input_is_read_as_three_equal_channels():
    model = tiny_model().eval()
    grey = torch.rand(2, 1, 32, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(grey).logits, model(grey.repeat(1, 3, 1, 1)).logits)


def test_loss_is_the_ctc_sum_over_the_batch_divided_by_its_lines():
    model = tiny_model().eval()
    labels = torch.tensor([[1, 2, 2, 3], [4, -100, -100, -100]])
    outputs = model(torch.rand(2, 1, 32, 128), labels=labels)
    log_probs = outputs.logits.log_softmax(-1).transpose(0, 1)
    expected = F.ctc_loss(log_probs, torch.tensor([1, 2, 2, 3, 4]), torch.tensor([16, 16]), torch.tensor([4, 1]),
                          blank=0, reduction="sum", zero_infinity=True) / 2
    torch.testing.assert_close(outputs.loss, expected)
    assert outputs.aux_loss is None  # no auxiliary head: training loss is the same CTC loss
    training = model.train()(torch.rand(2, 1, 32, 128), labels=labels)
    assert training.aux_logits is None and torch.equal(training.loss, training.ctc_loss)


def test_save_load_round_trip_gives_identical_logits(tmp_path):
    model = tiny_model()
    x = torch.rand(2, 1, 32, 128)
    model.train()(x)  # batch-norm statistics move away from their initial values
    model.eval()
    model.save_pretrained(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors"]
    loaded = MobileVitCtcForCTC.from_pretrained(tmp_path, use_safetensors=True).eval()
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    with torch.no_grad():
        assert torch.equal(loaded(x).logits, model(x).logits)
    assert loaded.config.mobilevit == model.config.mobilevit and loaded.config.charset == "abc "


@pytest.mark.parametrize("published_class", [MobileViTModel, MobileViTForImageClassification])
def test_from_backbone_loads_published_weights_at_output_stride_8(tmp_path, published_class):
    torch.manual_seed(1)
    # apple/mobilevit-* are classification checkpoints with 1000 labels and output stride 32.
    published = published_class(MobileViTConfig(**{**TINY_BACKBONE, "output_stride": 32}, num_labels=1000))
    published.save_pretrained(tmp_path / "published")
    model = MobileVitCtcForCTC.from_backbone(str(tmp_path / "published"), "abc ", use_safetensors=True)
    source = published if published_class is MobileViTModel else published.mobilevit
    for key, value in source.state_dict().items():
        assert torch.equal(model.mobilevit.state_dict()[key], value), key
    assert model.config.mobilevit["output_stride"] == 8 and "id2label" not in model.config.mobilevit
    assert model.config.pretrained_backbone == str(tmp_path / "published")
    model.save_pretrained(tmp_path / "recognizer")
    with torch.no_grad():
        x = torch.rand(1, 1, 32, 128)
        reloaded = MobileVitCtcForCTC.from_pretrained(tmp_path / "recognizer").eval()
        assert torch.equal(reloaded(x).logits, model.eval()(x).logits) and reloaded(x).logits.shape[1] == 16


def test_norms_start_as_the_identity_and_trained_ones_survive_a_reload(tmp_path):
    """From scratch every norm's gain is 1 (MobileViT's own init draws batch-norm gains around 0, and the features
    then vanish on the way up); a saved model's gains come back as they were trained, not re-initialised."""
    model = tiny_model()
    norms = [m for m in model.modules() if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.LayerNorm))]
    assert norms and all(torch.equal(m.weight, torch.ones_like(m.weight)) for m in norms)
    assert all(torch.equal(m.bias, torch.zeros_like(m.bias)) for m in norms)
    with torch.no_grad():
        assert model.train()(torch.rand(2, 1, 32, 128)).logits.std() > 1e-3  # batch statistics normalise
        for m in norms:
            m.weight.fill_(0.5)
    model.save_pretrained(tmp_path)
    loaded = MobileVitCtcForCTC.from_pretrained(tmp_path, use_safetensors=True)
    assert all(torch.equal(m.weight, torch.full_like(m.weight, 0.5)) for m in loaded.modules()
               if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.LayerNorm)))
