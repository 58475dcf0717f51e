"""Worker for tests/test_ddp_exit.py: a few DDP steps over gloo, the end-of-training gather of the logged metrics,
and rank 0 busy a little longer (as when it writes the export), run through the CLI's ``run_script`` as
``recipes/finetune.py`` runs, then exit. ``fail`` makes rank 1 raise a user error after the steps."""

import sys
import time

import torch
import torch.distributed as dist

from trocr_lail.cli import run_script


def train(argv: list[str]) -> None:
    dist.init_process_group("gloo")
    torch.manual_seed(0)
    layers = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU(), torch.nn.Linear(64, 1))
    model = torch.nn.parallel.DistributedDataParallel(layers)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(3):
        model(torch.randn(8, 64)).square().mean().backward()
        optimizer.step()
        optimizer.zero_grad()
    logged = [None] * dist.get_world_size()
    dist.all_gather_object(logged, {"train_loss": 1.0})
    if dist.get_rank() == 0:
        time.sleep(0.5)
    if argv == ["fail"] and dist.get_rank() == 1:
        raise ValueError("rank 1 was told to fail")


if __name__ == "__main__":
    torch.set_num_threads(1)
    sys.exit(run_script("ddp-exit", train, sys.argv[1:]))
