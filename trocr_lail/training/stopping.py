"""Early stopping that ignores the evaluations of a stage in which recognition cannot change."""

from __future__ import annotations

from transformers import EarlyStoppingCallback


class StagedEarlyStopping(EarlyStoppingCallback):
    """``EarlyStoppingCallback`` counting only evaluations after optimizer step ``start_step``.

    LAIL's connector-only stage (``lail_connector_only_steps``) leaves the recognizer at its starting weights, so
    every evaluation in it reads the same CER: counted, they would spend the patience before the recognizer has
    taken a step. They still run (and log the prefix diagnostics) and still set the best metric to beat.
    """

    def __init__(self, early_stopping_patience: int = 1, early_stopping_threshold: float | None = 0.0,
                 start_step: int = 0):
        super().__init__(early_stopping_patience, early_stopping_threshold)
        self.start_step = start_step

    def on_evaluate(self, args, state, control, metrics, **kwargs):
        if state.global_step <= self.start_step:
            return
        super().on_evaluate(args, state, control, metrics, **kwargs)

    def state(self) -> dict:  # resume rebuilds the callback from this (ExportableState)
        saved = super().state()
        saved["args"]["start_step"] = self.start_step
        return saved
