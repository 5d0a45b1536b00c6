"""Load a base model for a task, wrap it with LoRA, and load a finished run's tuned model back."""

from __future__ import annotations

import shlex
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tools.errors import UsageError
from tools.models.catalog import TINY_RANDOM, build_tiny_random, load_tokenizer, local_source, resolve
from tools.train.bases import weights_source
from tools.train.config import load_run_config

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedTokenizerBase

    from tools.train.config import TrainConfig

MINILM = "minilm"
"""Alias for the packaged MiniLM encoder, the offline default for classification and entity extraction."""

ENCODER_TARGETS = ["query", "key", "value", "dense"]


def pick_dtype(precision: str, device: str) -> torch.dtype:
    """The base's weights: auto = bf16 on a GPU that supports it, fp32 otherwise. A CPU keeps fp32 weights
    and runs bf16 as autocast (tools/train/speed.py), only where it has bf16 arithmetic."""
    import torch

    from tools.train.speed import cpu_has_bf16

    if precision == "auto":
        ok = device.startswith("cuda") and torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        return torch.bfloat16 if ok else torch.float32
    if not device.startswith("cuda"):
        if precision == "fp16":
            raise UsageError(f"precision fp16 needs a GPU; this run is on {device}.",
                             fix="Use --set precision=auto (bf16 where this CPU supports it, else fp32).")
        if precision == "bf16" and not cpu_has_bf16():
            raise UsageError("precision bf16 on a CPU needs bf16 arithmetic (AMX or AVX512-BF16), which this CPU "
                             "does not have.", fix="Use --set precision=auto (fp32 on this CPU).")
        return torch.float32
    return {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[precision]


def encoder_source(model: str) -> str:
    """Where an encoder for classification is loaded from: the packaged MiniLM, a folder, or a cached hub id."""
    if model.lower() in (MINILM, "all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"):
        from tools.embeddings import minilm_path

        return str(minilm_path())
    if model == TINY_RANDOM:
        raise UsageError("tiny-random is a text generator; classification and entity extraction need an encoder.",
                         fix="Use --model minilm (the packaged encoder) for labelled text or tagged tokens.")
    return local_source(resolve(model))


def load_base(model: str, task: str = "causal", *, labels: Sequence[str] = (), precision: str = "auto",
              device: str = "cpu", four_bit: bool = False, seed: int = 0,
              keep_on_cpu: bool = False) -> tuple[Any, PreTrainedTokenizerBase]:
    """The frozen base model for `task` (causal | classification | token) and its tokenizer, offline.

    `keep_on_cpu`: in `device`'s precision but left in RAM (a base that is sharded onto the devices afterwards).
    """
    import torch

    dtype = pick_dtype(precision, device)
    if task in ("classification", "token"):
        from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification, AutoTokenizer

        if not labels:
            raise UsageError(f"A {task} model needs label names.", fix="Give the dataset a label (or tags) column.")
        source = encoder_source(model)
        auto = AutoModelForSequenceClassification if task == "classification" else AutoModelForTokenClassification
        id2label = dict(enumerate(labels))
        # the new classifier head is randomly initialised: seed it so a run is reproducible
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net = auto.from_pretrained(source, num_labels=len(labels), id2label=id2label,
                                       label2id={v: k for k, v in id2label.items()}, local_files_only=True,
                                       trust_remote_code=False, dtype=dtype)
        tok = AutoTokenizer.from_pretrained(source, local_files_only=True, trust_remote_code=False)
        return net.to(device), tok
    if task != "causal":
        raise UsageError(f"Unknown task '{task}'.", fix="Use causal, classification or token.")
    entry = resolve(model)
    causal_tok = load_tokenizer(model)
    if entry.key == TINY_RANDOM:
        tiny: Any = build_tiny_random(seed=0)
        return tiny.to(device="cpu" if keep_on_cpu else device, dtype=dtype), causal_tok
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = {"dtype": dtype}
    if four_bit:
        if not device.startswith("cuda"):
            raise UsageError("4-bit loading (QLoRA) needs an NVIDIA GPU.",
                             fix="Use --set four_bit=false on this machine.")
        import importlib.util

        if importlib.util.find_spec("bitsandbytes") is None:
            raise UsageError("4-bit loading (QLoRA) needs the bitsandbytes package, which is not installed.",
                             fix="Install the GPU extras: `.venv/bin/pip install -e '.[gpu]'`, or use "
                                 "--set four_bit=false.")
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                                           bnb_4bit_compute_dtype=dtype)
        kwargs["device_map"] = {"": device}
    source = local_source(entry)
    if entry.gguf:
        from transformers import AutoConfig

        # the weights come from the GGUF, dequantized; its config was read once into the companion folder
        kwargs.update(gguf_file=entry.gguf, config=AutoConfig.from_pretrained(source))
    try:
        with _quiet_gguf_progress():
            lm: Any = AutoModelForCausalLM.from_pretrained(source, local_files_only=True, trust_remote_code=False,
                                                       **kwargs)
    except OSError as exc:
        raise UsageError(
            f"The weights of '{model}' are not on this machine ({exc}).",
            fix=f"Download them once while online with `mtw download {shlex.quote(str(model))}`, "
                "or try the workflow with --model tiny-random.",
        ) from exc
    if entry.gguf:
        _plain_weights(lm)
    return (lm if four_bit or keep_on_cpu else lm.to(device)), causal_tok


def _plain_weights(model: Any) -> None:
    """A model read from a GGUF holds ordinary dequantized weights, but transformers still marks it as quantized and
    then refuses to save it (the merged export); the mark describes the file, not the weights, so it goes."""
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config


@contextmanager
def _quiet_gguf_progress() -> Iterator[None]:
    """transformers draws its own bar on stderr while it dequantizes a GGUF (a bare tqdm no setting turns off); the
    run's narration already says what happens."""
    import io
    from contextlib import redirect_stderr

    with redirect_stderr(io.StringIO()):
        yield


def apply_lora(model: Any, *, task: str = "causal", r: int = 16, alpha: int = 32, dropout: float = 0.05,
               targets: Sequence[str] = (), seed: int = 0) -> Any:
    """Freeze the base and add LoRA adapters (seeded); classifier heads are trained in full alongside."""
    import torch
    from peft import LoraConfig, TaskType, get_peft_model

    task_type = {"causal": TaskType.CAUSAL_LM, "classification": TaskType.SEQ_CLS, "token": TaskType.TOKEN_CLS}[task]
    if not targets:
        targets = ENCODER_TARGETS if task != "causal" else "all-linear"  # type: ignore[assignment]
    config = LoraConfig(task_type=task_type, r=r, lora_alpha=alpha, lora_dropout=dropout,
                        target_modules=list(targets) if not isinstance(targets, str) else targets)
    with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
        # peft asks transformers a deprecated question; the warning says nothing to a user
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        torch.manual_seed(seed)
        try:
            return get_peft_model(model, config)
        except ValueError as exc:
            raise UsageError(f"LoRA cannot be attached: {exc}.",
                             fix="Check --set lora_targets=… against the model's module names.") from exc


def compile_layers(model: Any, *, backend: str = "inductor") -> int:
    """torch.compile each decoder layer in place; returns how many were compiled.

    One compiled graph per layer type serves every layer, and `dynamic=True` keeps new row lengths
    from triggering recompilation. The module tree and parameter names stay as they are, so
    checkpoints and the saved adapter do not change.
    """
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    layers = getattr(base.get_decoder(), "layers", None)
    if layers is None:
        return 0
    for layer in layers:
        layer.compile(dynamic=True, backend=backend)
    return len(layers)


def lora_settings(cfg: TrainConfig) -> dict[str, Any]:
    """The apply_lora arguments a config asks for (catalog defaults when lora_targets is empty)."""
    targets: Sequence[str] = cfg.lora_targets
    if not targets and cfg.task == "causal":
        targets = resolve(cfg.model).lora_targets
    return {"task": cfg.task, "r": cfg.lora_r, "alpha": cfg.lora_alpha, "dropout": cfg.lora_dropout,
            "targets": tuple(targets), "seed": cfg.seed}


def load_tuned(run_dir: Path | str, device: str = "cpu") -> tuple[Any, PreTrainedTokenizerBase, TrainConfig]:
    """Base + the run's LoRA adapter (RUN_DIR/adapter), in eval mode, with the tokenizer saved beside it."""
    from peft import PeftModel
    from transformers import AutoTokenizer

    run = Path(run_dir)
    cfg = load_run_config(run)
    adapter = run / "adapter"
    if not (adapter / "adapter_config.json").is_file():
        raise UsageError(f"{run} has no finished adapter ({adapter}/adapter_config.json is missing).",
                         fix=f"Let the training finish, or resume it: mtw train --data {cfg.data} --model {cfg.model} "
                             f"--out {run} --resume")

    source = weights_source(run, cfg.model) if cfg.task == "causal" else cfg.model
    base, _ = load_base(source, cfg.task, labels=cfg.labels, precision="fp32" if device == "cpu" else "auto",
                        device=device, seed=cfg.seed)
    model = PeftModel.from_pretrained(base, str(adapter)).to(device)
    model.eval()
    tok = AutoTokenizer.from_pretrained(str(adapter), local_files_only=True, trust_remote_code=False)
    return model, tok, cfg
