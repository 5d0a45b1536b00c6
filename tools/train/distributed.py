"""Several training processes as one run (torchrun): where this process sits, the same stop step everywhere,
averaged LoRA gradients, and every process starting from the main process's state after a resume."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch


@dataclass
class Dist:
    """Where this process sits in a multi-process run (world 1 = a plain single-process run)."""

    rank: int = 0
    world: int = 1
    device: str = "cpu"

    @property
    def main(self) -> bool:
        """Only the main process writes events, checkpoints and the adapter."""
        return self.rank == 0


def setup_distributed() -> Dist:
    """Join the torchrun process group when launched by it (gloo on CPU, nccl on GPUs)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    cuda = torch.cuda.is_available()
    if world == 1:
        return Dist(device="cuda" if cuda else "cpu")
    import torch.distributed as dist

    local = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo")
    if cuda:
        torch.cuda.set_device(local)
    else:
        # processes share the cores: without this each would start a thread per core and thrash
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
    return Dist(rank=dist.get_rank(), world=world, device=f"cuda:{local}" if cuda else "cpu")


def agree(flag: bool, dist: Dist) -> bool:
    """In a multi-process run all processes stop at the same step if any one was asked to."""
    if dist.world == 1:
        return flag
    import torch.distributed as tdist

    t = torch.tensor([1.0 if flag else 0.0])
    tdist.all_reduce(t, op=tdist.ReduceOp.MAX)
    return bool(t.item())


def start_like_main(model: Any, optimizer: torch.optim.Optimizer, scheduler: Any, step: int, dist: Dist) -> int:
    """Every process starts from the main process's adapter, optimizer state and step: after a resume the other
    machines may have no checkpoint of their own (a run folder that is not shared)."""
    import torch.distributed as tdist
    from peft import get_peft_model_state_dict, set_peft_model_state_dict

    state: list[Any] = [None]
    if dist.main:
        state = [{"step": step, "adapter": {k: v.cpu() for k, v in get_peft_model_state_dict(model).items()},
                  "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}]
    tdist.broadcast_object_list(state, src=0)
    if not dist.main:
        set_peft_model_state_dict(model, state[0]["adapter"])
        optimizer.load_state_dict(state[0]["optimizer"])
        scheduler.load_state_dict(state[0]["scheduler"])
    return int(state[0]["step"])


def all_reduce_grads(params: list[torch.nn.Parameter], world: int) -> None:
    """Average the (small) LoRA gradients across processes: data-parallel training without a DDP wrapper."""
    import torch.distributed as tdist

    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        tdist.all_reduce(p.grad)
        p.grad /= world

