"""What the pure CTC line recognizers (``crnn/``, ``mobilevit_ctc/``) share: their output type, the column pool
that turns a feature map into a frame sequence, and the loss.

Contract of both families' ``forward(pixel_values, labels=None, output_hidden_states=None)``:

- ``logits``: ``(batch, frames, vocab)``, batch-first like transformers' ``*ForCTC`` models; id 0 is the blank.
  Read them with :func:`line_ids` (best path, outer spaces dropped), as the reference does.
- ``loss`` (with ``labels``, padded with -100): the CTC loss summed over the lines of the batch and divided by the
  number of lines, HTR best practices' ``CTCLoss(reduction='sum', zero_infinity=True)(...) / batch_size``. In
  training mode a model with an auxiliary CTC head adds ``weight *`` that head's loss, normalised the same way;
  in eval mode ``loss`` is the main head's alone, the loss of what inference reads.
- ``hidden_states`` (with ``output_hidden_states``): the LAIL taps, each ``(batch, sequence, dim)``; each family's
  docstring says which layers they are.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformers.utils import ModelOutput

from .ctc_decoding import ctc_greedy_decode, ctc_loss_sum
from .ctc_vocab import BLANK_ID


@dataclass
class CtcRecognizerOutput(ModelOutput):
    loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None  # (batch, frames, vocab)
    hidden_states: tuple[torch.FloatTensor, ...] | None = None  # LAIL taps, each (batch, sequence, dim)
    ctc_loss: torch.FloatTensor | None = None  # the main head's loss (per line), for logging
    aux_loss: torch.FloatTensor | None = None  # the training-only auxiliary head's loss (per line), unweighted
    aux_logits: torch.FloatTensor | None = None  # (batch, frames, vocab), training only


def column_max_pool(features: torch.Tensor) -> torch.Tensor:
    """``(batch, channels, height, width)`` -> ``(batch, width, channels)``: the maximum over each column, the
    reference's ``F.max_pool2d(y, [y.size(2), 1])`` (max_pool2d, not amax, so that ties send the gradient to one
    position as there)."""
    return F.max_pool2d(features, (features.shape[2], 1)).squeeze(2).transpose(1, 2)


def per_line_ctc_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """CTC loss summed over the batch's lines, divided by their number (the reference's normalisation)."""
    return ctc_loss_sum(logits, labels, blank_id=BLANK_ID) / logits.shape[0]


def recognizer_output(logits, labels, hidden_states, aux_logits=None, aux_weight: float = 0.0,
                      return_dict: bool = True):
    """The output of a CTC recognizer's forward: losses when there are labels, the auxiliary head's only when
    ``aux_logits`` are given (callers pass them in training mode only)."""
    ctc_loss = aux_loss = loss = None
    if labels is not None:
        loss = ctc_loss = per_line_ctc_loss(logits, labels)
        if aux_logits is not None:
            aux_loss = per_line_ctc_loss(aux_logits, labels)
            loss = ctc_loss + aux_weight * aux_loss
    output = CtcRecognizerOutput(loss=loss, logits=logits, hidden_states=hidden_states, ctc_loss=ctc_loss,
                                 aux_loss=aux_loss, aux_logits=aux_logits)
    return output if return_dict else output.to_tuple()


def line_ids(logits: torch.Tensor, charset: str) -> list[list[int]]:
    """Each line's token ids as the training evaluation and ``predict`` read them: the best path without its
    leading and trailing spaces. The reference trains on every transcript wrapped in spaces (so does
    ``data.collator.CtcCollator``) and strips them before scoring; dropping the space ids here makes a plain
    ``tokenizer.batch_decode`` give the stripped text."""
    space = charset.index(" ") + 1 if " " in charset else None
    lines = []
    for ids in ctc_greedy_decode(logits, blank_id=BLANK_ID):
        start, end = 0, len(ids)
        while start < end and ids[start] == space:
            start += 1
        while end > start and ids[end - 1] == space:
            end -= 1
        lines.append(ids[start:end])
    return lines
