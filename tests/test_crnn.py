"""The CNN-BiLSTM-CTC recognizer against HTR best practices (../shared/reference/ctc-recognizers.md and the code
``georgeretsi/HTR-best-practices`` @256dd39 / @d776871): layer shapes and parameter counts at the real 128x1024
shape, the loss's reduction, the training-only shortcut, taps, and the save/load round trip."""

import pytest
import torch
import torch.nn.functional as F
from safetensors import safe_open

from trocr_lail.models.crnn.configuration_crnn import PRESETS, CrnnConfig
from trocr_lail.models.crnn.modeling_crnn import CrnnForCTC
from trocr_lail.models.ctc_decoding import ctc_greedy_decode
from trocr_lail.models.ctc_vocab import charset_from_texts

# IAM's line charset: 78 characters plus space (the reference's 79 classes + blank = 80).
IAM_CHARSET = charset_from_texts(['!"#&\'()*+,-./0123456789:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz'])
SMALL = dict(charset="abc ", stem_channels=4, cnn_blocks=[[1, 8], "M", [1, 16]], lstm_hidden_size=8)


def small_model(seed=0, **overrides) -> CrnnForCTC:
    torch.manual_seed(seed)
    return CrnnForCTC(CrnnConfig(**{**SMALL, **overrides}))


def count(module) -> int:
    return sum(p.numel() for p in module.parameters())


def expected_cnn_parameters(blocks) -> int:
    """Hand arithmetic for the reference's CNN: stem Conv2d(1, 32, 7) with bias, then BasicBlocks (two bias-free
    3x3 convolutions, two batch norms, a 1x1 projection + batch norm when the width changes)."""
    total, channels = 7 * 7 * 32 + 32, 32
    for block in blocks:
        if block == "M":
            continue
        for _ in range(block[0]):
            width = block[1]
            total += 9 * channels * width + 9 * width * width + 4 * width
            if channels != width:
                total += channels * width + 2 * width
            channels = width
    return total


def expected_lstm_parameters(width=256, hidden=256, layers=3) -> int:
    per_direction = [4 * hidden * (inputs + hidden) + 8 * hidden for inputs in [width] + [2 * hidden] * (layers - 1)]
    return 2 * sum(per_direction)


@pytest.mark.parametrize("preset, blocks, total_m, height", [
    # paper era: ~10.0M (CNN 5.6M [est], LSTM 4.2M), 128x1024 -> 16x128 before the column pool
    ("crnn", [[2, 64], "M", [4, 128], "M", [4, 256]], 10.0, 16),
    # 2024 rework: ~7.4M, the stem's height stride 4 halves the map's height
    ("crnn-2024", [[2, 64], "M", [3, 128], "M", [2, 256]], 7.4, 8),
])
def test_layer_shapes_and_parameter_counts_match_the_reference(preset, blocks, total_m, height):
    config = CrnnConfig(charset=IAM_CHARSET, **PRESETS[preset])
    assert config.vocab_size == 80 and config.cnn_blocks == blocks
    model = CrnnForCTC(config).eval()
    classes = config.vocab_size
    assert count(model.cnn) == expected_cnn_parameters(blocks)
    assert count(model.lstm) == expected_lstm_parameters() == 4_206_592  # the reference's "LSTM 4.2M"
    assert count(model.head) == 512 * classes + classes
    assert count(model.shortcut) == 256 * 3 * classes + classes  # Conv2d(256, classes, (1, 3))
    # The reference rounds to 0.1M, so its count is met within 0.05M (0.5% for the paper configuration).
    assert count(model) == pytest.approx(total_m * 1e6, abs=0.05e6)

    with torch.no_grad():
        features = model.cnn(torch.rand(1, 1, 128, 1024))
        outputs = model(torch.rand(1, 1, 128, 1024), output_hidden_states=True)
    assert features.shape == (1, 256, height, 128)
    assert outputs.logits.shape == (1, 128, classes)  # T = 1024 / 8 frames, batch-first
    assert [tuple(h.shape) for h in outputs.hidden_states] == [(1, 128, 256)] + [(1, 128, 512)] * 3


def test_paper_configuration_is_the_default():
    assert CrnnConfig().to_dict()["cnn_blocks"] == [[2, 64], "M", [4, 128], "M", [4, 256]]
    config = CrnnConfig()
    assert (config.stem_stride, config.shortcut_weight, config.lstm_layers, config.lstm_dropout,
            config.head_dropout, config.shortcut_dropout) == ([2, 2], 0.1, 3, 0.2, 0.2, 0.0)
    assert config.width_stride == 8 and CrnnConfig(**PRESETS["crnn-2024"]).width_stride == 8


def test_taps_are_the_column_pool_and_each_bilstm_layer():
    model = small_model(lstm_layers=2).eval()
    x = torch.rand(2, 1, 16, 40)
    with torch.no_grad():
        outputs = model(x, output_hidden_states=True)
        pooled = model.cnn(x).amax(dim=2).transpose(1, 2)
        first = model.lstm[0](pooled)[0]
    assert len(outputs.hidden_states) == 3
    torch.testing.assert_close(outputs.hidden_states[0], pooled)
    torch.testing.assert_close(outputs.hidden_states[1], first)
    assert outputs.hidden_states[2].shape == (2, 10, 16)  # 40 columns / 4, 2 x hidden 8
    assert model(x).hidden_states is None


def labelled_batch():
    # Lines of different lengths, padded with -100: a mean-reduced loss would weigh them differently.
    labels = torch.tensor([[1, 2, 2, 3], [4, 1, -100, -100], [3, -100, -100, -100]])
    return torch.rand(3, 1, 16, 48), labels


def test_loss_is_the_ctc_sum_over_the_batch_divided_by_its_lines():
    model = small_model().eval()
    x, labels = labelled_batch()
    outputs = model(x, labels=labels)
    log_probs = outputs.logits.log_softmax(-1).transpose(0, 1)
    targets = torch.tensor([1, 2, 2, 3, 4, 1, 3])
    frames = torch.full((3,), outputs.logits.shape[1], dtype=torch.long)
    expected = F.ctc_loss(log_probs, targets, frames, torch.tensor([4, 2, 1]), blank=0, reduction="sum",
                          zero_infinity=True) / 3
    torch.testing.assert_close(outputs.loss, expected)
    assert not torch.allclose(outputs.loss, F.ctc_loss(log_probs, targets, frames, torch.tensor([4, 2, 1]),
                                                       blank=0, reduction="mean"))
    assert outputs.aux_loss is None and outputs.aux_logits is None  # eval mode: no shortcut


def test_shortcut_changes_the_training_loss_but_not_predictions_or_inference_weights():
    with_shortcut = small_model(lstm_dropout=0.0, head_dropout=0.0)
    without = CrnnForCTC(CrnnConfig(**{**SMALL, "shortcut_weight": 0.0, "lstm_dropout": 0.0, "head_dropout": 0.0}))
    keys = set(with_shortcut.state_dict())
    assert {k for k in keys if not k.startswith("shortcut.")} == set(without.state_dict())
    assert any(k.startswith("shortcut.") for k in keys)
    without.load_state_dict(with_shortcut.state_dict(), strict=False)
    x, labels = labelled_batch()

    train_a, train_b = with_shortcut.train()(x, labels=labels), without.train()(x, labels=labels)
    torch.testing.assert_close(train_a.logits, train_b.logits)
    torch.testing.assert_close(train_a.ctc_loss, train_b.loss)
    assert train_a.aux_loss > 0
    torch.testing.assert_close(train_a.loss, train_b.loss + 0.1 * train_a.aux_loss)
    assert not torch.allclose(train_a.loss, train_b.loss)
    train_a.loss.backward()
    assert with_shortcut.shortcut[1].weight.grad.abs().sum() > 0  # it is trained

    with torch.no_grad():
        eval_a, eval_b = with_shortcut.eval()(x, labels=labels), without.eval()(x, labels=labels)
    torch.testing.assert_close(eval_a.logits, eval_b.logits)
    torch.testing.assert_close(eval_a.loss, eval_b.loss)
    assert ctc_greedy_decode(eval_a.logits, 0) == ctc_greedy_decode(eval_b.logits, 0)


def test_drop_shortcut_saves_exactly_the_inference_model(tmp_path):
    model = small_model()
    x, labels = labelled_batch()
    model.train()(x, labels=labels)  # batch-norm statistics move away from their initial values
    model.eval()
    with torch.no_grad():
        expected = model(x).logits
    model.drop_shortcut()
    model.save_pretrained(tmp_path)
    with safe_open(tmp_path / "model.safetensors", "pt") as weights:
        saved = set(weights.keys())
    assert saved and not any(k.startswith("shortcut.") for k in saved)
    loaded = CrnnForCTC.from_pretrained(tmp_path, use_safetensors=True).eval()
    assert loaded.shortcut is None and loaded.config.shortcut_weight == 0.0
    assert saved == set(loaded.state_dict())
    with torch.no_grad():
        assert torch.equal(loaded(x).logits, expected)


def test_save_load_round_trip_gives_identical_logits(tmp_path):
    model = small_model(**PRESETS["crnn-2024"] | {"cnn_blocks": [[1, 8], "M", [1, 16]]})
    x, labels = labelled_batch()
    model.train()(x, labels=labels)
    model.eval()
    model.save_pretrained(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors"]
    loaded = CrnnForCTC.from_pretrained(tmp_path, use_safetensors=True).eval()
    for key, value in model.state_dict().items():  # batch-norm running statistics included
        assert torch.equal(loaded.state_dict()[key], value), key
    with torch.no_grad():
        assert torch.equal(loaded(x).logits, model(x).logits)
    def settings(config):
        return {k: v for k, v in config.to_dict().items() if k not in ("_name_or_path", "transformers_version")}

    assert settings(loaded.config) == settings(model.config)
    assert (loaded.config.stem_stride, loaded.config.head_dropout, loaded.config.charset) == ([4, 2], 0.5, "abc ")


def test_an_empty_charset_is_refused():
    with pytest.raises(ValueError, match="charset"):
        CrnnForCTC(CrnnConfig())
