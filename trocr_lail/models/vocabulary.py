"""Characters a tokenizer cannot encode, and growing the decoder's vocabulary by them (``extend_vocabulary``).

A character is *unknown* to a tokenizer when it encodes to the unknown token, or when decoding its ids does not give
it back (a normalizer that folds it into something else: NFKC's ``ﬁ`` -> ``fi``). Byte-level BPE tokenizers (TrOCR
base/large, RoBERTa's) spell every character in bytes, so nothing is unknown to them; character and sentencepiece
vocabularies (the tiny model, TrOCR small) know only the characters they were built with.

:func:`extend_vocabulary` adds the unknown characters of the training texts to the tokenizer as added tokens (one
token each, for any tokenizer class), grows the decoder's input embeddings and output projection to match (tied or
not), and initialises each new row from the rows of the tokens the character's Unicode decomposition (NFKD) encodes
to: ``é`` starts as ``e``, ``ǆ`` as the mean of ``d`` and ``ž``'s parts. A character with no known part (a kanji in
a Latin character vocabulary) starts at the mean of the existing non-special rows: an embedding like an average
character's, and an output row whose logit is an average character's, so the new token is neither favoured nor
ruled out before training. Old rows and the special-token ids are left exactly as they were; new tokens take the
ids after the tokenizer's last, so rows the decoder has but the tokenizer never used (``config:trocr-*``) are
reused and initialised the same way.
"""

from __future__ import annotations

import logging
import unicodedata
from collections.abc import Iterable

import torch

logger = logging.getLogger("trocr_lail")


def unknown_characters(tokenizer, characters: Iterable[str]) -> set[str]:
    """The characters of ``characters`` (whitespace ignored) that ``tokenizer`` maps to its unknown token or does
    not give back on decoding."""
    chars = sorted({ch for ch in characters if not ch.isspace()})
    if not chars:
        return set()
    encoded = tokenizer(chars, add_special_tokens=False)["input_ids"]
    decoded = tokenizer.batch_decode(encoded, skip_special_tokens=False, clean_up_tokenization_spaces=False)
    unk = tokenizer.unk_token_id
    return {ch for ch, ids, text in zip(chars, encoded, decoded)
            if (unk is not None and unk in ids) or text.strip() != ch}


def characters_to_add(tokenizer, texts: Iterable[str]) -> list[str]:
    """The unknown characters of ``texts``, in code point order (the order they become tokens)."""
    seen: set[str] = set()
    for text in texts:
        seen.update(text)
    return sorted(unknown_characters(tokenizer, seen))


def source_ids(tokenizer, character: str) -> list[int]:
    """Ids of the known tokens that ``character``'s NFKD decomposition encodes to (empty when none is known)."""
    parts = unicodedata.normalize("NFKD", character)
    if parts == character:
        parts = ""  # no decomposition: the character itself is what is unknown
    ids = tokenizer(parts, add_special_tokens=False)["input_ids"] if parts.strip() else []
    special = set(tokenizer.all_special_ids)
    return [i for i in ids if i not in special and i != tokenizer.unk_token_id]


@torch.no_grad()
def extend_vocabulary(model, tokenizer, texts: Iterable[str]) -> list[str]:
    """Add the characters of ``texts`` that ``tokenizer`` cannot encode to it and to ``model``'s decoder (module
    docstring); returns them (empty: nothing changed). ``model`` is a ``VisionEncoderDecoderModel`` (or subclass);
    a CTC head (``ctc_head``) grows with the decoder."""
    added = characters_to_add(tokenizer, texts)
    if not added:
        return []
    sources = {ch: source_ids(tokenizer, ch) for ch in added}  # before adding: parts must not map to new tokens
    special = set(tokenizer.all_special_ids)
    old_len = len(tokenizer)
    if tokenizer.add_tokens(added) != len(added):
        raise ValueError(f"the tokenizer refused some of the characters {added!r} as new tokens")
    new_ids = tokenizer.convert_tokens_to_ids(added)
    decoder = model.decoder
    old_vocab = decoder.get_input_embeddings().weight.shape[0]
    if len(tokenizer) > old_vocab:
        decoder.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    plain = [i for i in range(old_len) if i not in special]
    layers = [decoder.get_input_embeddings()]
    output = decoder.get_output_embeddings()
    if output is not None and output.weight is not layers[0].weight:  # untied: its own rows
        layers.append(output)
    for layer in layers:
        weight = layer.weight
        bias = getattr(layer, "bias", None)
        fallback = weight[plain].mean(dim=0)
        for ch, new in zip(added, new_ids):
            rows = sources[ch]
            weight[new] = weight[rows].mean(dim=0) if rows else fallback
            if bias is not None:
                bias[new] = bias[rows].mean() if rows else bias[plain].mean()
    vocab = decoder.get_input_embeddings().weight.shape[0]
    model.config.decoder.vocab_size = vocab
    if getattr(model, "ctc_head", None) is not None:
        model.grow_ctc_vocabulary(vocab)
    logger.info("extend_vocabulary: added %d character(s) as tokens %d..%d: %s", len(added), new_ids[0],
                new_ids[-1], "".join(added))
    return added
