"""CTC-guided cross-attention (training only): the CTC head tells the decoder where each character is.

With a CTC head the encoder reads in reading order long before the attention decoder finds where to look
(quickstart: the CTC head's CER is ~30 points lower than the decoder's at 2000 steps, docs/quickstart-learning.md).
The CTC head's best path (Viterbi forced alignment of the line's characters to its frames) puts every target
character at a patch column. This loss asks the decoder's cross-attention, when it predicts character j, to put
its mass near that column: ``-log(attention mass within +-window columns)``, averaged over heads and decoder
layers. It adds no parameters, and the export and ``generate`` do not use it: inference stays plain TrOCR.

The alignment is computed without gradient from the current CTC head, so it starts noisy and sharpens as CTC
learns; lines the CTC head cannot align (more characters plus repeats than frames) are skipped.
"""

from __future__ import annotations

import numpy as np
import torch

from ..models.ctc_decoding import target_mask


@torch.no_grad()
def ctc_align(ctc_logits: torch.Tensor, labels: torch.Tensor, blank_id: int,
              eos_token_id: int | None) -> torch.Tensor:
    """Frame of each target character on the CTC best path: ``(batch, label_length)`` long, ``-1`` at EOS,
    padding and lines that cannot be aligned. ``labels`` are seq2seq labels (characters, then EOS, then -100)."""
    batch, frames, _ = ctc_logits.shape
    keep = target_mask(labels, eos_token_id)
    count = keep.sum(dim=1)
    tokens = torch.where(keep, labels, blank_id)
    length = labels.shape[1]
    states = 2 * length + 1  # blank, c0, blank, c1, ..., blank
    extended = torch.full((batch, states), blank_id, dtype=torch.long, device=labels.device)
    extended[:, 1::2] = tokens
    emit = ctc_logits.float().log_softmax(dim=-1).gather(2, extended[:, None, :].expand(batch, frames, states))
    skip_ok = torch.zeros(batch, states, dtype=torch.bool, device=labels.device)
    skip_ok[:, 2:] = extended[:, 2:].ne(blank_id) & extended[:, 2:].ne(extended[:, :-2])
    state, feasible = _viterbi(emit.cpu().numpy(), skip_ok.cpu().numpy(), count.cpu().numpy())
    path = torch.from_numpy(state).to(labels.device)
    feasible = torch.from_numpy(feasible).to(labels.device)
    # First frame of each character's run of frames on the path.
    char_index = torch.where(path % 2 == 1, (path - 1) // 2, length)
    first = torch.full((batch, length + 1), frames, dtype=torch.long, device=labels.device)
    first.scatter_reduce_(1, char_index, torch.arange(frames, device=labels.device).expand(batch, frames),
                          reduce="amin")
    first = first[:, :length]
    valid = keep & feasible[:, None] & first.lt(frames)
    return torch.where(valid, first, -1)


def guided_attention_loss_sum(cross_attentions, frames: torch.Tensor, grid: tuple[int, int], upsample: int,
                              window: int = 1) -> torch.Tensor:
    """Sum over aligned characters of ``-log`` the cross-attention mass (mean over layers and heads) within
    ``window`` patch columns of the character's CTC frame. ``cross_attentions``: the decoder's per-layer
    ``(batch, heads, target, encoder_tokens)``; the last ``rows * columns`` encoder tokens are the patch grid."""
    rows, columns = grid
    attention = torch.stack([layer.float().mean(dim=1) for layer in cross_attentions]).mean(dim=0)
    per_column = attention[..., -rows * columns:].unflatten(-1, (rows, columns)).sum(dim=-2)  # (batch, target, cols)
    valid = frames.ge(0)
    column = (frames.clamp(min=0) // upsample)[..., None]
    near = (torch.arange(columns, device=frames.device) - column).abs().le(window)
    mass = (per_column * near).sum(dim=-1)
    return -(mass.clamp(min=1e-6).log() * valid).sum()


def _viterbi(emit: np.ndarray, skip_ok: np.ndarray, count: np.ndarray):
    """Best CTC path through the extended label states: ``(batch, frames)`` state per frame, and whether a line
    can be aligned at all. In NumPy: the recursion is ~100 steps of tiny batched operations, where torch's
    per-operation overhead made it ~13% of a quickstart training step."""
    batch, frames, states = emit.shape
    rows = np.arange(batch)
    end = 2 * count  # the final blank of each line's extended labels
    score = np.full((batch, states + 2), -np.inf, dtype=np.float32)  # two -inf columns in front: no shift copies
    score[:, 2:4] = emit[:, 0, :2]
    skip_penalty = np.where(skip_ok, 0.0, -np.inf).astype(np.float32)
    emit = np.ascontiguousarray(emit.transpose(1, 0, 2))  # frame-major: each step reads and writes one block
    back = np.zeros((frames, batch, states), dtype=np.int8)
    for t in range(1, frames):
        stay, one, two = score[:, 2:], score[:, 1:-1], score[:, :-2] + skip_penalty
        from_one = one > stay  # strict: a tie keeps the earlier option (stay, then one state back)
        best = np.where(from_one, one, stay)
        from_two = two > best
        back[t] = np.where(from_two, 2, from_one)
        score[:, 2:] = np.where(from_two, two, best) + emit[t]
    final_blank = score[rows, 2 + end]
    final_char = score[rows, 2 + np.maximum(end - 1, 0)]
    state = np.where((final_char > final_blank) & (count > 0), end - 1, end)
    feasible = np.isfinite(np.maximum(final_blank, final_char))
    path = np.empty((batch, frames), dtype=np.int64)
    path[:, -1] = state
    for t in range(frames - 1, 0, -1):
        state = state - back[t, rows, state]
        path[:, t - 1] = state
    return path, feasible
