"""Sharding a frozen base across the training processes (PyTorch FSDP2) while the LoRA weights stay whole."""

from __future__ import annotations

from typing import Any

import torch

FSDP, NONE = "fsdp", "none"


def pick_sharding(setting: str, *, world: int, need_mb: float, budget_mb: float) -> str:
    """`fsdp` or `none` for a run of `world` processes: `auto` shards when a step's memory estimate with the
    whole base (`need_mb`) exceeds what one process may use (`budget_mb`) and there are processes to share it."""
    if world < 2:
        return NONE
    if setting != "auto":
        return setting
    return FSDP if need_mb > budget_mb else NONE


def shard_base(model: Any, device: str, world: int) -> set[torch.nn.Parameter]:
    """Split the frozen base's weights across the processes, layer by layer (`fully_shard`); returns the
    parameters left whole on every process.

    The LoRA matrices stay whole (they are small, trained, and averaged across processes as in plain data
    parallel training, so checkpoints and the saved adapter do not change), and so does the output layer: the
    chunked loss reads its weight directly, outside any module's forward, where FSDP would hand out only this
    process's shard. A tied input embedding stays whole with it. Each layer gathers its weights for its forward
    and backward and frees them after; the model should be loaded on the CPU, so no process ever holds the
    whole base on its device.
    """
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    lm = model.get_base_model()
    head = lm.get_output_embeddings()
    whole = {p for p in model.parameters() if p.requires_grad} | set(head.parameters())
    # the whole parameters live on the device before sharding (FSDP moves only the shards it manages)
    for module in model.modules():
        if any(p in whole for p in module.parameters(recurse=False)):
            module.to(device)
    mesh = init_device_mesh(device.split(":")[0], (world,))
    body = lm.get_decoder()
    for layer in body.layers:
        fully_shard(layer, mesh=mesh, ignored_params=whole)
    # the body as the root: its embedding and final norm are sharded too, and its forward (which the loss calls)
    # gathers them
    fully_shard(body, mesh=mesh, ignored_params=whole)
    return whole


def local_bytes(param: torch.Tensor) -> int:
    """Bytes this process holds of a parameter: its shard when sharded."""
    from torch.distributed.tensor import DTensor

    local = param.to_local() if isinstance(param, DTensor) else param
    return local.numel() * local.element_size()
