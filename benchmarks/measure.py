"""Measuring helpers that import nothing but torch, so GPU runs (benchmarks/gpu_check.py) need no datasets or
other data-side packages."""

from __future__ import annotations

import torch


def saved_activation_bytes(fn, exclude: set[int]) -> int:
    """Bytes of distinct tensors autograd saves while ``fn`` runs, leaving out storages in ``exclude`` (weights)."""
    storages = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in exclude:
            storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        fn()
    return sum(storages.values())


def print_table(headers: list[str], table: list[list]) -> None:
    """A Markdown table, ready to paste into benchmarks/README.md."""
    cells = [[f"{c:.3g}" if isinstance(c, float) else str(c) for c in row] for row in table]
    print("| " + " | ".join(headers) + " |")
    print("|" + "|".join("---" for _ in headers) + "|")
    for row in cells:
        print("| " + " | ".join(row) + " |")
