"""The character vocabulary of the CTC recognizers (``crnn/``, ``mobilevit_ctc/``), as HTR best practices builds
it: id 0 is the CTC blank, ids 1.. are the training texts' characters plus space, sorted by code point.

The model's config keeps the characters (``config.charset``), so a saved model knows its own output classes; the
tokenizer built from them is a plain ``PreTrainedTokenizerFast`` (one word-level token per character, as in
``tiny.py``), which ``save_pretrained`` writes as ``tokenizer.json`` and any transformers loads without custom code.

A character outside the vocabulary cannot be a CTC target (there is no class for it, and mapping it to the blank
would corrupt the alignment), so the tokenizer's normalizer removes it: encoding a line drops its unseen characters,
and scoring, which compares the raw texts, counts them as errors. A training run never gets that far with one:
its dataset check (``data/validate.py``) finds that the character does not encode and refuses the line before any
step, or with ``skip_bad_samples`` drops it, counted; that covers a saved recognizer adapted to new lines too (its
vocabulary is stage 1's). ``unseen_characters`` tells the caller which they are.
"""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers
from transformers import PreTrainedTokenizerFast

BLANK = "<blank>"
BLANK_ID = 0


def charset_from_texts(texts: Iterable[str]) -> str:
    """Every character of ``texts`` plus space (the reference wraps every line in spaces), sorted by code point."""
    characters = {" "}
    for text in texts:
        characters.update(text)
    return "".join(sorted(characters))


def unseen_characters(texts: Iterable[str], charset: str) -> set[str]:
    known = set(charset)
    return {ch for text in texts for ch in text if ch not in known}


def is_ctc_tokenizer(tokenizer) -> bool:
    """A CTC recognizer's character tokenizer (:func:`build_ctc_tokenizer`): its padding token is the blank."""
    return tokenizer is not None and tokenizer.pad_token == BLANK


def build_ctc_tokenizer(charset: str) -> PreTrainedTokenizerFast:
    """Blank at id 0 (also the padding token), then one token per character of ``charset`` in its order."""
    if len(set(charset)) != len(charset):
        raise ValueError("charset has a repeated character; build it with charset_from_texts")
    if BLANK in charset:
        raise ValueError(f"charset may not contain the blank token {BLANK!r}")
    vocab = {BLANK: BLANK_ID, **{ch: i + 1 for i, ch in enumerate(charset)}}
    backend = Tokenizer(models.WordLevel(vocab, unk_token=BLANK))
    # \x{...} escapes: the tokenizers regex engine (Oniguruma) reads them whatever the character, unlike re.escape.
    known = "".join(f"\\x{{{ord(ch):x}}}" for ch in charset)
    backend.normalizer = normalizers.Replace(Regex(f"[^{known}]" if charset else r"[\s\S]"), "")
    backend.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")  # one token per character
    backend.decoder = decoders.Fuse()  # join the characters back without inserting spaces
    return PreTrainedTokenizerFast(tokenizer_object=backend, pad_token=BLANK, clean_up_tokenization_spaces=False)
