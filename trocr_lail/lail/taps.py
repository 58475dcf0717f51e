"""What every LAIL model shares, whatever recognizer it wraps: one connector per tapped ``hidden_states`` entry,
the frozen LLM, and the LLM's scores of the transcription after each tap's soft prefix.

A model class mixes :class:`LailTaps` in before its recognizer class, calls :meth:`LailTaps.init_lail` after the
recognizer's ``__init__``, and says how to get its taps (:meth:`encode_for_lail`, :meth:`lail_hidden_states`):
``modeling.py`` for TrOCR (the encoder's hidden states), ``ctc_modeling.py`` for the CTC recognizers (their own
``hidden_states``: the CRNN's pooled CNN output and BiLSTM layers, MobileViT's pooled stage maps).

The LLM is deliberately *not* a submodule: it never appears in ``state_dict()``, ``parameters()``, optimizer
groups, checkpoints, DDP buckets or the export. Inference never touches it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
import torch.utils.checkpoint
from torch import nn

from .config import normalise_layers
from .connectors import build_connector


def text_positions(prefix_len: int, text_len: int, device) -> torch.Tensor:
    """Positions whose next-token logits score the text: the last prefix position up to the second-to-last token."""
    return torch.arange(prefix_len - 1, prefix_len + text_len - 1, device=device)


def hidden_state_sizes(config) -> list[int]:
    """The width of each ``hidden_states`` entry a LAIL connector can tap: a CTC recognizer's config lists them
    (``hidden_state_sizes``); a VisionEncoderDecoder's encoder has ``num_hidden_layers + 1`` of one width."""
    sizes = getattr(config, "hidden_state_sizes", None)
    if sizes is not None:
        return list(sizes)
    encoder = config.encoder
    return [encoder.hidden_size] * (encoder.num_hidden_layers + 1)


class LailTaps:
    def init_lail(self, config) -> None:
        lail = getattr(config, "lail", None)
        if not lail:
            raise ValueError(f"config.lail is missing: build with {type(self).__name__}.from_plain")
        sizes = hidden_state_sizes(config)
        self.lail_layers = normalise_layers(lail["lail_layers"], len(sizes) - 1)
        options = {"activation": lail["lail_connector_activation"], "hidden_dim": lail["lail_connector_hidden_dim"],
                   "num_blocks": lail["lail_downsample_blocks"], "num_queries": lail["lail_qformer_queries"],
                   "num_heads": lail["lail_qformer_heads"]}
        self.lail_connectors = nn.ModuleList(
            build_connector(lail["lail_connector"], sizes[layer], lail["llm_hidden_size"], **options)
            for layer in self.lail_layers)
        self.llm_checkpointing = False

    def encode_for_lail(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The tappable hidden states of ``pixel_values``."""
        raise NotImplementedError

    def lail_hidden_states(self, outputs) -> tuple[torch.Tensor, ...]:
        """The tappable hidden states in this model's forward ``outputs``."""
        raise NotImplementedError

    def frozen_taps(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """The tappable hidden states as the connector-only stage reads them, with the recognizer frozen: no gradient,
        and every module in eval mode for the forward (each given its own mode back after). Without gradients a
        training-mode forward still changes the recognizer: batch norm (the CRNN's) normalises by the batch and
        updates its running statistics to the new data, and dropout perturbs the prefix, so the "frozen" recognizer
        would drift and read differently at the end of the stage."""
        modes = [(module, module.training) for module in self.modules()]
        self.eval()
        try:
            with torch.no_grad():
                return self.encode_for_lail(pixel_values)
        finally:
            for module, training in modes:
                module.training = training

    @property
    def llm(self):
        return self.__dict__.get("_llm")

    def attach_llm(self, llm, checkpointing: bool = False) -> None:
        """Attach the frozen LLM. ``checkpointing`` recomputes its forward during backward instead of keeping its
        activations (the LLM stays in eval mode, so HF's own gradient checkpointing would not engage)."""
        llm.requires_grad_(False)
        llm.eval()
        object.__setattr__(self, "_llm", llm)  # bypass nn.Module registration on purpose (see module docstring)
        self.llm_checkpointing = checkpointing

    def lail_losses(self, hidden_states, llm_input_ids, llm_attention_mask, llm_labels) -> torch.Tensor:
        """Token-mean LLM loss of the transcription after each tap's soft prefix, shape ``(num_taps,)``.

        All taps go through the LLM in one batched call when their prefixes have one length (stacked on the batch
        axis; a CTC recognizer's taps can differ in length, and then each tap has its own call).
        LLM inputs may cover only the first rows of the batch (``lail_max_lines``); only those rows are scored.
        """
        rows = llm_input_ids.shape[0]
        prefixes = [connector(hidden_states[layer][:rows])
                    for connector, layer in zip(self.lail_connectors, self.lail_layers)]
        if len({prefix.shape[1] for prefix in prefixes}) == 1:
            return self.score_prefixes(torch.cat(prefixes), llm_input_ids, llm_attention_mask, llm_labels)
        return torch.cat([self.score_prefixes(prefix, llm_input_ids, llm_attention_mask, llm_labels)
                          for prefix in prefixes])

    def score_prefixes(self, prefixes, llm_input_ids, llm_attention_mask, llm_labels) -> torch.Tensor:
        """Token-mean LLM loss of the transcription after soft prefixes ``(groups * rows, prefix_len, llm_dim)``,
        one value per group of ``rows`` (the taps, in ``lail_losses``)."""
        llm = self._llm_on(prefixes.device)
        text = llm.get_input_embeddings()(llm_input_ids)
        (batch, text_len), prefix_len = llm_input_ids.shape, prefixes.shape[1]
        taps = prefixes.shape[0] // batch
        inputs = torch.cat([prefixes.to(text.dtype), text.repeat(taps, 1, 1)], dim=1)
        mask = torch.cat([llm_attention_mask.new_ones(taps * batch, prefix_len), llm_attention_mask.repeat(taps, 1)],
                         dim=1)
        # Only the positions that predict text tokens get logits: no vocab projection over the prefix, and no
        # slice of a larger (rows, positions, vocab) tensor, whose flatten would copy it.
        keep = text_positions(prefix_len, text_len, inputs.device)

        def score(embeds, attention):
            return llm(inputs_embeds=embeds, attention_mask=attention, logits_to_keep=keep).logits

        if self.llm_checkpointing and torch.is_grad_enabled():
            logits = torch.utils.checkpoint.checkpoint(score, inputs, mask, use_reentrant=False)
        else:
            logits = score(inputs, mask)
        return token_means(logits, llm_labels.repeat(taps, 1), taps)

    @torch.no_grad()
    def unconditional_loss(self, llm_input_ids, llm_attention_mask, llm_labels) -> torch.Tensor:
        """Token-mean LLM loss of the same transcription tokens with no soft prefix (scalar, no gradient).

        The text follows the LLM's BOS token (EOS where it has none), the way a document starts, so the first text
        token is predicted from one start position here and from the last prefix position in ``lail_losses``:
        the same tokens are scored, and ``unconditional - prefixed`` is what the prefix tells the LLM.
        """
        llm = self._llm_on(llm_input_ids.device)
        config = llm.config
        start = config.bos_token_id if config.bos_token_id is not None else config.eos_token_id
        rows = llm_input_ids.shape[0]
        start_embeds = llm.get_input_embeddings()(llm_input_ids.new_full((rows, 1), start))
        return self.score_prefixes(start_embeds, llm_input_ids, llm_attention_mask, llm_labels)[0]

    @torch.no_grad()
    def mismatched_lail_losses(self, hidden_states, llm_input_ids, llm_attention_mask, llm_labels):
        """``lail_losses`` with each line scored after the prefix of another line's image (rows rolled by one), or
        None for a single row: a prefix that helps as much here carries style, not this line's content."""
        rows = llm_input_ids.shape[0]
        if rows < 2:
            return None
        rolled = [states[:rows].roll(1, dims=0) for states in hidden_states]
        return self.lail_losses(rolled, llm_input_ids, llm_attention_mask, llm_labels)

    def _llm_on(self, device: torch.device):
        llm = self.llm
        if llm.get_input_embeddings().weight.device != device:
            llm.to(device)  # follow the model wherever Trainer / accelerate moved it
        return llm


def token_means(logits: torch.Tensor, targets: torch.Tensor, groups: int) -> torch.Tensor:
    """Mean cross-entropy over the non-ignored targets of each of ``groups`` equal blocks of rows."""
    per_token = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=-100,
                                reduction="none").view(groups, -1)
    counts = targets.ne(-100).view(groups, -1).sum(dim=1).clamp(min=1)
    return per_token.sum(dim=1) / counts
