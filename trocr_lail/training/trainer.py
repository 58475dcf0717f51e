"""Seq2SeqTrainer with an exactly normalised token loss.

Trainer passes ``num_items_in_batch`` (target tokens in the whole optimizer step: all gradient-accumulation
micro-batches, all processes) only to models that declare they use it. VisionEncoderDecoderModel accepts
``**kwargs`` but ignores it, which silently mis-scales the loss. Here the loss is the token-summed cross-entropy
divided by that count, so ``gradient_accumulation_steps=2, batch=b`` gives the same loss and gradients as
``batch=2b``, also when line lengths differ between micro-batches.

With ``ctc_weight > 0`` (hybrid CTC/attention, ``trocr_lail/models/ctc.py``) the loss is
``(sum_tokens CE + ctc_weight * sum_lines CTC) / num_items_in_batch``: the CTC term is normalised by the same
target-token count, so it is exact under accumulation too. Component losses (``s2s_loss``, ``ctc_loss``, both
per target token of the micro-batch) are logged next to ``loss``.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from pathlib import Path

import torch
import torch.nn.functional as F
from transformers import Seq2SeqTrainer
from transformers.trainer import TRAINER_STATE_NAME, TRAINING_ARGS_NAME
from transformers.trainer_callback import TrainerState
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, TrainOutput

from ..models.ctc_decoding import ctc_loss_sum
from .checkpoints import disk_full_guard
from .guided_attention import ctc_align, guided_attention_loss_sum
from .nonfinite import NonFiniteLossGuard

logger = logging.getLogger("trocr_lail")


def token_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, num_items_in_batch=None,
                        label_smoothing: float = 0.0) -> torch.Tensor:
    """Sum of per-token CE over non-ignored labels, divided by ``num_items_in_batch`` (default: their count)."""
    total = F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=-100,
                            reduction="sum", label_smoothing=label_smoothing)
    count = labels.ne(-100).sum() if num_items_in_batch is None else num_items_in_batch
    return total / torch.as_tensor(count, device=total.device).clamp(min=1)


class LineRecognitionTrainer(Seq2SeqTrainer):
    recognition_term = "s2s"  # the recognition loss's name in non-finite reports

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # We consume num_items_in_batch in compute_loss, so Trainer must count tokens and not divide by the
        # accumulation steps a second time.
        self.model_accepts_loss_kwargs = True
        self._metrics = {"train": defaultdict(list), "eval": defaultdict(list)}
        self.nonfinite = NonFiniteLossGuard(getattr(self.args, "nonfinite_loss_policy", "stop"))
        self.add_callback(self.nonfinite)
        if self.ctc_weight and getattr(self.accelerator.unwrap_model(self.model), "ctc_head", None) is None:
            raise ValueError("ctc_weight > 0 needs a model with a CTC head (CtcVisionEncoderDecoderModel.from_plain)")

    def _get_train_sampler(self, *args, **kwargs):
        # A synthetic stream's items are random draws already: read in order, it needs no epoch-sized permutation
        # in memory, and resume continues at the next line (data/stream.py).
        dataset = args[0] if args else kwargs.get("train_dataset") or self.train_dataset
        if getattr(dataset, "in_order", False):
            return torch.utils.data.SequentialSampler(dataset)
        return super()._get_train_sampler(*args, **kwargs)

    @property
    def ctc_weight(self) -> float:
        return getattr(self.args, "ctc_weight", 0.0) or 0.0

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        loss, outputs = self.recognition_step(model, inputs, num_items_in_batch)
        self.check_finite(model, **{self.recognition_term: loss})
        return (loss, outputs) if return_outputs else loss

    def recognition_step(self, model, inputs, num_items_in_batch=None, **model_inputs):
        """``(recognition loss, outputs)`` of one micro-batch; ``model_inputs`` go to the model as well (LAIL's
        LLM inputs), so LAIL adds its term to whatever loss the recognizer trains with."""
        outputs = model(pixel_values=inputs["pixel_values"], labels=inputs["labels"], **model_inputs)
        return self.recognition_loss(outputs, inputs["labels"], num_items_in_batch), outputs

    def create_optimizer(self, model=None):
        if getattr(self.args, "optim_muon", False) and self.optimizer is None:
            from .optim import build_muon_adamw

            model = self.model if model is None else model
            self.optimizer = build_muon_adamw(model, self.args, self.get_decay_parameter_names(model))
            return self.optimizer
        return super().create_optimizer(model)

    def create_scheduler(self, num_training_steps: int, optimizer=None):
        init = getattr(self.args, "warmup_init_lr", None)
        if init is not None and self.lr_scheduler is None:
            from .schedules import fairseq_inverse_sqrt

            steps = self.args.get_warmup_steps(num_training_steps)
            self.lr_scheduler = fairseq_inverse_sqrt(optimizer or self.optimizer, steps, init)
            self._created_lr_scheduler = True
            return self.lr_scheduler
        milestones = getattr(self.args, "lr_step_milestones", None)
        if milestones and self.lr_scheduler is None:
            from .schedules import step_decay

            self.lr_scheduler = step_decay(optimizer or self.optimizer, num_training_steps, milestones,
                                           self.args.lr_step_gamma)
            self._created_lr_scheduler = True
            return self.lr_scheduler
        return super().create_scheduler(num_training_steps, optimizer)

    def check_finite(self, model, **terms) -> None:
        """Report non-finite loss terms of a training micro-batch (see ``nonfinite.py`` for what happens next)."""
        if model.training:
            self.nonfinite.check(terms, self.state.global_step)

    def recognition_loss(self, outputs, labels: torch.Tensor, num_items_in_batch=None) -> torch.Tensor:
        """The seq2seq loss, plus ``ctc_weight`` times the CTC loss when the model returns CTC logits."""
        loss = self.s2s_loss(outputs, labels, num_items_in_batch)
        ctc_logits = getattr(outputs, "ctc_logits", None)
        if not self.ctc_weight or ctc_logits is None:
            return loss
        model = self.accelerator.unwrap_model(self.model)
        config = model.config
        ctc_sum = ctc_loss_sum(ctc_logits, labels, blank_id=config.pad_token_id, eos_token_id=config.eos_token_id)
        self.record("ctc_loss", ctc_sum.detach() / labels.ne(-100).sum().clamp(min=1))
        loss = loss + self.ctc_weight * self._per_item(ctc_sum, labels, num_items_in_batch)
        guide_weight = getattr(self.args, "ctc_guided_attention", 0.0)
        if guide_weight and getattr(outputs, "cross_attentions", None):
            frames = ctc_align(ctc_logits, labels, blank_id=config.pad_token_id, eos_token_id=config.eos_token_id)
            guide_sum = guided_attention_loss_sum(outputs.cross_attentions, frames, model.ctc_grid,
                                                  model.ctc_upsample)
            self.record("attention_guide_loss", guide_sum.detach() / frames.ge(0).sum().clamp(min=1))
            loss = loss + guide_weight * self._per_item(guide_sum, labels, num_items_in_batch)
        return loss

    def s2s_loss(self, outputs, labels: torch.Tensor, num_items_in_batch=None) -> torch.Tensor:
        total = token_cross_entropy(outputs.logits, labels, num_items_in_batch=1,
                                    label_smoothing=self.args.label_smoothing_factor)
        self.record("s2s_loss", total.detach() / labels.ne(-100).sum().clamp(min=1))
        return self._per_item(total, labels, num_items_in_batch)

    def count_items(self, labels: torch.Tensor) -> torch.Tensor:
        """What a summed loss is divided by: target tokens (Trainer's ``num_items_in_batch`` counts the same)."""
        return labels.ne(-100).sum()

    def _per_item(self, total: torch.Tensor, labels: torch.Tensor, num_items_in_batch=None) -> torch.Tensor:
        """A summed loss divided by the items (``count_items``) of the optimizer step (default: of this
        micro-batch)."""
        count = self.count_items(labels) if num_items_in_batch is None else num_items_in_batch
        loss = total / torch.as_tensor(count, device=total.device).clamp(min=1)
        if num_items_in_batch is not None and self.args.average_tokens_across_devices:
            # num_items_in_batch counts every process's tokens and DDP averages gradients: undo the average.
            loss = loss * self.accelerator.num_processes
        return loss

    def record(self, key: str, value, mode: str | None = None) -> None:
        """Buffer a component loss (float or tensor; tensors are read only when logged, so no per-step sync) for
        ``mode`` ('train' or 'eval'; default: from the model's training flag)."""
        self._metrics[mode or ("train" if self.model.training else "eval")][key].append(value)

    def log(self, logs: dict, *args, **kwargs) -> None:
        """Merge the buffered component losses, averaged over the logging interval and across processes."""
        mode = "eval" if any(key.startswith("eval_") for key in logs) else "train"
        prefix = "eval_" if mode == "eval" else ""
        for key, values in self._metrics[mode].items():
            if values:
                mean = torch.tensor([float(v) for v in values]).mean().to(self.args.device)
                logs[prefix + key] = self.accelerator.reduce(mean, reduction="mean").item()
        self._metrics[mode].clear()
        super().log(logs, *args, **kwargs)

    def train(self, resume_from_checkpoint=None, *args, **kwargs):
        """Trainer takes a step before it checks ``max_steps``: resumed from its final checkpoint (a run cut off
        during its test, say), a run would train past ``max_steps`` and could keep that extra step as its best.
        Such a run has finished training: restore the checkpoint's state and its best (or last) model instead."""
        if isinstance(resume_from_checkpoint, (str, Path)) and self.args.max_steps > 0:
            state = TrainerState.load_from_json(str(Path(resume_from_checkpoint) / TRAINER_STATE_NAME))
            if state.global_step >= self.args.max_steps:
                logger.info("%s is at max_steps=%d: training is done, nothing to resume.", resume_from_checkpoint,
                            self.args.max_steps)
                self.state = state
                if self.args.load_best_model_at_end and state.best_model_checkpoint is not None:
                    self._load_best_model()
                else:
                    self._load_from_checkpoint(resume_from_checkpoint)
                return TrainOutput(state.global_step, float("nan"), {})
        return super().train(resume_from_checkpoint, *args, **kwargs)

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
        """Strict resume. Trainer loads a checkpoint's raw state dict non-strictly, but transformers 5.x saves some
        architectures (ViT among them) under legacy key names that only ``from_pretrained`` converts back: the
        encoder would silently restart from its initial weights. Reload through ``from_pretrained`` and refuse
        any weight the checkpoint lacks (a LAIL connector, say)."""
        target = self.accelerator.unwrap_model(model or self.model)
        if not hasattr(target, "config") or hasattr(target, "peft_config"):
            return super()._load_from_checkpoint(resume_from_checkpoint, model=model)
        reloaded, info = type(target).from_pretrained(resume_from_checkpoint, config=target.config,
                                                      use_safetensors=True, output_loading_info=True)
        if info["missing_keys"]:
            missing = sorted(info["missing_keys"])
            raise RuntimeError(f"Checkpoint {resume_from_checkpoint} lacks {len(missing)} weights the model has "
                               f"(e.g. {missing[:3]}); refusing to resume with freshly initialised weights.")
        target.load_state_dict(reloaded.state_dict(), strict=True)

    def _load_best_model(self) -> None:
        """``load_best_model_at_end`` through the same strict reload: Trainer's own non-strict load of the best
        checkpoint would keep the ViT encoder layers of the *last* step next to the best step's other weights."""
        target = self.accelerator.unwrap_model(self.model)
        if self.is_deepspeed_enabled or self.is_fsdp_enabled or not hasattr(target, "config") or \
                hasattr(target, "peft_config"):
            return super()._load_best_model()
        logger.info("Loading best model from %s (score: %s).", self.state.best_model_checkpoint,
                    self.state.best_metric)
        self._load_from_checkpoint(self.state.best_model_checkpoint)

    def _save_checkpoint(self, model, trial) -> None:
        """A checkpoint save that runs out of disk space stops with one plain error and keeps the last complete
        checkpoint (``checkpoints.disk_full_guard``)."""
        name = f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
        with disk_full_guard(name, Path(self._get_output_dir(trial=trial)) / name, self.args.output_dir):
            super()._save_checkpoint(model, trial)

    def _save(self, output_dir: str | None = None, state_dict=None) -> None:
        """Save as Trainer does, but the training arguments as JSON (``*_token`` fields redacted) instead of the
        pickled ``training_args.bin``: nothing this toolkit writes needs unpickling to read."""
        super()._save(output_dir, state_dict=state_dict)
        output_dir = Path(output_dir if output_dir is not None else self.args.output_dir)
        if self.args.should_save:
            (output_dir / TRAINING_ARGS_NAME).unlink(missing_ok=True)
            (output_dir / "training_args.json").write_text(self.args.to_json_string() + "\n")
