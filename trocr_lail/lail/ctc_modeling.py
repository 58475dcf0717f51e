"""LAIL on the pure CTC recognizers (``models/crnn/``, ``models/mobilevit_ctc/``): the research notes' proposal.

``lail_layers`` index the recognizer's own ``hidden_states`` as they index a TrOCR encoder's: for the CRNN
``0`` is the sequence after the CNN's column max-pool and ``k`` the output of BiLSTM layer k (the notes' taps are
``[0, 1]``); for MobileViT ``0..4`` are the stage maps max-pooled over height and ``5`` the sequence the head reads.
The CLM loss reaches only the layers below each tap: nothing above the highest tap (the upper BiLSTM layers, the
CTC head, the CRNN's shortcut) gets a LAIL gradient. Inference is pure CTC: without LLM inputs ``forward`` is the
recognizer's own, and :meth:`LailCtcRecognizer.without_lail` gives the plain recognizer the export writes.

Each family gets its LAIL class from :func:`lail_class` (the family's class with :class:`LailCtcRecognizer`
mixed in before it), so its weights keep their names and a checkpoint is the plain recognizer's state dict plus
``lail_connectors.*``; the strict resume rebuilds the class from ``config.lail``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch

from ..models.ctc_recognizer import CtcRecognizerOutput
from .taps import LailTaps


@dataclass
class LailCtcOutput(CtcRecognizerOutput):
    lail_losses: torch.FloatTensor | None = None  # (num_taps,): token-mean LLM loss per tapped layer


class LailCtcRecognizer(LailTaps):
    plain_class: type | None = None  # the recognizer family this LAIL class extends (set by lail_class)

    def __init__(self, config):
        super().__init__(config)
        self.init_lail(config)

    @classmethod
    def from_plain(cls, model, lail_config: dict, llm_hidden_size: int):
        """``model``'s weights (copied) in its family's LAIL class, with fresh connectors; the config, shared, gains
        the ``lail`` entry the strict resume rebuilds the connectors from."""
        config = model.config
        config.lail = {**lail_config, "llm_hidden_size": llm_hidden_size}
        lail_model = lail_class(type(model))(config)
        missing, unexpected = lail_model.load_state_dict(model.state_dict(), strict=False)
        if unexpected or any(not key.startswith("lail_connectors.") for key in missing):
            raise RuntimeError(f"{type(model).__name__} does not map onto its LAIL class: missing {missing}, "
                               f"unexpected {unexpected}")
        return lail_model.train(model.training)

    def without_lail(self):
        """The plain recognizer with this model's weights (copied) and a config without ``lail``: what inference
        and the export read. No connector, and never the LLM."""
        values = {key: value for key, value in self.config.to_dict().items() if key != "lail"}
        plain = self.plain_class(type(self.config).from_dict(values))
        wanted = plain.state_dict().keys()
        plain.load_state_dict({key: value for key, value in self.state_dict().items() if key in wanted},
                              strict=True)
        return plain.train(self.training)

    def forward(self, pixel_values: torch.Tensor, labels: torch.Tensor | None = None, llm_input_ids=None,
                llm_attention_mask=None, llm_labels=None, lail_only: bool = False,
                output_hidden_states: bool | None = None, return_dict: bool | None = None):
        """The recognizer's forward, plus ``lail_losses`` when ``llm_*`` inputs are given.

        ``lail_only=True`` (the connector-only stage) runs the recognizer frozen (:meth:`frozen_taps`), so only the
        connectors learn; it goes through forward, not a side method, so DDP still syncs connector grads."""
        if lail_only:
            hidden = self.frozen_taps(pixel_values)
            # The hidden states go out too, so the trainer scores the another-line control on this very batch.
            return LailCtcOutput(lail_losses=self.lail_losses(hidden, llm_input_ids, llm_attention_mask, llm_labels),
                                 hidden_states=hidden)
        if llm_input_ids is None or self.llm is None:
            return super().forward(pixel_values, labels=labels, output_hidden_states=output_hidden_states,
                                   return_dict=return_dict)
        outputs = super().forward(pixel_values, labels=labels, output_hidden_states=True, return_dict=True)
        lail_losses = self.lail_losses(outputs.hidden_states, llm_input_ids, llm_attention_mask, llm_labels)
        return LailCtcOutput(**outputs, lail_losses=lail_losses)

    def encode_for_lail(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return super().forward(pixel_values, output_hidden_states=True, return_dict=True).hidden_states

    def lail_hidden_states(self, outputs) -> tuple[torch.Tensor, ...]:
        return outputs.hidden_states


@functools.cache
def lail_class(family: type) -> type:
    """``family`` (e.g. ``CrnnForCTC``) with LAIL: one class per family, made once."""
    if issubclass(family, LailCtcRecognizer):
        return family
    return type(f"Lail{family.__name__}", (LailCtcRecognizer, family),
                {"__module__": __name__, "plain_class": family,
                 "__doc__": f"{family.__name__} with LAIL connectors on its hidden states ({__name__})."})
