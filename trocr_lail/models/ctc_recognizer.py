"""What the pure CTC line recognizers (``crnn/``, ``mobilevit_ctc/``) share: their output type, the column pool
that turns a feature map into a frame sequence, and the loss.

Contract of both families' ``forward(pixel_values, labels=None, output_hidden_states=None)``:

- ``logits``: ``(batch, frames, vocab)``, batch-first like transformers' ``*ForCTC`` models; id 0 is the blank.
  Read them with :func:`line_ids` (best path, outer spaces dropped), as the reference does; with confidences,
  with the models' ``best_path`` (:class:`CtcLineReading`, :func:`best_path_scores`).
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

from .ctc_decoding import ctc_greedy_runs, ctc_loss_sum
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
    # int(): a constant kernel when traced for ONNX (the processor fixes the height), not a symbolic size.
    return F.max_pool2d(features, (int(features.shape[2]), 1)).squeeze(2).transpose(1, 2)


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


def line_runs(logits: torch.Tensor, charset: str) -> list[list[tuple[int, int, int]]]:
    """Each line's best path as ``(token, first frame, end frame)`` runs (``ctc_decoding.ctc_greedy_runs``) without
    its leading and trailing spaces. The reference trains on every transcript wrapped in spaces (so does
    ``data.collator.CtcCollator``) and strips them before scoring; dropping the space ids here makes a plain
    ``tokenizer.batch_decode`` give the stripped text."""
    space = charset.index(" ") + 1 if " " in charset else None
    lines = []
    for runs in ctc_greedy_runs(logits, blank_id=BLANK_ID):
        start, end = 0, len(runs)
        while start < end and runs[start][0] == space:
            start += 1
        while end > start and runs[end - 1][0] == space:
            end -= 1
        lines.append(runs[start:end])
    return lines


def line_ids(logits: torch.Tensor, charset: str) -> list[list[int]]:
    """Each line's token ids as the training evaluation and ``predict`` read them (:func:`line_runs`)."""
    return [[token for token, _, _ in runs] for runs in line_runs(logits, charset)]


def best_path_scores(logits: torch.Tensor, charset: str, temperatures=(1.0,)):
    """The best path of each line with its confidences, in the layout of ``inference.pipeline``'s
    ``chosen_token_logprobs`` so that one ``describe_line`` reads TrOCR and CTC lines alike: ``(tokens [lines,
    steps], logprobs [temperatures, lines, steps], keep [lines, steps])``, on the CPU.

    A character's log-probability is the highest, over the frames of its run on the best path, of that frame's
    best-path (top) log-probability, from ``log_softmax(logits / temperature)``: the frame where the model is
    surest of it (a character emitted over many frames is not penalised for its fade-in and fade-out frames).
    ``describe_line``'s line confidence, the geometric mean over the kept steps, is then the geometric mean over the
    emitted characters. A line that emits none keeps one ``<blank>`` step (it writes no character, like TrOCR's
    EOS) whose log-probability is the mean over all frames of their top log-probability: how sure the model is of
    the empty reading. Blank frames between characters do not enter a non-empty line's confidence, so a character
    the best path drops costs nothing there (the usual blind spot of best-path confidences)."""
    runs = line_runs(logits, charset)
    steps = max([1, *map(len, runs)])
    tokens = torch.full((len(runs), steps), BLANK_ID, dtype=torch.long)
    logprobs = torch.zeros(len(temperatures), len(runs), steps)
    keep = torch.zeros(len(runs), steps, dtype=torch.bool)
    # The best path's token is the argmax at any temperature > 0, so its log-probability is the row's maximum.
    top = torch.stack([torch.log_softmax(logits.float() / t, dim=-1).amax(dim=-1) for t in temperatures]).cpu()
    for line, kept in enumerate(runs):
        if not kept:
            logprobs[:, line, 0], keep[line, 0] = top[:, line].mean(dim=-1), True
            continue
        count = len(kept)
        owner = torch.cat([torch.full((end - start,), k) for k, (_, start, end) in enumerate(kept)])
        frames = torch.cat([torch.arange(start, end) for _, start, end in kept])
        logprobs[:, line, :count] = torch.full((len(temperatures), count), -torch.inf).scatter_reduce(
            1, owner.expand(len(temperatures), -1), top[:, line, frames], reduce="amax")
        tokens[line, :count] = torch.tensor([token for token, _, _ in kept])
        keep[line, :count] = True
    return tokens, logprobs, keep


class CtcLineReading:
    """What the families' models offer their readers: ``inference.pipeline`` (copied into exports, where it cannot
    import this package) and ``LineReader`` call ``model.best_path`` on whichever copy of the model code is
    loaded, so that the decoding and the confidences exist once."""

    def best_path(self, logits: torch.Tensor, temperatures=(1.0,)):
        """:func:`best_path_scores` with this model's characters."""
        return best_path_scores(logits, self.config.charset, temperatures)
