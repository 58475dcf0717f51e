"""Run configuration: model, data and training arguments, in the style of trl's ``*_config.py``."""

from __future__ import annotations

from dataclasses import dataclass, field

from transformers import Seq2SeqTrainingArguments


@dataclass
class ModelArguments:
    model_name_or_path: str = field(
        default="tiny",
        metadata={"help": "Hub id (e.g. microsoft/trocr-base-stage1), local model dir, 'config:trocr-small' / "
                          "'config:trocr-base' / 'config:trocr-large' (the published architectures with random "
                          "weights and a locally trained tokenizer, offline: trocr_lail/models/shapes.py), or "
                          "'tiny' (a small TrOCR-shaped model with a character tokenizer, offline, CPU-friendly)."},
    )
    processor_name_or_path: str | None = field(
        default=None, metadata={"help": "Processor to load if it differs from model_name_or_path."})
    revision: str = field(default="main", metadata={"help": "Hub revision (branch, tag or commit) to load."})
    trust_remote_code: bool = field(
        default=False, metadata={"help": "Allow custom modeling code from the Hub. Off: it runs arbitrary code."})
    strict_safetensors: bool = field(
        default=False, metadata={"help": "Refuse pickled .bin weights (model and LAIL LLM) and load safetensors only. "
                                         "Off: a checkpoint that publishes only pytorch_model.bin (e.g. "
                                         "microsoft/trocr-*-handwritten) loads through transformers' "
                                         "torch.load(weights_only=True), which runs no code; a log line says so."})
    image_resample: str | None = field(
        default=None, metadata={"help": "Resize filter of the image processor: bilinear, bicubic, nearest or lanczos "
                                        "(default: the processor's own; the Hub TrOCR processors resize bilinear, the "
                                        "paper's fairseq pipeline bicubic)."})
    max_target_length: int = field(
        default=128, metadata={"help": "Transcriptions longer than this many tokens (EOS included) are truncated, "
                                       "and counted in a warning."})
    extend_vocabulary: bool = field(
        default=False, metadata={"help": "Before training, add every character of the training texts that the "
                                         "tokenizer cannot encode (unknown token, or no round trip) as a new token, "
                                         "growing the decoder's embeddings and output projection; new rows start "
                                         "from the rows of the character's NFKD parts, else the mean row "
                                         "(trocr_lail/models/vocabulary.py). Off: such characters are an error "
                                         "naming them (`trocr-lail validate` lists them)."})
    tiny_image_height: int = field(default=32, metadata={"help": "tiny model: input height in pixels."})
    tiny_image_width: int = field(default=384, metadata={"help": "tiny model: input width in pixels."})
    tiny_patch_size: list[int] = field(
        default_factory=lambda: [8, 8], metadata={"help": "tiny model: ViT patch [height, width]."})
    tiny_encoder_layers: int = field(default=4, metadata={"help": "tiny model: ViT encoder layers."})
    tiny_encoder_dim: int = field(default=128, metadata={"help": "tiny model: ViT hidden size."})
    tiny_decoder_layers: int = field(default=2, metadata={"help": "tiny model: TrOCR decoder layers."})
    tiny_decoder_dim: int = field(default=128, metadata={"help": "tiny model: TrOCR decoder hidden size."})
    tiny_dropout: float = field(default=0.1, metadata={"help": "tiny model: dropout in encoder and decoder."})
    ctc_upsample: int = field(
        default=1, metadata={"help": "CTC head (ctc_weight > 0): frames emitted per encoder patch column. Raise it "
                                     "when lines have more characters than the encoder has patch columns."})


@dataclass
class DataArguments:
    dataset_name: str | None = field(
        default=None, metadata={"help": "Hub dataset id, e.g. Teklia/IAM-line. Mutually exclusive with data_dir "
                                        "and synthetic."})
    dataset_config_name: str | None = field(default=None, metadata={"help": "Hub dataset configuration name."})
    data_dir: str | None = field(
        default=None, metadata={"help": "Local folder with one sub-folder per split, each holding image files and "
                                        "metadata.jsonl or metadata.csv with columns file_name and text."})
    synthetic: bool = field(
        default=False, metadata={"help": "Render synthetic handwriting lines (real English text, handwriting fonts, "
                                         "font-level split: test fonts never seen in training)."})
    synthetic_train_samples: int = field(default=20000, metadata={"help": "synthetic: training lines."})
    synthetic_eval_samples: int = field(default=500, metadata={"help": "synthetic: validation and test lines each."})
    synthetic_seed: int = field(default=0, metadata={"help": "synthetic: rendering seed (data is a pure function "
                                                             "of it)."})
    synthetic_min_aspect: float = field(
        default=12.0, metadata={"help": "synthetic: pad short lines on the right to this width/height ratio, so "
                                        "characters keep a similar scale after resizing (match the model input)."})
    synthetic_stream: bool = field(
        default=False, metadata={"help": "synthetic: render the training split on the fly in the DataLoader workers "
                                         "(nothing stored; synthetic_train_samples lines per epoch, read in index "
                                         "order; exact resume). Validation/test stay rendered once and cached."})
    synthetic_text_files: list[str] = field(
        default_factory=list, metadata={"help": "synthetic: more UTF-8 text files to take lines from, mixed with "
                                                "corpus_file / the bundled prose (each source equally likely)."})
    synthetic_font_dir: str | None = field(
        default=None, metadata={"help": "synthetic: folder of extra TTF/OTF training fonts (searched recursively; "
                                        "never used for validation/test)."})
    synthetic_train_fonts: list[str] = field(
        default_factory=list, metadata={"help": "synthetic: the training hands as TTF/OTF files, folders or glob "
                                                "patterns, instead of the toolkit's fontpkg fonts (which are Latin "
                                                "only): how another script gets its fonts. Printed lines still use "
                                                "the toolkit's Latin printed fonts: set synthetic_printed_share: 0 "
                                                "for a script they lack."})
    synthetic_validation_fonts: list[str] = field(
        default_factory=list, metadata={"help": "synthetic: the validation hands (as synthetic_train_fonts); a "
                                                "file with a training file's bytes is refused."})
    synthetic_test_fonts: list[str] = field(
        default_factory=list, metadata={"help": "synthetic: the held-out test hands (as synthetic_train_fonts); a "
                                                "file with a training file's bytes is refused."})
    synthetic_target_fonts: str | None = field(
        default=None, metadata={"help": "synthetic: a target writer's hand for adaptation, a TTF/OTF file or a folder "
                                        "of them: every split (train, validation, test) is rendered in it, from "
                                        "disjoint text, instead of the toolkit's font split. Refused, naming the "
                                        "font, when stage 1 was given it (the toolkit's fonts or "
                                        "synthetic_stage1_font_dir)."})
    synthetic_stage1_font_dir: str | None = field(
        default=None, metadata={"help": "synthetic_target_fonts: the synthetic_font_dir stage 1 trained with, if "
                                        "any; a target font found in it is refused too."})
    synthetic_printed_share: float = field(
        default=0.1, metadata={"help": "synthetic: share of training lines in printed fonts (0 = handwriting only)."})
    synthetic_max_chars: int = field(
        default=90, metadata={"help": "synthetic: longest line in characters (sentences are laid out at IAM-like "
                                      "widths and broken at spaces; mean about 43)."})
    corpus_file: str | None = field(
        default=None, metadata={"help": "synthetic: plain-text file (UTF-8; .gz: gzipped) to take lines from, in "
                                        "any script (default: Botchan, Project Gutenberg #8868, from the "
                                        "sentencepiece sdist)."})
    image_column: str = field(default="image", metadata={"help": "Column holding the line image."})
    text_column: str = field(default="text", metadata={"help": "Column holding the transcription."})
    train_split: str = field(default="train", metadata={"help": "Split to train on."})
    validation_split: str | None = field(
        default="validation", metadata={"help": "Split evaluated during training; null to skip."})
    test_split: str | None = field(default="test", metadata={"help": "Split for the final test CER; null to skip."})
    test_degradations: list[str] = field(
        default_factory=list, metadata={"help": "Also test on degraded copies of the test split: blur, low_contrast, "
                                                "ink_gaps, noise (trocr_lail/evaluation/degradations.py)."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Truncate the training split."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Truncate validation and test splits."})
    validate_images: bool = field(
        default=True, metadata={"help": "Before training, decode every image of every split once (main process) "
                                        "to catch unreadable, empty or absurdly sized files; false checks text "
                                        "only (for a large dataset already checked with `trocr-lail validate`)."})
    skip_bad_samples: bool = field(
        default=False, metadata={"help": "Drop rows that fail validation, and images that fail to decode during "
                                         "training, counting them (reported before training and at the end), "
                                         "instead of stopping with an error naming them."})
    augment: str = field(
        default="light", metadata={"help": "Training-split augmentation: 'da2' (the TrOCR paper's DA2: one of seven "
                                           "transforms per image, then a bicubic resize to the input size), 'light' "
                                           "(milder rotation/blur/dilation/erosion/rescale, greyscale) or 'none'. "
                                           "true = light, false = none."})
    preprocess_images: bool = field(
        default=False, metadata={"help": "Resize every image once at load time and store uint8 pixels (cached by "
                                         "datasets), so training steps do no image work. Needs augment: none."})

    def __post_init__(self):
        from .data.augment import augment_mode

        self.augment = augment_mode(self.augment)
        if self.preprocess_images and self.augment != "none":
            raise ValueError("preprocess_images needs augment: none (augmentation works on the original images)")


@dataclass
class TrainingArguments(Seq2SeqTrainingArguments):
    """Seq2SeqTrainingArguments with defaults for text-line recognition and a few toolkit options."""

    predict_with_generate: bool = field(
        default=True, metadata={"help": "Evaluate by generating text, so eval/test CER is measured."})
    remove_unused_columns: bool = field(
        default=False, metadata={"help": "Kept False: the collator needs the raw image and text columns."})
    export: bool = field(
        default=True, metadata={"help": "Write <output_dir>/export: a plain VisionEncoderDecoderModel with "
                                        "processor and generation config, loadable by pipeline('image-to-text')."})
    num_preview_predictions: int = field(
        default=5, metadata={"help": "Test predictions printed next to the truth at the end."})
    nonfinite_loss_policy: str = field(
        default="stop", metadata={"help": "When a loss term (s2s or a LAIL tap) is NaN/inf: 'skip' drops that "
                                          "optimizer step's update and goes on; 'stop' drops it, saves a checkpoint "
                                          "and stops with an error naming the step and term."})
    early_stopping_patience: int | None = field(
        default=None, metadata={"help": "Stop after this many evaluations without improving metric_for_best_model."})
    hub_dry_run: bool = field(
        default=False, metadata={"help": "With push_to_hub: write <output_dir>/hub_upload (exactly what would be "
                                         "pushed: export, model card, lail/ sidecar) and upload nothing."})
    hub_license: str | None = field(
        default=None, metadata={"help": "License id for the model card (mit, apache-2.0, cc-by-4.0, ...). Default: "
                                        "the base checkpoint's known license (mit for microsoft/trocr-*). Pushing "
                                        "without one is refused; 'other' is accepted when set explicitly."})
    hub_lail_sidecar: bool = field(
        default=True, metadata={"help": "With push_to_hub on a LAIL run: also push lail/ (connector weights and "
                                        "config, never the LLM) so LAIL training can continue from the Hub model."})
    warmup_init_lr: float | None = field(
        default=None, metadata={"help": "With lr_scheduler_type inverse_sqrt: warm up linearly from this learning rate "
                                        "instead of 0, as fairseq's --warmup-init-lr (the TrOCR paper: 1e-8)."})
    lr_step_milestones: list[float] | None = field(
        default=None, metadata={"help": "With lr_scheduler_type constant: multiply the learning rate by lr_step_gamma "
                                        "at each of these fractions of the training steps (HTR best practices: "
                                        "[0.5, 0.75] with 0.1)."})
    lr_step_gamma: float = field(default=0.1, metadata={"help": "The factor of lr_step_milestones."})
    ctc_weight: float = field(
        default=0.0, metadata={"help": "Hybrid CTC/attention: add a training-only CTC head on the last encoder layer "
                                       "and train with loss = s2s + ctc_weight * CTC (0 = off). The head is left "
                                       "out of the export. Speeds up learning where to look "
                                       "(trocr_lail/models/ctc.py). A model_name_or_path that is a run's "
                                       "output_dir continues its trained head; its export/ has none."})
    ctc_guided_attention: float = field(
        default=0.0, metadata={"help": "With ctc_weight > 0: add this weight times -log(the decoder's cross-attention "
                                       "mass near each character's CTC-aligned column) to the loss, so the decoder "
                                       "learns where to look from the CTC head "
                                       "(trocr_lail/training/guided_attention.py). Training only; 0 = off."})
    optim_muon: bool = field(
        default=False, metadata={"help": "Train the transformer blocks' weight matrices with Muon and everything else "
                                         "with AdamW, at one learning rate and schedule "
                                         "(trocr_lail/training/optim.py). Replaces `optim`."})

    def __post_init__(self):
        super().__post_init__()
        if self.warmup_init_lr is not None and self.lr_scheduler_type.value != "inverse_sqrt":
            raise ValueError("warmup_init_lr needs lr_scheduler_type: inverse_sqrt")
        if self.lr_step_milestones is not None and (self.lr_scheduler_type.value != "constant" or
                                                    not all(0 < m < 1 for m in self.lr_step_milestones)):
            raise ValueError("lr_step_milestones needs lr_scheduler_type: constant and fractions between 0 and 1")
        if self.ctc_weight < 0:
            raise ValueError(f"ctc_weight must be >= 0, not {self.ctc_weight}")
        if self.ctc_guided_attention < 0 or (self.ctc_guided_attention and not self.ctc_weight):
            raise ValueError("ctc_guided_attention must be >= 0 and needs ctc_weight > 0 (the CTC head aligns)")
