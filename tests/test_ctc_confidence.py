"""CTC confidences (``models.ctc_recognizer.best_path_scores``): a character's is the peak best-path probability
over its frames, the line's the geometric mean of its characters'; an empty line is scored by its blank path. Each
is monotone in the frame probabilities it comes from and blind to the others."""

import math

import pytest
import torch

from trocr_lail.inference.pipeline import describe_line
from trocr_lail.models.ctc_recognizer import best_path_scores, line_ids
from trocr_lail.models.ctc_vocab import build_ctc_tokenizer

CHARSET = "ab "  # ids: blank 0, a 1, b 2, space 3


def logits_of(rows: list[dict[int, float]], vocab: int = 4) -> torch.Tensor:
    """One line's logits from per-frame probabilities (the rest spread evenly over the other ids)."""
    frames = []
    for row in rows:
        rest = (1 - sum(row.values())) / (vocab - len(row))
        frames.append([math.log(row.get(token, rest)) for token in range(vocab)])
    return torch.tensor([frames])


def line_conf(logits: torch.Tensor, temperature: float = 1.0) -> tuple[list[int], float]:
    tokens, logprobs, keep = best_path_scores(logits, CHARSET, (temperature,))
    line = describe_line(build_ctc_tokenizer(CHARSET), tokens[0], logprobs[0, 0], keep[0])
    return tokens[0][keep[0]].tolist(), line["conf"]


def test_hand_made_line_takes_each_characters_peak_frame():
    logits = logits_of([{3: 0.6}, {1: 0.7}, {1: 0.9}, {0: 0.8}, {2: 0.5}, {3: 0.55}])  # " aa-b " -> "ab"
    tokens, logprobs, keep = best_path_scores(logits, CHARSET)
    assert tokens[0][keep[0]].tolist() == [1, 2] == line_ids(logits, CHARSET)[0]  # outer spaces dropped
    assert logprobs[0, 0, keep[0]].exp().tolist() == pytest.approx([0.9, 0.5])
    line = describe_line(build_ctc_tokenizer(CHARSET), tokens[0], logprobs[0, 0], keep[0])
    assert line["text"] == "ab" and line["conf"] == pytest.approx(math.sqrt(0.9 * 0.5))
    assert line["char_conf"] == pytest.approx([0.9, 0.5]) and line["tokens"] == ["a", "b"]


def test_an_empty_line_is_scored_by_its_blank_path():
    logits = logits_of([{0: 0.9}, {0: 0.6}, {3: 0.5}])
    tokens, logprobs, keep = best_path_scores(logits, CHARSET)
    assert tokens[0].tolist() == [0] and keep[0].tolist() == [True]
    line = describe_line(build_ctc_tokenizer(CHARSET), tokens[0], logprobs[0, 0], keep[0])
    assert line["text"] == "" and line["char_conf"] == [] and line["tokens"] == ["<blank>"]
    assert line["conf"] == pytest.approx((0.9 * 0.6 * 0.5) ** (1 / 3))


def test_batch_rows_are_padded_and_kept_apart():
    logits = torch.cat([logits_of([{1: 0.8}, {0: 0.9}, {2: 0.7}]), logits_of([{0: 0.9}, {1: 0.6}, {0: 0.9}])])
    tokens, logprobs, keep = best_path_scores(logits, CHARSET, (1.0, 2.0))
    assert keep.tolist() == [[True, True], [True, False]] and tokens[1, 1] == 0
    assert logprobs.shape == (2, 2, 2) and logprobs[0, 1, 0].exp() == pytest.approx(0.6)
    assert logprobs[1, 0, 0] < logprobs[0, 0, 0]  # a higher temperature flattens a confident frame


@pytest.mark.parametrize("seed", range(5))
def test_confidence_is_monotone_in_the_frame_probabilities_it_comes_from(seed):
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(1, 12, 4, generator=generator) * 2
    tokens, conf = line_conf(logits)
    if not tokens or tokens == [0]:
        pytest.skip("this draw reads an empty line")
    best = logits[0].argmax(dim=-1)
    top = logits[0].log_softmax(dim=-1).amax(dim=-1)
    emitting = [f for f in range(12) if best[f] != 0]
    peak = max(emitting, key=lambda f: top[f])  # some character's peak frame: raising it raises that character
    surer = logits.clone()
    surer[0, peak, best[peak]] += 0.5
    assert line_conf(surer)[0] == tokens and line_conf(surer)[1] > conf
    rival = (int(best[peak]) % 3) + 1  # another character at that frame, kept below the chosen one
    doubt = logits.clone()
    doubt[0, peak, rival] = (logits[0, peak, rival] + logits[0, peak, best[peak]]) / 2
    assert line_conf(doubt)[0] == tokens and line_conf(doubt)[1] < conf
    blanks = [f for f in range(12) if best[f] == 0]
    if blanks:  # the blank frames between characters do not enter a non-empty line's confidence
        calmer = logits.clone()
        calmer[0, blanks, 0] += 1.0
        assert line_conf(calmer) == (tokens, pytest.approx(conf))
