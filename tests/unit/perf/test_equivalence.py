"""Our training path (packed rows + chunked loss) sees the stock path's loss and gradients (padded + HF loss), in fp32
and under the CPU's bf16 autocast."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest
import torch
from peft import LoraConfig, get_peft_model

from tools.models.catalog import build_tiny_random
from tools.train.batching import packed_batches, padded_batch, round_up_row
from tools.train.data import IGNORE, TokenizedExample
from tools.train.loss import lm_loss

VOCAB = 97


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny tensors: a second thread only adds spin-waiting on a busy two-core machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def lora_model() -> torch.nn.Module:
    """The tiny model with LoRA on all linear layers; B starts random (not zero) so every adapter gets a gradient."""
    base = build_tiny_random(seed=3, vocab_size=VOCAB)
    torch.manual_seed(3)
    config = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules="all-linear", init_lora_weights=False)
    model = get_peft_model(base, config)
    model.train()
    return model


def examples(n: int = 6, seed: int = 0) -> list[TokenizedExample]:
    """Chat-like examples of uneven length: a prompt with no labels, then a taught answer."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        length = rng.randint(5, 40)
        ids = [rng.randrange(1, VOCAB) for _ in range(length)]
        prompt = rng.randint(1, length - 2)
        out.append(TokenizedExample(ids, [IGNORE] * prompt + ids[prompt:]))
    return out


def lora_grads(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.requires_grad and p.grad is not None}
    model.zero_grad(set_to_none=True)
    return grads


def stock_loss(model: torch.nn.Module, exs: list[TokenizedExample]) -> tuple[torch.Tensor, int]:
    """What the HF Trainer optimises: pad to the longest, the model's own loss (mean over label tokens)."""
    batch = padded_batch(exs, pad_id=0)
    targets = int((batch["labels"][:, 1:] != IGNORE).sum())
    return model(**batch).loss, targets


def ours_loss(model: torch.nn.Module, exs: list[TokenizedExample], max_tokens: int,
              chunk: int) -> tuple[torch.Tensor, int]:
    """Our step: packed rows, chunked loss per row, then the token-level mean over the whole step."""
    rows = packed_batches(exs, max_tokens=max_tokens, seed=5)
    parts = [lm_loss(model, row, chunk_size=chunk) for row in rows]
    total = sum(n for _, n in parts)
    summed = torch.stack([loss * n for loss, n in parts]).sum()
    return summed / total, total


@pytest.mark.parametrize(("max_tokens", "chunk"), [(4096, 7), (60, 16), (4096, 4096)],
                         ids=["one-row-small-chunks", "several-rows", "one-chunk"])
def test_packed_chunked_loss_and_lora_grads_match_stock(max_tokens: int, chunk: int) -> None:
    model = lora_model()
    exs = examples()

    stock, stock_n = stock_loss(model, exs)
    stock.backward()
    stock_grads = lora_grads(model)

    ours, ours_n = ours_loss(model, exs, max_tokens, chunk)
    ours.backward()
    ours_grads = lora_grads(model)

    assert ours_n == stock_n
    torch.testing.assert_close(ours, stock, rtol=1e-5, atol=1e-6)
    assert stock_grads.keys() == ours_grads.keys()
    # every adapter matrix of every layer is covered, and none is trivially zero
    assert len(stock_grads) == 2 * 7 * 2
    assert all(g.abs().sum() > 0 for g in stock_grads.values())
    for name, g in stock_grads.items():
        torch.testing.assert_close(ours_grads[name], g, rtol=1e-4, atol=1e-6, msg=f"gradient of {name} differs")


def relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


BF16_GRAD_TOLERANCE = 0.03
"""Relative (Frobenius) error allowed between two bf16 computations of one gradient: bf16 keeps 8 bits of
mantissa, and the packed and padded paths round different matrix shapes."""


@pytest.mark.parametrize(("max_tokens", "chunk"), [(4096, 7), (60, 16)], ids=["one-row-small-chunks", "several-rows"])
def test_under_cpu_bf16_autocast_our_loss_and_grads_match_stock_under_it(max_tokens: int, chunk: int) -> None:
    """The CPU bf16 path (`mtw train` on a CPU with AMX / AVX512-BF16): the same autocast over both recipes."""
    model = lora_model()
    exs = examples()
    fp32, _ = stock_loss(model, exs)
    fp32.backward()
    fp32_grads = lora_grads(model)

    with torch.autocast("cpu", dtype=torch.bfloat16):
        stock, stock_n = stock_loss(model, exs)
    stock.backward()
    stock_grads = lora_grads(model)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ours, ours_n = ours_loss(model, exs, max_tokens, chunk)
    ours.backward()
    ours_grads = lora_grads(model)

    # bf16 really did the arithmetic: the losses and gradients moved away from fp32's
    assert stock.item() != fp32.item()
    assert max(relative_error(g, fp32_grads[k]) for k, g in stock_grads.items()) > 1e-3
    assert ours.dtype == stock.dtype == torch.float32  # the loss itself is reduced in fp32
    assert ours_n == stock_n
    torch.testing.assert_close(ours, stock, rtol=1e-3, atol=1e-4)
    assert stock_grads.keys() == ours_grads.keys() == fp32_grads.keys()
    # the LoRA matrices and their gradients stay fp32 under autocast
    assert all(g.dtype == torch.float32 for g in ours_grads.values())
    for name, g in stock_grads.items():
        assert relative_error(ours_grads[name], g) < BF16_GRAD_TOLERANCE, f"gradient of {name} differs"


def test_packing_keeps_attention_inside_each_example() -> None:
    """Changing one example must not change the loss of the others when they share a packed row."""
    model = lora_model()
    exs = examples(3)
    with torch.no_grad():
        row = packed_batches(exs, max_tokens=4096, seed=0)[0]
        alone = [lm_loss(model, packed_batches([e], max_tokens=4096, seed=0)[0])[0] for e in exs]
        loss, n = lm_loss(model, row)
        counts = [max(0, sum(1 for x in e.labels[1:] if x != IGNORE)) for e in exs]
        expected = sum(a * c for a, c in zip(alone, counts, strict=True)) / sum(counts)
    assert n == sum(counts)
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-6)


def test_row_rounding_changes_neither_loss_nor_grads() -> None:
    model = lora_model()
    exs = examples(4)
    row = packed_batches(exs, max_tokens=4096, seed=0)[0]
    padded = round_up_row(row, 64)
    assert padded["input_ids"].shape[1] % 64 == 0
    assert padded["input_ids"].shape[1] > row["input_ids"].shape[1]

    plain, n_plain = lm_loss(model, row, chunk_size=5)
    plain.backward()
    plain_grads = lora_grads(model)
    rounded, n_rounded = lm_loss(model, padded, chunk_size=5)
    rounded.backward()
    rounded_grads = lora_grads(model)

    assert n_plain == n_rounded
    torch.testing.assert_close(rounded, plain, rtol=1e-5, atol=1e-6)
    for name, g in plain_grads.items():
        torch.testing.assert_close(rounded_grads[name], g, rtol=1e-4, atol=1e-6)
