"""CTC-guided cross-attention: the forced alignment against hand-built paths, the loss against hand arithmetic,
and the trainer's total loss; the term is training-only and leaves the export plain."""

import math

import pytest
import torch

from trocr_lail.configs import TrainingArguments
from trocr_lail.models.ctc_decoding import ctc_loss_sum
from trocr_lail.training.guided_attention import ctc_align, guided_attention_loss_sum
from trocr_lail.training.trainer import token_cross_entropy

from test_ctc import collate, ctc_trainer

BLANK, EOS = 1, 2


def path_logits(path: list[int], vocab: int = 8) -> torch.Tensor:
    """Logits whose best path is exactly ``path`` (one token per frame)."""
    logits = torch.full((1, len(path), vocab), -10.0)
    for t, token in enumerate(path):
        logits[0, t, token] = 10.0
    return logits


def test_alignment_follows_the_best_path_and_marks_eos_and_padding():
    labels = torch.tensor([[4, 5, EOS, -100]])
    frames = ctc_align(path_logits([BLANK, 4, 4, BLANK, 5, BLANK]), labels, BLANK, EOS)
    assert frames.tolist() == [[1, 4, -1, -1]]  # first frame of each character's run


def test_repeated_characters_need_a_blank_between_them():
    labels = torch.tensor([[4, 4, EOS]])
    frames = ctc_align(path_logits([4, BLANK, 4, 4]), labels, BLANK, EOS)
    assert frames.tolist() == [[0, 2, -1]]


def test_the_alignment_is_forced_to_the_labels_not_the_argmax():
    # The head prefers token 6 at frame 2, but the line says 4 5: the path must still emit 5 somewhere after 4.
    logits = path_logits([4, BLANK, 6, BLANK])
    frames = ctc_align(logits, torch.tensor([[4, 5, EOS]]), BLANK, EOS)
    assert frames[0, 0] == 0 and frames[0, 1] > 0 and frames[0, 2] == -1


def test_lines_that_cannot_be_aligned_are_skipped():
    labels = torch.tensor([[4, 4, 4, EOS], [4, EOS, -100, -100]])
    logits = torch.cat([path_logits([4, BLANK, 4]), path_logits([BLANK, 4, BLANK])])
    frames = ctc_align(logits, labels, BLANK, EOS)
    assert frames[0].tolist() == [-1, -1, -1, -1]  # 3 repeats need 5 frames, there are 3
    assert frames[1].tolist() == [1, -1, -1, -1]


def test_loss_is_minus_log_mass_near_the_aligned_column():
    columns = 10
    frames = torch.tensor([[2, 7, -1]])
    attention = torch.zeros(1, 2, 3, 1 + columns)  # (batch, heads, target, [CLS] + patches)
    attention[0, :, 0, 1 + 2] = 1.0  # character 0: all mass on its column
    attention[0, 0, 1, 1 + 8] = 1.0  # character 1: head 0 one column off (inside the window), head 1 far away
    attention[0, 1, 1, 1 + 0] = 1.0
    attention[0, :, 2, 0] = 1.0  # EOS: not aligned, not counted
    loss = guided_attention_loss_sum((attention,), frames, (1, columns), upsample=1, window=1)
    assert loss.item() == pytest.approx(-math.log(1.0) - math.log(0.5), abs=1e-5)
    uniform = torch.full((1, 1, 3, 1 + columns), 1 / (1 + columns))
    loss = guided_attention_loss_sum((uniform,), frames, (1, columns), upsample=1, window=1)
    assert loss.item() == pytest.approx(-2 * math.log(3 / (1 + columns)), abs=1e-5)


def test_upsampled_frames_map_to_their_column():
    attention = torch.zeros(1, 1, 1, 4)
    attention[0, 0, 0, 1 + 1] = 1.0  # column 1 of 3
    loss = guided_attention_loss_sum((attention,), torch.tensor([[3]]), (1, 3), upsample=2, window=0)
    assert loss.item() == pytest.approx(0.0, abs=1e-5)  # frame 3 with 2 frames per column is column 1


def test_total_loss_adds_the_weighted_guide_term(tmp_path, tiny_processor):
    trainer, model = ctc_trainer(tmp_path, tiny_processor, ctc_weight=0.3, ctc_guided_attention=0.7)
    model.enable_guided_attention()
    inputs = collate(tiny_processor)
    model.train()
    loss, outputs = trainer.compute_loss(model, inputs, return_outputs=True)
    labels = inputs["labels"]
    tokens = labels.ne(-100).sum()
    s2s = token_cross_entropy(outputs.logits, labels)
    ctc = ctc_loss_sum(outputs.ctc_logits, labels, BLANK, EOS) / tokens
    frames = ctc_align(outputs.ctc_logits, labels, BLANK, EOS)
    guide = guided_attention_loss_sum(outputs.cross_attentions, frames, model.ctc_grid, model.ctc_upsample) / tokens
    assert frames.ge(0).any() and guide > 0
    assert loss.item() == pytest.approx((s2s + 0.3 * ctc + 0.7 * guide).item(), rel=1e-5)
    assert "attention_guide_loss" in trainer._metrics["train"]
    # Gradient reaches the decoder's cross-attention through the guide term alone.
    model.zero_grad()
    guided_attention_loss_sum(outputs.cross_attentions, frames, model.ctc_grid, 1).backward()
    grad = model.decoder.model.decoder.layers[0].encoder_attn.q_proj.weight.grad
    assert grad is not None and grad.abs().sum() > 0
    # Not in training mode (evaluation, generate): no attentions requested, so no guide term.
    model.eval()
    assert model(pixel_values=inputs["pixel_values"], labels=labels).cross_attentions is None


def test_guided_attention_needs_ctc(tmp_path):
    with pytest.raises(ValueError, match="ctc_guided_attention"):
        TrainingArguments(output_dir=str(tmp_path), ctc_guided_attention=1.0, use_cpu=True)


def reference_align(log_probs: torch.Tensor, tokens: list[int], blank: int) -> list[int]:
    """Textbook CTC Viterbi for one line in plain Python: first frame of each character, or all -1 if unalignable."""
    ext = [blank]
    for token in tokens:
        ext += [token, blank]
    frames, states = log_probs.shape[0], len(ext)
    score = [[-math.inf] * states for _ in range(frames)]
    back = [[0] * states for _ in range(frames)]
    score[0][0] = log_probs[0, ext[0]].item()
    if states > 1:
        score[0][1] = log_probs[0, ext[1]].item()
    for t in range(1, frames):
        for s in range(states):
            options = [(score[t - 1][s], 0)]
            if s >= 1:
                options.append((score[t - 1][s - 1], 1))
            if s >= 2 and ext[s] != blank and ext[s] != ext[s - 2]:
                options.append((score[t - 1][s - 2], 2))
            best, step = max(options, key=lambda option: option[0])  # first of equal options, as ctc_align
            score[t][s], back[t][s] = best + log_probs[t, ext[s]].item(), step
    end = states - 1
    state = end - 1 if tokens and score[-1][end - 1] > score[-1][end] else end
    if math.isinf(max(score[-1][end], score[-1][max(end - 1, 0)])):
        return [-1] * len(tokens)
    path = [state]
    for t in range(frames - 1, 0, -1):
        state -= back[t][state]
        path.append(state)
    path.reverse()
    return [path.index(2 * j + 1) for j in range(len(tokens))]


def test_alignment_matches_a_textbook_viterbi_on_random_lines():
    generator = torch.Generator().manual_seed(0)
    lengths = [0, 1, 3, 5, 6, 7]  # 7 with repeats cannot fit in 8 frames
    labels = torch.full((len(lengths), max(lengths) + 1), -100)
    for row, length in enumerate(lengths):
        labels[row, :length] = torch.randint(4, 7, (length,), generator=generator)  # 3 letters: many repeats
        labels[row, length] = EOS
    logits = torch.randn(len(lengths), 8, 7, generator=generator) * 3
    frames = ctc_align(logits, labels, BLANK, EOS)
    for row, length in enumerate(lengths):
        expected = reference_align(logits[row].log_softmax(-1), labels[row, :length].tolist(), BLANK)
        assert frames[row, :length].tolist() == expected, row
        assert (frames[row, length:] == -1).all()
    assert frames[-1].eq(-1).all()  # the 7-character line (2 repeats: 9 frames needed) is skipped
