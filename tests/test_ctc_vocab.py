"""The CTC recognizers' character vocabulary (blank 0, then the training texts' characters and space, sorted) and
greedy best-path decoding on hand-made logits, down to text."""

import torch
from transformers import AutoTokenizer

from trocr_lail.models.crnn.configuration_crnn import CrnnConfig
from trocr_lail.models.crnn.modeling_crnn import CrnnForCTC
from trocr_lail.models.ctc_decoding import ctc_greedy_decode
from trocr_lail.models.ctc_vocab import BLANK, build_ctc_tokenizer, charset_from_texts, unseen_characters

TEXTS = ["Hello, world!", "a-b]c^d\\e[f&&g~~h", "Über 42"]


def test_charset_is_the_training_characters_and_space_sorted():
    assert charset_from_texts(["ba", "ab!"]) == " !ab"  # space added even when no text has one
    charset = charset_from_texts(TEXTS)
    assert list(charset) == sorted(set("".join(TEXTS)))
    assert unseen_characters(["Hé!", "z"], charset) == {"é", "z"}


def test_tokenizer_ids_follow_the_charset_after_the_blank():
    charset = charset_from_texts(TEXTS)
    tokenizer = build_ctc_tokenizer(charset)
    assert tokenizer.convert_ids_to_tokens(0) == BLANK and tokenizer.pad_token_id == 0
    assert len(tokenizer) == len(charset) + 1 == CrnnConfig(charset=charset).vocab_size
    for text in TEXTS:  # regex metacharacters included
        ids = tokenizer(text)["input_ids"]
        assert ids == [charset.index(ch) + 1 for ch in text]
        assert tokenizer.decode(ids) == text
    # A character outside the vocabulary has no class: it is dropped, never mapped to the blank.
    assert tokenizer("Hé z!")["input_ids"] == [charset.index(ch) + 1 for ch in "H !"]


def test_vocabulary_round_trips_with_the_model_and_the_tokenizer(tmp_path):
    charset = charset_from_texts(TEXTS)
    model = CrnnForCTC(CrnnConfig(charset=charset, stem_channels=4, cnn_blocks=[[1, 8]], lstm_hidden_size=8))
    model.save_pretrained(tmp_path / "model")
    build_ctc_tokenizer(charset).save_pretrained(tmp_path / "model")
    loaded = CrnnForCTC.from_pretrained(tmp_path / "model")
    assert loaded.config.charset == charset and loaded.head[1].out_features == len(charset) + 1
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "model")
    rebuilt = build_ctc_tokenizer(loaded.config.charset)
    assert tokenizer.get_vocab() == rebuilt.get_vocab()
    assert tokenizer(TEXTS[1])["input_ids"] == rebuilt(TEXTS[1])["input_ids"]
    assert tokenizer.decode(tokenizer(TEXTS[2])["input_ids"]) == TEXTS[2]


def path_logits(*paths: list[int], vocab: int = 6) -> torch.Tensor:
    """Logits whose argmax at frame t of line b is ``paths[b][t]``."""
    logits = torch.randn(len(paths), len(paths[0]), vocab)
    for line, path in enumerate(paths):
        logits[line, torch.arange(len(path)), path] = 10.0
    return logits


def test_greedy_decoding_collapses_repeats_and_drops_blanks():
    logits = path_logits([0, 1, 1, 0, 1, 2, 2, 0, 3],  # a blank between two 1s keeps both
                         [0, 0, 0, 0, 0, 0, 0, 0, 0],  # all blank: empty
                         [5, 5, 5, 4, 4, 0, 0, 4, 5])
    assert ctc_greedy_decode(logits, blank_id=0) == [[1, 1, 2, 3], [], [5, 4, 4, 5]]


def test_greedy_decoding_reads_text_through_the_tokenizer():
    tokenizer = build_ctc_tokenizer("ehlo ")  # ids: blank 0, e 1, h 2, l 3, o 4, space 5
    logits = path_logits([0, 5, 2, 2, 1, 3, 3, 0, 3, 4, 4, 0, 5])  # "ll" needs the blank between its l's
    assert tokenizer.batch_decode(ctc_greedy_decode(logits, blank_id=0)) == [" hello "]
