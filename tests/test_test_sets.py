"""A run's test-time outputs: per-line predictions of every test set, the CTC branch's CER, degraded test sets,
and LAIL diagnostics in the logs and plots, through the real recipe path (tiny models, a tiny Llama)."""

import json

import pytest

from trocr_lail.evaluation.metrics import cer

from conftest import TINY_ARGS, save_tiny_llm


@pytest.mark.slow
def test_recipe_run_reports_both_branches_on_clean_and_degraded_sets(tmp_path):
    from trocr_lail.run import main

    out = tmp_path / "run"
    main(TINY_ARGS + [
        "--synthetic", "true", "--synthetic_train_samples", "16", "--synthetic_eval_samples", "6",
        "--augment", "false", "--preprocess_images", "true", "--ctc_weight", "0.5", "--ctc_upsample", "2",
        "--test_degradations", "blur", "ink_gaps",
        "--lail", "true", "--lail_llm", str(save_tiny_llm(tmp_path / "llm")), "--lail_layers", "1", "2",
        "--max_steps", "2", "--per_device_train_batch_size", "8", "--output_dir", str(out), "--report_to", "none",
        "--use_cpu", "true", "--save_strategy", "no", "--generation_max_length", "8", "--logging_steps", "1",
        "--export", "false",
    ])
    results = json.loads((out / "test_results.json").read_text())
    for test_set in ("test", "test_blur", "test_ink_gaps"):
        rows = [json.loads(line) for line in (out / f"{test_set}_predictions.jsonl").read_text().splitlines()]
        assert len(rows) == 6
        texts = [row["text"] for row in rows]
        assert results[f"{test_set}_cer"] == pytest.approx(cer(texts, [row["prediction"] for row in rows]))
        assert results[f"{test_set}_ctc_cer"] == pytest.approx(cer(texts, [row["ctc_prediction"] for row in rows]))
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    assert {"lail_uncond_loss", "lail_prefix_info_layer_1", "lail_grad_ratio_layer_2"} <= set(history[0])
    assert (out / "lail_diagnostics.png").stat().st_size > 5000
