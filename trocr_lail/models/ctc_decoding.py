"""CTC arithmetic shared by every CTC branch of the package: the hybrid CTC/attention head (``ctc.py``), its
guided attention (``training/guided_attention.py``) and the pure CTC recognizers (``crnn/``, ``mobilevit_ctc/``).

Logits are batch-first, ``(batch, frames, vocab)``; labels are ``(batch, length)`` token ids padded with -100 (as
the collator writes them), optionally ending in an EOS token that CTC must not see. Every line uses all ``frames``
frames: the recognizers pad lines to one width rather than masking frames (as the HTR best-practices code does).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def target_mask(labels: torch.Tensor, eos_token_id: int | None) -> torch.Tensor:
    """True at the label positions CTC aligns: not -100 padding, not EOS."""
    keep = labels.ne(-100)
    if eos_token_id is not None:
        keep &= labels.ne(eos_token_id)
    return keep


def ctc_targets(labels: torch.Tensor, eos_token_id: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Concatenated CTC targets and their lengths from padded ``labels`` (EOS and -100 padding removed)."""
    keep = target_mask(labels, eos_token_id)
    return labels[keep], keep.sum(dim=1)


def ctc_loss_sum(ctc_logits: torch.Tensor, labels: torch.Tensor, blank_id: int,
                 eos_token_id: int | None = None) -> torch.Tensor:
    """Sum over the batch of each line's CTC negative log-likelihood (float32). Lines that cannot be aligned
    (more characters plus repeats than frames) contribute zero rather than infinity."""
    targets, target_lengths = ctc_targets(labels, eos_token_id)
    log_probs = ctc_logits.float().log_softmax(dim=-1).transpose(0, 1)  # (frames, batch, vocab)
    input_lengths = torch.full((ctc_logits.shape[0],), ctc_logits.shape[1], dtype=torch.long)
    return F.ctc_loss(log_probs, targets, input_lengths, target_lengths.cpu(), blank=blank_id, reduction="sum",
                      zero_infinity=True)


def ctc_greedy_runs(ctc_logits: torch.Tensor, blank_id: int) -> list[list[tuple[int, int, int]]]:
    """Best-path decoding of ``(batch, frames, vocab)`` logits as runs: per line, ``(token, first frame, end
    frame)`` for each token the best path emits (the most likely token per frame, repeats collapsed, blanks
    dropped; a blank between two equal tokens keeps both). The frames are what confidences are read from."""
    decoded = []
    for row in ctc_logits.argmax(dim=-1).tolist():
        runs, previous = [], None
        for frame, token in enumerate(row):
            if token == previous != blank_id:  # the run goes on
                runs[-1] = (token, runs[-1][1], frame + 1)
            elif token != blank_id:
                runs.append((token, frame, frame + 1))
            previous = token
        decoded.append(runs)
    return decoded


def ctc_greedy_decode(ctc_logits: torch.Tensor, blank_id: int) -> list[list[int]]:
    """Best-path decoding: the emitted tokens of :func:`ctc_greedy_runs`."""
    return [[token for token, _, _ in runs] for runs in ctc_greedy_runs(ctc_logits, blank_id)]
