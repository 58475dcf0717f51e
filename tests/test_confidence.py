"""Line confidence against correctness: expected calibration error and the CER of the most / least confident
tenths, on hand-made lines whose answers are worked out here; token and character confidences from generation's
scores (greedy and beams), with a temperature and its fit."""

from types import SimpleNamespace

import pytest
import torch

from trocr_lail.evaluation.confidence import (TEMPERATURES, calibration, expected_calibration_error,
                                              fit_temperature)
from trocr_lail.inference.pipeline import chosen_token_logprobs, describe_line, line_confidence
from trocr_lail.models.tiny import build_char_tokenizer


def test_expected_calibration_error_by_hand():
    # bin 0.9: two lines, one right (share 0.5, mean conf 0.9); bin 0.2: one wrong line (share 0, conf 0.2)
    assert expected_calibration_error([0.9, 0.9, 0.2], [True, False, False]) == pytest.approx(
        2 / 3 * 0.4 + 1 / 3 * 0.2)
    assert expected_calibration_error([1.0, 0.0], [True, False]) == 0  # confidence 1.0 falls in the top bin


def test_confident_tenths_find_the_right_and_the_wrong_lines():
    references = [f"line {i}" for i in range(20)]
    predictions = list(references)
    predictions[0] = predictions[1] = "xxxx xx"  # the two least confident lines are the wrong ones
    confidences = [0.1, 0.2] + [0.9] * 18
    metrics = calibration(confidences, references, predictions)
    assert metrics["least_confident_tenth_cer"] > 0.5 and metrics["most_confident_tenth_cer"] == 0
    assert metrics["mean_confidence"] == pytest.approx(sum(confidences) / 20)


def test_report_lists_the_least_confident_lines(tmp_path):
    from PIL import Image

    from trocr_lail.evaluation.report import write_report

    images = [Image.new("L", (40, 10), 255 - i * 50) for i in range(3)]
    md, page = write_report(tmp_path, "Eval", {"cer": 0.25}, images, ["a", "b", "c"], ["a", "x", "c"], num_worst=2,
                            confidences=[0.9, 0.5, 0.1])
    text = md.read_text()
    least = text.split("## The 2 least confident lines")[1].split("##")[0]
    assert least.index("images/least_confident_001.png") < least.index("images/least_confident_002.png")
    assert "| 0.100 |" in least.splitlines()[4] and "| 0.500 |" in least.splitlines()[5]  # row 3, then row 2
    assert (tmp_path / "images" / "least_confident_002.png").is_file() and "least_confident_001" in page.read_text()
    plain = write_report(tmp_path / "plain", "Eval", {"cer": 0.25}, images, ["a", "b", "c"], ["a", "x", "c"])[0]
    assert "least confident" not in plain.read_text()  # no confidences, no section


# --- where the confidences come from: the generation scores -------------------------------------------------
EOS = 3


def greedy_output(rows: list[list[float]], tokens: list[int]) -> SimpleNamespace:
    """What generate(output_scores=True, return_dict_in_generate=True) returns for one greedy line: the decoder
    start token, then one chosen token per step with the score row it was chosen from."""
    return SimpleNamespace(sequences=torch.tensor([[0, *tokens]]), scores=tuple(torch.tensor([r]) for r in rows))


def test_confidence_is_monotone_in_the_chosen_tokens_scores():
    rows = [[0.0, 2.0, 1.0, 0.5], [0.0, 1.0, 2.0, 0.5], [0.0, 0.0, 0.0, 3.0], [9.0, 0.0, 0.0, 0.0]]
    tokens = [1, 2, 3, 0]
    _, logprobs, keep = chosen_token_logprobs(greedy_output(rows, tokens), EOS)
    assert keep.tolist() == [[True, True, True, False]]  # up to and including EOS, not the padding after it
    expected = [torch.tensor(r).softmax(0)[t].item() for r, t in zip(rows[:3], tokens)]
    line = describe_line(build_char_tokenizer(), torch.tensor(tokens), logprobs[0, 0], keep[0])
    assert line["token_conf"] == pytest.approx(expected)
    assert line["conf"] == pytest.approx((expected[0] * expected[1] * expected[2]) ** (1 / 3))

    def scores_after(step, token, delta):
        changed = [list(r) for r in rows]
        changed[step][token] += delta
        _, changed_logprobs, _ = chosen_token_logprobs(greedy_output(changed, tokens), EOS)
        return changed_logprobs[0, 0, step].exp().item(), line_confidence(changed_logprobs[0, 0], keep[0])

    for step in range(3):
        up, down = scores_after(step, tokens[step], 0.5), scores_after(step, (tokens[step] + 1) % 4, 0.5)
        assert up[0] > line["token_conf"][step] and up[1] > line["conf"]  # the chosen token scored higher
        assert down[0] < line["token_conf"][step] and down[1] < line["conf"]  # a rival scored higher
    assert scores_after(3, 0, 5.0)[1] == pytest.approx(line["conf"])  # after EOS nothing counts


def test_beam_confidences_come_from_the_final_beams_rows():
    # 1 line, 2 beams: the final beam took step 0 from beam row 1 and step 1 from beam row 0, then ended
    rows = [torch.tensor([[5.0, 0.0, 0.0, 0.0], [0.0, 2.0, 0.0, 0.0]]), torch.tensor([[0.0, 0.0, 0.0, 1.0],
                                                                                   [0.0, 0.0, 0.0, -4.0]]),
            torch.tensor([[1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 1.0]])]
    out = SimpleNamespace(sequences=torch.tensor([[0, 1, EOS]]), scores=tuple(rows),
                          beam_indices=torch.tensor([[1, 0, -1]]))
    tokens, logprobs, keep = chosen_token_logprobs(out, EOS, temperatures=(1.0, 2.0))
    assert tokens.tolist() == [[1, EOS]] and keep.tolist() == [[True, True]]
    for index, temperature in enumerate((1.0, 2.0)):
        expected = [(rows[0][1] / temperature).softmax(0)[1].item(), (rows[1][0] / temperature).softmax(0)[EOS].item()]
        assert logprobs[index, 0].exp().tolist() == pytest.approx(expected)


class ByteTokenizer:
    """A byte-level vocabulary like RoBERTa's: 'é' is two tokens, and a prefix that ends inside it decodes to
    U+FFFD."""
    pieces = {0: b"", 1: b"ab", 2: b" c", 3: b"\xc3", 4: b"\xa9", 5: b""}
    special = {0, 5}

    def batch_decode(self, sequences, skip_special_tokens=True):
        return [b"".join(self.pieces[i] for i in ids if i not in self.special).decode("utf-8", "replace")
                for ids in sequences]

    def convert_ids_to_tokens(self, ids):
        return [f"<{i}>" for i in ids]


def test_each_character_gets_the_confidence_of_the_token_that_completed_it():
    token_conf = [0.9, 0.8, 0.5, 0.6, 0.7, 0.01]
    line = describe_line(ByteTokenizer(), torch.tensor([1, 2, 3, 4, 5, 0]), torch.tensor(token_conf).log(),
                         torch.tensor([True] * 5 + [False]))
    assert line["text"] == "ab cé" and line["tokens"] == ["<1>", "<2>", "<3>", "<4>", "<5>"]
    assert line["char_conf"] == pytest.approx([0.9, 0.9, 0.8, 0.8, 0.6])  # é: its second byte's token
    assert line["token_conf"] == pytest.approx(token_conf[:5])  # EOS has a confidence, but writes no character
    assert line["conf"] == pytest.approx((0.9 * 0.8 * 0.5 * 0.6 * 0.7) ** 0.2)


def test_fitting_recovers_a_known_temperature_on_synthetic_scores():
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(4000, 6, 12, generator=generator) * 3  # 4000 lines, 6 steps, 12-token vocabulary
    out = SimpleNamespace(sequences=torch.cat([torch.zeros(4000, 1, dtype=torch.long), logits.argmax(-1)], dim=1),
                          scores=tuple(logits.unbind(1)))
    _, logprobs, keep = chosen_token_logprobs(out, eos_token_id=99, temperatures=TEMPERATURES)
    confidences_at = logprobs.mean(dim=2).exp().T.tolist()  # [line][temperature]
    true = TEMPERATURES.index(2.0)
    correct = (torch.rand(4000, generator=generator) < torch.tensor([c[true] for c in confidences_at])).tolist()
    fitted = fit_temperature(confidences_at, correct)
    assert 2 ** -0.125 <= fitted / 2.0 <= 2 ** 0.125  # within one step of the grid
    at_one = [c[TEMPERATURES.index(1.0)] for c in confidences_at]
    at_fitted = [c[TEMPERATURES.index(fitted)] for c in confidences_at]
    assert expected_calibration_error(at_fitted, correct) < expected_calibration_error(at_one, correct) / 2
    assert fit_temperature(confidences_at, [True] * 4000) == 1.0  # nothing to fit without a wrong line


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    from trocr_lail.models.tiny import build_tiny_processor

    from conftest import export_tiny

    return export_tiny(build_tiny_processor(16, 64), tmp_path_factory.mktemp("export"), max_length=6)


@pytest.mark.parametrize("num_beams", [1, 2])
def test_line_confidence_is_the_geometric_mean_of_the_chosen_tokens_probabilities(model, num_beams):
    from PIL import Image

    from trocr_lail.inference.reader import LineReader

    reader = LineReader.from_pretrained(model, device="cpu")
    images = [Image.new("RGB", (120, 30), "white"), Image.effect_noise((120, 30), 80).convert("RGB")]
    lines = reader.read_scored(images, num_beams=num_beams, temperatures=(1.0, 2.0))
    assert [line["text"] for line in lines] == reader.read_loaded(images, num_beams=num_beams)
    special = set(reader.processor.tokenizer.all_special_tokens)
    for line in lines:  # the tiny tokenizer writes one character per token
        assert line["char_conf"] == [c for t, c in zip(line["tokens"], line["token_conf"]) if t not in special]
        assert len(line["char_conf"]) == len(line["text"]) and 0 < line["conf"] <= 1
        assert line["conf_at"][0] == line["conf"]  # temperature 1 changes nothing
    calibrated = reader.read_scored(images, num_beams=num_beams, confidence_temperature=2.0)
    assert [line["conf"] for line in calibrated] == [line["conf_at"][1] for line in lines]
    assert [line["text"] for line in calibrated] == [line["text"] for line in lines]  # the reading stays
    if num_beams == 1:  # greedy: recompute from a teacher-forced pass over the chosen tokens, up to EOS
        pixels = reader.processor(images=images, return_tensors="pt").pixel_values
        ids = reader.model.generate(pixels)
        with torch.no_grad():
            logits = reader.model(pixel_values=pixels, decoder_input_ids=ids[:, :-1]).logits
        eos = reader.model.generation_config.eos_token_id
        for temperature, key in ((1.0, "conf"), (2.0, "conf_at")):
            logprobs = (logits / temperature).log_softmax(-1).gather(-1, ids[:, 1:, None])[..., 0]
            for row, line in enumerate(lines):
                chosen = ids[row, 1:].tolist()
                end = chosen.index(eos) + 1 if eos in chosen else len(chosen)
                expected = logprobs[row, :end].mean().exp().item()
                got = line[key] if key == "conf" else line[key][1]
                assert got == pytest.approx(expected, rel=1e-4)
                assert temperature != 1.0 or line["token_conf"] == pytest.approx(logprobs[row, :end].exp().tolist(),
                                                                                  rel=1e-4)
        assert all(line["conf_at"][1] < line["conf"] for line in lines)  # argmax tokens: flatter, less sure
