"""Batches from tokenized examples: padding-free packing, or length-grouped pad-to-longest batches."""

from __future__ import annotations

import random
from collections.abc import Sequence

import torch

from tools.train.data import IGNORE, TokenizedExample


def padded_batch(examples: Sequence[TokenizedExample], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad to the longest example: input_ids, labels (IGNORE on padding) and attention_mask."""
    width = max(len(e) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, e in enumerate(examples):
        n = len(e)
        ids[row, :n] = torch.tensor(e.input_ids, dtype=torch.long)
        labels[row, :n] = torch.tensor(e.labels, dtype=torch.long)
        mask[row, :n] = 1
    return {"input_ids": ids, "labels": labels, "attention_mask": mask}


def pack(examples: Sequence[TokenizedExample]) -> dict[str, torch.Tensor]:
    """Concatenate examples into one 1×T row; position_ids restart at 0 for each, so attention stays inside it."""
    ids: list[int] = []
    labels: list[int] = []
    positions: list[int] = []
    for e in examples:
        ids += e.input_ids
        # the first token is never a target of its own example; masking it also stops the
        # previous example's last token from being taught to predict it
        labels += [IGNORE, *e.labels[1:]]
        positions += range(len(e))
    return {"input_ids": torch.tensor([ids], dtype=torch.long), "labels": torch.tensor([labels], dtype=torch.long),
            "position_ids": torch.tensor([positions], dtype=torch.long)}


def round_up_row(batch: dict[str, torch.Tensor], multiple: int, pad_id: int = 0) -> dict[str, torch.Tensor]:
    """Pad a packed row to a multiple of `multiple` tokens (0 = leave it as it is).

    A GPU builds attention plans and compiled kernels per row length; a handful of lengths instead
    of a new one every step lets them be reused. The tail is a sequence of its own (positions
    restart at 0) with no labels, so it changes neither the attention of the real tokens nor the loss.
    """
    width = batch["input_ids"].shape[1]
    extra = -width % multiple if multiple else 0
    if not extra or "position_ids" not in batch:
        return batch
    pad = torch.nn.functional.pad
    return {"input_ids": pad(batch["input_ids"], (0, extra), value=pad_id),
            "labels": pad(batch["labels"], (0, extra), value=IGNORE),
            "position_ids": torch.cat([batch["position_ids"], torch.arange(extra).unsqueeze(0)], dim=1)}


def _epoch_order(n: int, seed: int) -> list[int]:
    order = list(range(n))
    random.Random(seed).shuffle(order)
    return order


def pack_plan(lengths: Sequence[int], max_tokens: int, seed: int) -> list[list[int]]:
    """Which examples go in each packed row: shuffled by `seed`, rows filled up to `max_tokens` in order."""
    plan: list[list[int]] = []
    current: list[int] = []
    used = 0
    for i in _epoch_order(len(lengths), seed):
        n = min(lengths[i], max_tokens)
        if current and used + n > max_tokens:
            plan.append(current)
            current, used = [], 0
        current.append(i)
        used += n
    if current:
        plan.append(current)
    return plan


def _cut(e: TokenizedExample, max_tokens: int) -> TokenizedExample:
    return e if len(e) <= max_tokens else TokenizedExample(e.input_ids[:max_tokens], e.labels[:max_tokens])


def packed_batches(examples: Sequence[TokenizedExample], max_tokens: int, seed: int) -> list[dict[str, torch.Tensor]]:
    """Shuffle (by `seed`), then fill rows of at most `max_tokens` tokens; an example longer than that is cut."""
    plan = pack_plan([len(e) for e in examples], max_tokens, seed)
    return [pack([_cut(examples[i], max_tokens) for i in idx]) for idx in plan]


def group_plan(lengths: Sequence[int], batch_size: int, seed: int, group_factor: int = 50) -> list[list[int]]:
    """Batches of similar lengths: shuffle, sort within mega-groups of batch_size × group_factor, shuffle batches."""
    order = _epoch_order(len(lengths), seed)
    group = batch_size * group_factor
    plan: list[list[int]] = []
    for g in range(0, len(order), group):
        chunk = sorted(order[g: g + group], key=lambda i: lengths[i], reverse=True)
        plan += [chunk[b: b + batch_size] for b in range(0, len(chunk), batch_size)]
    random.Random(seed + 1).shuffle(plan)
    return plan


def label_tokens(batch: dict[str, torch.Tensor]) -> int:
    """Tokens in the batch that count towards the loss."""
    return int((batch["labels"] != IGNORE).sum())


def real_tokens(batch: dict[str, torch.Tensor]) -> int:
    """Tokens in the batch that are not padding."""
    mask = batch.get("attention_mask")
    return int(mask.sum()) if mask is not None else int(batch["input_ids"].numel())
