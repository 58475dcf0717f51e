"""The benchmark scripts run end to end on a tiny LLM (so they cannot rot), and report the numbers they claim."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

pytestmark = pytest.mark.slow


def test_lail_cost_runs_and_reports_every_configuration(capsys):
    import lail_cost

    times = lail_cost.main(["--llm", "tiny", "--batch", "2", "--repeats", "1", "--every_k", "2"])
    assert {"baseline", "checkpointing", *lail_cost.VARIANTS} <= set(times)
    assert all(t > 0 for t in times.values())
    table = capsys.readouterr().out
    assert table.count("\n| ") == 1 + len(lail_cost.VARIANTS) + 1 + 1  # header, variants, checkpointing, k=2


def test_gpu_check_runs_on_cpu_and_prints_every_row(capsys):
    """`make gpu-check` without CUDA: the smallest real shape, every row, with ratios against the reference."""
    import gpu_check

    table = gpu_check.main(["--steps", "2"])
    out = capsys.readouterr().out
    assert "no CUDA" in out and "trocr-small" in out
    rows = [row[2] for row in table]
    assert rows[:2] == ["notebook reference (fp32)", "baseline"]
    assert rows[2:] == [f"LAIL {c}, smollm2-135m" for c in gpu_check.CONNECTORS]
    assert all(row[3] > 0 and row[5] > 0 for row in table)  # samples/s and step ratio measured
    assert table[1][5] == 1.0
    linear = next(row for row in table if row[2].startswith("LAIL linear"))
    assert linear[5] > 1.0  # 578 prefix states through SmolLM2's 30 layers: well above the noise of 2 steps


def test_flop_count_matches_hand_arithmetic():
    import flops

    # Llama-3.2-1B per token: q,o 2*2048^2 + k,v 2*2048*512 + MLP 3*2048*8192 = 60.8M MACs per layer, x16 layers.
    per_token = 16 * (2 * 2048**2 + 2 * 2048 * 512 + 3 * 2048 * 8192)
    assert flops.llm_macs(flops.LLM_SHAPES["llama-3.2-1b"], 1, 0) == per_token + 16 * 2 * 2048
    assert flops.prefix_length("downsample", 577, blocks=4) == 37 and flops.prefix_length("linear", 577) == 577
    rows = {label: ratio for label, *_, ratio in flops.main([])}
    assert rows["earlier trocr-large/lail.yaml: linear, taps [6,12,18,24]"] > 8  # the issue's ~11x (LLM weight grads counted)
    assert rows["trocr-large/lail.yaml: downsample x16, taps [12, 24]"] <= 1.5
    assert 1 < rows["crnn/lail.yaml: downsample x4, taps [0, 1]"] < rows["linear, taps [0, 1]"]


def test_ctc_flops_count_the_crnn_as_the_reference_estimates():
    """The paper-era CRNN costs ~1.4x TrOCR-small per training line (shared/reference/ctc-recognizers.md, [est]);
    its taps are the pooled CNN output (128 frames x 256) and the BiLSTM layers' (128 x 512)."""
    import flops

    forward, states = flops.ctc_forward("crnn")
    assert states[:2] == [(128, 256), (128, 512)]
    assert 1.2 < 3 * forward / flops.baseline_flops("trocr-small") < 1.6


def test_data_stream_reports_both_inputs_and_the_worker_count(capsys):
    import data_stream

    rates = data_stream.main(["--lines", "8", "--batch", "4"])
    assert len(rates) == 2 and all(rate > 0 for rate in rates.values())
    table = capsys.readouterr().out
    assert "384x384" in table and "32x384 (quickstart)" in table and table.count("\n| ") == 2  # two rows after the header


def test_optimizer_benchmark_times_every_optimizer(capsys):
    import optimizer

    times = optimizer.main(["--batch", "2", "--repeats", "1"])
    assert set(times) == {"AdamW (torch, foreach)", "AdamW (torch, fused)", "Muon + AdamW (optim_muon)"}
    assert all(update > 0 and step > 0 for update, step in times.values())
    assert capsys.readouterr().out.count("\n| ") == 1 + 3  # header, then one row per optimizer


def test_lail_cpu_step_reports_every_lever(capsys, monkeypatch):
    import lail_cpu_step

    monkeypatch.setattr(lail_cpu_step, "native_bfloat16", lambda device_type: False)
    times = lail_cpu_step.main(["--llm", "tiny", "--batch", "8", "--repeats", "1", "--no_compile"])
    measured = {name for name, spec in lail_cpu_step.VARIANTS.items() if not spec[3]}
    assert {"baseline", lail_cpu_step.NO_CONTROL, *measured} <= set(times)
    table = capsys.readouterr().out
    # header, each measured variant, the 32-line variant's derived row, the no-control row and its derived row
    assert table.count("\n| ") == 1 + len(measured) + 1 + 2
    assert "(before: lail.yaml)" in table
    assert "bfloat16 emulated here" in table  # bf16 rows read differently on a CPU without bf16 hardware


def test_quickstart_models_reports_every_recipe(capsys):
    import quickstart_models

    facts = quickstart_models.main(["--batch", "2", "--repeats", "1", "--warmup", "0"])
    assert list(facts) == list(quickstart_models.RECIPES)
    assert all(fact["parameters"] > 0 and fact["s/step"] > 0 and fact["batch"] == 2 for fact in facts.values())
    assert facts["TrOCR (tiny)"]["optimizer"] == "MuonAdamW"  # optim_muon: true
    assert {facts[name]["optimizer"] for name in ("CRNN", "MobileViT-CTC")} == {"AdamW"}  # optim: adamw_torch
    assert [fact["input"] for fact in facts.values()] == [(3, 32, 384), (1, 32, 512), (1, 32, 768)]
    table = capsys.readouterr().out
    assert table.count("\n| ") == 1 + len(quickstart_models.RECIPES)  # header, then one row per recipe
    assert all(f"`{recipe}`" in table for recipe in quickstart_models.RECIPES.values())
