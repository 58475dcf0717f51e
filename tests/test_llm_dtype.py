"""lail_llm_dtype auto: bfloat16 only where the training device computes it in hardware. Emulated bf16 made a
SmolLM2 step 25x slower than float32 on an AVX2 CPU, so the CPU recipes ask for auto, not bf16."""

import logging

import pytest
import torch

from trocr_lail.lail import llm as llm_module
from trocr_lail.lail.config import LailArguments
from trocr_lail.lail.llm import load_frozen_llm, native_bfloat16, resolve_llm_dtype

from conftest import save_tiny_llm


def cpu_probes(monkeypatch, avx512_bf16, amx=False):
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx, raising=False)


@pytest.mark.parametrize("avx512_bf16, amx, expected", [(True, False, torch.bfloat16), (False, True, torch.bfloat16),
                                                        (False, False, torch.float32)])
def test_auto_is_bfloat16_only_on_a_cpu_that_computes_it(monkeypatch, avx512_bf16, amx, expected):
    cpu_probes(monkeypatch, avx512_bf16, amx)
    assert native_bfloat16("cpu") == (expected is torch.bfloat16)
    assert resolve_llm_dtype("auto", "cpu") is expected
    assert resolve_llm_dtype("float32", "cpu") is torch.float32  # an explicit choice is kept


def test_a_torch_without_the_cpu_probes_counts_as_emulating(monkeypatch):
    monkeypatch.delattr(torch.cpu, "_is_avx512_bf16_supported", raising=False)
    monkeypatch.delattr(torch.cpu, "_is_amx_tile_supported", raising=False)
    assert not native_bfloat16("cpu") and resolve_llm_dtype("auto", "cpu") is torch.float32


def test_auto_on_cuda_follows_the_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: False)
    assert resolve_llm_dtype("auto", "cuda") is torch.float32
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: True)
    assert resolve_llm_dtype("auto", "cuda") is torch.bfloat16


def test_explicit_bfloat16_where_emulated_is_kept_with_a_warning(monkeypatch, caplog):
    cpu_probes(monkeypatch, False)
    with caplog.at_level(logging.WARNING, logger=llm_module.__name__):
        assert resolve_llm_dtype("bfloat16", "cpu") is torch.bfloat16
    assert "does not compute bfloat16 in hardware" in caplog.text and "auto picks float32" in caplog.text
    caplog.clear()
    cpu_probes(monkeypatch, True)
    with caplog.at_level(logging.WARNING, logger=llm_module.__name__):
        resolve_llm_dtype("bfloat16", "cpu")
    assert not caplog.text


def test_an_unknown_dtype_is_refused():
    with pytest.raises(ValueError, match="auto, float32, bfloat16, float16"):
        resolve_llm_dtype("float8", "cpu")


@pytest.mark.parametrize("native, expected", [(False, torch.float32), (True, torch.bfloat16)])
def test_the_llm_loads_in_the_resolved_dtype(tmp_path, monkeypatch, native, expected):
    cpu_probes(monkeypatch, native)
    path = save_tiny_llm(tmp_path / "llm")
    llm, _ = load_frozen_llm(LailArguments(lail=True, lail_llm=str(path), lail_llm_dtype="auto"))
    assert {p.dtype for p in llm.parameters()} == {expected}
    assert not any(p.requires_grad for p in llm.parameters())
