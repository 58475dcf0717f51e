"""Parameter-efficient fine-tuning: LoRA / DoRA adapters on the TrOCR encoder and/or decoder (peft).

Only the adapters train (plus LAIL connectors, which peft keeps fully trainable as ``modules_to_save``).
Checkpoints hold just those weights; the export merges the adapters into a plain VisionEncoderDecoder.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

PARTS = ("encoder", "decoder")
# Heads outside the transformer layers: the ViT pooler is unused by VisionEncoderDecoder, and adapting the
# decoder's output projection would tie a low-rank update to the tied token embeddings.
SKIPPED_LINEARS = ("pooler.dense", "output_projection")


@dataclass
class PeftArguments:
    use_peft: bool = field(
        default=False, metadata={"help": "Train LoRA (or DoRA) adapters instead of all TrOCR weights. Checkpoints "
                                         "hold only adapters (+ LAIL connectors); the export merges them."})
    use_dora: bool = field(default=False, metadata={"help": "Weight-decomposed LoRA (DoRA) instead of LoRA."})
    lora_r: int = field(default=16, metadata={"help": "Adapter rank."})
    lora_alpha: int = field(default=32, metadata={"help": "Adapter scaling numerator (scale = alpha / r)."})
    lora_dropout: float = field(default=0.05, metadata={"help": "Dropout on the adapter input."})
    lora_parts: list[str] = field(
        default_factory=lambda: list(PARTS), metadata={"help": "Where adapters go: encoder, decoder or both."})
    lora_target_modules: list[str] | None = field(
        default=None, metadata={"help": "Linear layers to adapt, by name suffix (e.g. q_proj v_proj); default: "
                                        "every Linear inside the transformer layers of lora_parts."})

    def __post_init__(self):
        unknown = sorted(set(self.lora_parts) - set(PARTS))
        if unknown or not self.lora_parts:
            raise ValueError(f"lora_parts must be a non-empty subset of {list(PARTS)}, got {self.lora_parts}")


def target_modules(model: nn.Module, args: PeftArguments) -> list[str]:
    """Full names of the Linear layers to adapt (exact names, so peft never matches outside ``lora_parts``)."""
    names = []
    for name, module in model.named_modules():
        if not isinstance(module, nn.Linear) or name.split(".")[0] not in args.lora_parts:
            continue
        if name.endswith(SKIPPED_LINEARS):
            continue
        if args.lora_target_modules and not any(name == t or name.endswith("." + t) for t in args.lora_target_modules):
            continue
        names.append(name)
    if not names:
        raise ValueError(f"No Linear layer matches lora_target_modules={args.lora_target_modules} in "
                         f"{args.lora_parts}")
    return names


def apply_peft(model: nn.Module, args: PeftArguments):
    """Wrap ``model`` in a PeftModel with adapters on the chosen Linear layers. LAIL connectors (if any) stay
    fully trainable and are saved with the adapters."""
    from peft import LoraConfig, get_peft_model

    connectors = [f"lail_connectors.{i}" for i in range(len(getattr(model, "lail_connectors", [])))]
    config = LoraConfig(r=args.lora_r, lora_alpha=args.lora_alpha, lora_dropout=args.lora_dropout,
                        use_dora=args.use_dora, target_modules=target_modules(model, args),
                        modules_to_save=connectors or None, bias="none")
    return get_peft_model(model, config)


def merged(model):
    """The model with adapters merged into its weights (no-op for models without adapters). Merging replaces the
    adapted layers in place, so call it once training and evaluation are over."""
    return model.merge_and_unload() if hasattr(model, "merge_and_unload") else model
