"""One data-parallel training run, started by torchrun on every node (see torch_ddp.lua).

Checks as it goes: an all-reduce of each rank's rank + 1 gives n(n+1)/2 on every rank; after a
few DDP steps of a linear model every rank holds the same weights and the loss fell. Runs on
CPUs (gloo) unless CUDA is there (nccl). `--fail-rank R` makes rank R fail after the all-reduce,
to show what a failing rank does to the others.
"""
import argparse
import os
import sys

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--fail-rank", type=int, default=-1)
    args = ap.parse_args()

    cuda = torch.cuda.is_available()
    dist.init_process_group("nccl" if cuda else "gloo")  # MASTER_ADDR etc. from torchrun
    rank, world = dist.get_rank(), dist.get_world_size()
    node = os.environ.get("SKYHOST_NODE", "?")
    device = torch.device("cuda", int(os.environ["LOCAL_RANK"])) if cuda else torch.device("cpu")

    total = torch.tensor([float(rank + 1)], device=device)
    dist.all_reduce(total)
    want = world * (world + 1) / 2
    print(f"allreduce rank {rank} node {node}: {total.item():.0f} (expected {want:.0f})", flush=True)
    assert total.item() == want

    if rank == args.fail_rank:
        print(f"rank {rank} failing on purpose", file=sys.stderr, flush=True)
        sys.exit(3)

    # y = 3x + 2 plus noise; each rank trains on its own samples.
    gen = torch.Generator().manual_seed(1000 + rank)
    x = torch.rand(256, 1, generator=gen)
    y = 3 * x + 2 + 0.01 * torch.randn(256, 1, generator=gen)
    x, y = x.to(device), y.to(device)
    torch.manual_seed(0)
    model = DDP(torch.nn.Linear(1, 1).to(device))
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    losses = []
    for _ in range(args.steps):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()  # gradients are averaged over every rank here
        opt.step()
        losses.append(loss.item())

    flat = torch.cat([p.detach().flatten() for p in model.parameters()])
    every = [torch.zeros_like(flat) for _ in range(world)]
    dist.all_gather(every, flat)
    same = all(torch.equal(every[0], w) for w in every)
    w, b = flat.tolist()
    print(f"ddp rank {rank} node {node}: loss {losses[0]:.4f} -> {losses[-1]:.4f}, "
          f"weights identical: {same}, w={w:.6f} b={b:.6f}", flush=True)
    assert same and losses[-1] < losses[0]
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
