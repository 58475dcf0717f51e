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
