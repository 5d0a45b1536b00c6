"""Causal-LM loss without full-vocabulary logits: the output layer runs in token chunks, label tokens only."""

from __future__ import annotations

import importlib.util
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from tools.train.data import IGNORE


def _unwrap(model: Any) -> Any:
    """The plain transformers causal LM under a DDP or peft wrapper (LoRA layers live inside it either way)."""
    if isinstance(model, torch.nn.parallel.DistributedDataParallel):
        model = model.module
    from peft import PeftModel

    if isinstance(model, PeftModel):
        model = model.get_base_model()
    return model


def _chunk_ce(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, softcap: float | None) -> torch.Tensor:
    logits = F.linear(hidden, weight).float()
    if softcap:
        logits = torch.tanh(logits / softcap) * softcap
    return F.cross_entropy(logits, targets, reduction="sum")


def _liger_available(device: torch.device) -> bool:
    return device.type == "cuda" and importlib.util.find_spec("liger_kernel") is not None


def lm_loss(model: Any, batch: dict[str, torch.Tensor], chunk_size: int | None = 1024) -> tuple[torch.Tensor, int]:
    """Mean cross-entropy over the batch's label tokens, and how many there were.

    The model body runs to hidden states; only positions whose next token is a label go through
    the output layer, `chunk_size` tokens at a time, each chunk recomputed in the backward pass,
    so the (tokens × vocabulary) logits never exist at once. On CUDA, Liger's fused linear
    cross-entropy does the same in one kernel when it is installed. `chunk_size=None` = one chunk.
    Labels may stay on the CPU while the inputs are on the GPU: selecting the label positions then
    needs no round trip to the device.
    """
    lm = _unwrap(model)
    body = lm.get_decoder()
    head = lm.get_output_embeddings()
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "position_ids") if k in batch}
    hidden = body(**inputs, use_cache=False).last_hidden_state
    # position t predicts token t+1
    hidden = hidden[:, :-1].reshape(-1, hidden.size(-1))
    targets = batch["labels"][:, 1:].reshape(-1)
    if targets.device == hidden.device:
        keep = targets != IGNORE
        hidden, targets = hidden[keep], targets[keep]
    else:
        # labels left on the host (as the engine does): which rows to keep is known without waiting for the GPU
        rows = (targets != IGNORE).nonzero().squeeze(1)
        targets = targets[rows].to(hidden.device, non_blocking=True)
        hidden = hidden.index_select(0, rows.to(hidden.device, non_blocking=True))
    count = int(targets.numel())
    if count == 0:
        return hidden.sum() * 0.0, 0
    weight = head.weight
    softcap = getattr(lm.config, "final_logit_softcapping", None)
    if _liger_available(hidden.device) and not softcap:
        from liger_kernel.transformers import LigerFusedLinearCrossEntropyLoss

        loss_fn = LigerFusedLinearCrossEntropyLoss(reduction="sum")
        return loss_fn(weight, hidden, targets) / count, count
    step = chunk_size or count
    total = hidden.new_zeros((), dtype=torch.float32)
    for start in range(0, count, step):
        h, t = hidden[start: start + step], targets[start: start + step]
        if step < count and torch.is_grad_enabled():
            total = total + checkpoint(_chunk_ce, h, weight, t, softcap, use_reentrant=False)
        else:
            total = total + _chunk_ce(h, weight, t, softcap)
    return total / count, count
