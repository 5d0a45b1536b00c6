"""The run's batches, planned from the examples' token counts: tokenized rows, packed or padded micro-batches in
the engine's order, epoch after epoch. A pure function of the data and the config, shared by the engines, the time
estimate (which counts the very batches a run will train on) and `--resume` (which continues in the same order)."""

from __future__ import annotations

import math
import random
from typing import TYPE_CHECKING, Any

import torch

from tools.errors import UsageError
from tools.train.batching import group_plan, pack, pack_plan, padded_batch, real_tokens, round_up_row
from tools.train.data import IGNORE, TokenizedExample, tokenize_example
from tools.train.memory import row_multiple

if TYPE_CHECKING:
    from tools.train.config import TrainConfig


def tokenize_rows(rows: list[Any], tokenizer: Any, context: int) -> list[TokenizedExample]:
    """Chat rows → token ids with assistant-only labels; rows that teach nothing (no assistant token) are dropped."""
    out = [tokenize_example(tokenizer, r, context) for r in rows]
    return [e for e in out if e.n_label_tokens > 0]


def token_budget(lengths: list[int], cfg: TrainConfig) -> int:
    """Tokens per packed row: about `batch_size` examples of average length, never less than the longest one."""
    mean = sum(lengths) / max(1, len(lengths))
    return int(min(cfg.context * cfg.batch_size, max(max(lengths, default=1), math.ceil(cfg.batch_size * mean))))


def plan_batches(lengths: list[int], cfg: TrainConfig, world: int) -> tuple[list[list[int]], int, int]:
    """Every micro-batch of the run in order (epoch after epoch, each shuffled by seed + epoch), from the
    examples' token counts.

    Returns (plan, optimizer steps, micro-batches per epoch). The plan is a pure function of the
    data and the config, which is what lets `--resume` continue with the same data order (and the
    time estimate count the very batches the run will train on).
    """
    budget = token_budget(lengths, cfg)

    def epoch(e: int) -> list[list[int]]:
        if cfg.packing:
            return pack_plan(lengths, budget, cfg.seed + e)
        return group_plan(lengths, cfg.batch_size, cfg.seed + e)

    per_step = cfg.grad_accum * world
    first = epoch(0)
    per_epoch = len(first)
    wanted = (cfg.max_steps * per_step if cfg.max_steps
              else max(math.ceil(per_epoch * cfg.epochs), cfg.min_steps * per_step))
    plan = list(first)
    e = 1
    while len(plan) < wanted:
        plan += epoch(e)
        e += 1
    plan = plan[:wanted]
    steps = cfg.max_steps or math.ceil(len(plan) / per_step)
    return plan, steps, per_epoch


def materialise(examples: list[TokenizedExample], idx: list[int], cfg: TrainConfig, pad_id: int,
                device: str, row_multiple: int = 0) -> tuple[dict[str, torch.Tensor], int]:
    """One micro-batch on the device, and its real (non-padding) token count.

    Labels stay on the host: the loss picks the label positions there without waiting for the GPU.
    On a GPU the inputs go through pinned memory, so the copy overlaps the previous step's work.
    """
    rows = [examples[i] for i in idx]
    batch = pack(rows) if cfg.packing else padded_batch(rows, pad_id)
    real = real_tokens(batch)
    if cfg.packing:
        batch = round_up_row(batch, row_multiple, pad_id)
    cuda = device.startswith("cuda")

    def move(name: str, t: torch.Tensor) -> torch.Tensor:
        if name == "labels":
            return t
        return t.pin_memory().to(device, non_blocking=True) if cuda else t.to(device)

    return {k: move(k, v) for k, v in batch.items()}, real



def encode_rows(rows: list[Any], cfg: TrainConfig, tokenizer: Any, max_len: int) -> list[dict[str, Any]]:
    """Rows → {input_ids, label(s)}: one class id per text, or one tag id per word on its first word piece."""
    index = {name: i for i, name in enumerate(cfg.labels)}
    out: list[dict[str, Any]] = []
    for r in rows:
        if cfg.task == "classification":
            if r.label not in index:
                raise UsageError(f"Line {r.line}: label '{r.label}' is not one of the run's labels ({cfg.labels}).",
                                 fix="Fix the label, or start a new run so the labels are read from the data.")
            ids = tokenizer(r.text, truncation=True, max_length=max_len)["input_ids"]
            out.append({"input_ids": ids, "labels": index[r.label]})
            continue
        enc = tokenizer(r.tokens, is_split_into_words=True, truncation=True, max_length=max_len)
        labels, previous = [], None
        for word in enc.word_ids():
            labels.append(index[r.tags[word]] if word is not None and word != previous else IGNORE)
            previous = word
        out.append({"input_ids": enc["input_ids"], "labels": labels})
    return out


def collate(items: list[dict[str, Any]], pad_id: int, token_task: bool, device: str) -> dict[str, torch.Tensor]:
    """Pad a batch to its longest row."""
    width = max(len(i["input_ids"]) for i in items)
    ids = torch.full((len(items), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(items), width), dtype=torch.long)
    labels = torch.full((len(items), width), IGNORE, dtype=torch.long) if token_task else torch.zeros(
        len(items), dtype=torch.long)
    for row, item in enumerate(items):
        n = len(item["input_ids"])
        ids[row, :n] = torch.tensor(item["input_ids"])
        mask[row, :n] = 1
        if token_task:
            labels[row, :n] = torch.tensor(item["labels"])
        else:
            labels[row] = item["labels"]
    return {"input_ids": ids.to(device), "attention_mask": mask.to(device), "labels": labels.to(device)}




def micro_batch_tokens(cfg: TrainConfig, lengths: list[int], cuda: bool, world: int = 1) -> list[int]:
    """Tokens each micro-batch of the run computes (padding included), in the order the engine trains them.

    The same plan the engine builds from the same token counts: packed rows (rounded up to the row
    multiple on a GPU) for generators, padded batches of `batch_size` for classifiers.
    """
    if cfg.task == "causal":
        plan, _steps, _per_epoch = plan_batches(lengths, cfg, world)
        multiple = row_multiple(cfg, cuda) if cfg.packing else 0
        if cfg.packing:
            rows = [sum(min(lengths[i], cfg.context) for i in idx) for idx in plan]
            return [-(-t // multiple) * multiple if multiple else t for t in rows]
        return [len(idx) * max(min(lengths[i], cfg.context) for i in idx) for idx in plan]
    # classifiers: epoch e shuffles by seed + e and pads each batch to its longest example
    per_epoch = math.ceil(len(lengths) / cfg.batch_size)
    steps = cfg.max_steps or math.ceil(per_epoch * cfg.epochs / cfg.grad_accum)
    out: list[int] = []
    for k in range(steps * cfg.grad_accum):
        epoch, pos = divmod(k, per_epoch)
        order = list(range(len(lengths)))
        random.Random(cfg.seed + epoch).shuffle(order)
        batch = [min(lengths[i], cfg.context) for i in order[pos * cfg.batch_size: (pos + 1) * cfg.batch_size]]
        out.append(len(batch) * max(batch, default=0))
    return out

