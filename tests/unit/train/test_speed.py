"""The engine's speed settings: automatic gradient checkpointing, rounded rows, compiled layers, bf16 on a CPU that
has it — same loss."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tests.unit.train.conftest import FEATURES, story, write_chat
from tools.errors import UsageError
from tools.models.catalog import TINY_RANDOM_VOCAB, build_tiny_random
from tools.settings import get_settings
from tools.train.batching import pack, round_up_row
from tools.train.config import COMPILE_MIN_STEPS, build_config, reproduce_command, save_run_config
from tools.train.data import IGNORE, TokenizedExample
from tools.train.events import read_events
from tools.train.loss import lm_loss
from tools.train.memory import step_memory
from tools.train.modeling import apply_lora, compile_layers, pick_dtype
from tools.train.sft import train
from tools.train.speed import BF16_MIN_HIDDEN, AutoCheckpointing, Speed, cpu_flags, speed_settings

NO_BF16 = frozenset({"fpu", "sse2", "avx2", "avx512f"})
"""A CPU without bf16 arithmetic, as /proc/cpuinfo lists it."""
AMX = NO_BF16 | {"amx_tile", "amx_bf16", "avx512_bf16"}
"""A CPU with it (Intel Sapphire Rapids and later)."""


def on_cpu(monkeypatch: pytest.MonkeyPatch, flags: frozenset[str]) -> None:
    """Make the engine see a CPU with these flags."""
    monkeypatch.setattr("tools.train.speed.cpu_flags", lambda *a: flags)


def _lora_model(hidden: int = 64) -> torch.nn.Module:
    return apply_lora(build_tiny_random(seed=0, hidden_size=hidden), r=4, alpha=8, dropout=0.0)


FP32_MODEL = build_tiny_random(seed=0)
BF16_MODEL = build_tiny_random(seed=0).to(torch.bfloat16)
"""A base as a GPU loads it."""
WIDE = build_tiny_random(seed=0, hidden_size=BF16_MIN_HIDDEN)
"""The narrowest model that `auto` trains in bf16 on a CPU with bf16 arithmetic."""


def _batch(lengths: list[int]) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    rows = [TokenizedExample(ids := torch.randint(3, TINY_RANDOM_VOCAB, (n,), generator=g).tolist(),
                             [IGNORE] * 2 + ids[2:]) for n in lengths]
    return pack(rows)


def _speed(**kw: object) -> Speed:
    values: dict[str, object] = dict(compile=False, row_multiple=0, checkpointing="auto", memory_budget_mb=1e9,
                                     autocast=False, fused_adamw=False)
    return Speed(**(values | kw))  # type: ignore[arg-type]


def _layers_recomputing(model: torch.nn.Module) -> list[bool]:
    return [bool(layer.gradient_checkpointing) for layer in model.get_base_model().model.layers]


def test_checkpointing_recomputes_only_as_many_layers_as_a_step_needs():
    model = apply_lora(build_tiny_random(seed=0, num_layers=4), r=4, alpha=8, dropout=0.0)
    need = step_memory(model, chunk=1024, device="cpu")
    tokens = 20_000
    none, half, every = need(tokens, 0), need(tokens, 2), need(tokens, 1)
    assert none > half > every
    assert need(100, 0) < every
    auto = AutoCheckpointing(model, _speed(memory_budget_mb=(none + half) / 2), 1024, "cpu")
    assert auto.before_step(100) == 0
    assert _layers_recomputing(model) == [False] * 4
    # over the budget: the fewest recomputed layers that fit (every 3rd layer here: layers 0 and 3)
    assert auto.before_step(tokens) == 2
    assert _layers_recomputing(model) == [True, False, False, True]
    assert auto.before_step(100) == 0
    assert _layers_recomputing(model) == [False] * 4
    tight = AutoCheckpointing(model, _speed(memory_budget_mb=every - 1), 1024, "cpu")
    assert tight.before_step(tokens) == 4
    assert _layers_recomputing(model) == [True] * 4  # nothing less fits
    assert len(model.get_base_model()._require_grads_hooks) == 1  # switching does not pile up hooks
    fixed = AutoCheckpointing(model, _speed(checkpointing=False, memory_budget_mb=0.0), 1024, "cpu")
    fixed.every_n = 0
    assert fixed.before_step(tokens) == 0  # an explicit false is never overridden


def test_the_per_step_estimate_counts_autocasts_weight_copies_on_a_cpu():
    model = apply_lora(build_tiny_random(seed=0, hidden_size=512, intermediate_size=2048), r=4, alpha=8, dropout=0.0)
    frozen_mb = sum(p.numel() * p.element_size() for p in model.parameters() if not p.requires_grad) / 2**20
    plain = step_memory(model, chunk=1024, device="cpu")
    cast = step_memory(model, chunk=1024, device="cpu", autocast=True)
    assert frozen_mb > 20
    assert cast(500, 0) - plain(500, 0) == pytest.approx(0.5 * frozen_mb * 1.1, rel=0.01)  # 1.1: the overhead


def test_rounded_row_teaches_the_same_loss():
    model = _lora_model()
    batch = _batch([7, 12, 5])
    padded = round_up_row(batch, 16)
    assert padded["input_ids"].shape[1] == 32
    assert batch["input_ids"].shape[1] == 24
    assert padded["position_ids"][0, 24:].tolist() == list(range(8))  # the tail is a sequence of its own
    assert (padded["labels"][0, 24:] == IGNORE).all()
    assert round_up_row(batch, 0) is batch
    assert round_up_row(batch, 8) is batch  # already a multiple of 8
    with torch.no_grad():
        plain, n = lm_loss(model, batch)
        rounded, m = lm_loss(model, padded)
    assert n == m
    assert rounded.item() == pytest.approx(plain.item(), abs=1e-5)


def test_labels_left_on_the_host_give_the_same_loss_and_gradients():
    model = _lora_model()
    batch = _batch([9, 14])
    loss_a, _ = lm_loss(model, batch)
    loss_a.backward()
    grads_a = [p.grad.clone() for p in model.parameters() if p.requires_grad]
    model.zero_grad()

    class Elsewhere(torch.Tensor):
        """Labels that report another device, as host labels do next to GPU inputs."""

    meta = {k: v for k, v in batch.items()}
    meta["labels"] = batch["labels"].as_subclass(Elsewhere)
    Elsewhere.device = property(lambda self: torch.device("meta"))  # type: ignore[assignment,method-assign]
    loss_b, _ = lm_loss(model, meta)
    loss_b.backward()
    grads_b = [p.grad for p in model.parameters() if p.requires_grad]
    assert loss_b.item() == pytest.approx(loss_a.item(), abs=1e-6)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(grads_a, grads_b, strict=True))


def test_compiled_layers_compute_the_same_loss():
    model, plain_model = _lora_model(), _lora_model()
    assert compile_layers(model, backend="eager") == 2
    batch = _batch([10, 6])
    with torch.no_grad():
        assert lm_loss(model, batch)[0].item() == pytest.approx(lm_loss(plain_model, batch)[0].item(), abs=1e-6)
    assert [k for k, _ in model.named_parameters()] == [k for k, _ in plain_model.named_parameters()]


def test_speed_settings_follow_the_device_and_the_run_length(chat_file: Path, monkeypatch: pytest.MonkeyPatch):
    on_cpu(monkeypatch, NO_BF16)
    cfg = build_config("tiny-random", str(chat_file))
    cpu = speed_settings(cfg, "cpu", 1000, WIDE)
    assert (cpu.compile, cpu.row_multiple, cpu.fused_adamw, cpu.autocast, cpu.checkpointing, cpu.precision) == (
        False, 0, False, False, "auto", "fp32")
    budget = build_config("tiny-random", str(chat_file), sets=["memory_budget_gb=40"])
    gpu = speed_settings(budget, "cuda:0", COMPILE_MIN_STEPS, BF16_MODEL)
    assert (gpu.compile, gpu.row_multiple, gpu.fused_adamw, gpu.autocast, gpu.precision) == (True, 512, True, True,
                                                                                             "bf16")
    assert gpu.memory_budget_mb == 40 * 1024
    assert speed_settings(budget, "cuda:0", COMPILE_MIN_STEPS - 1, BF16_MODEL).compile is False
    unpacked = build_config("tiny-random", str(chat_file), sets=["memory_budget_gb=40", "packing=false"])
    assert speed_settings(unpacked, "cuda:0", 10, BF16_MODEL).row_multiple == 0
    forced = build_config("tiny-random", str(chat_file), sets=["compile=true"])
    monkeypatch.setattr("tools.train.speed.shutil.which", lambda name: None)
    with pytest.raises(UsageError, match="needs a C compiler"):
        speed_settings(forced, "cpu", 10, FP32_MODEL)


def test_cpu_flags_are_read_from_cpuinfo(tmp_path: Path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Intel(R) Xeon(R)\nflags\t\t: fpu sse2 avx512f amx_bf16 "
                       "avx512_bf16\n\nprocessor\t: 1\nflags\t\t: fpu sse2 avx512f amx_bf16 avx512_bf16\n")
    if sys.platform.startswith("linux"):
        assert {"amx_bf16", "avx512_bf16", "fpu"} <= cpu_flags(cpuinfo)
        assert "model" not in cpu_flags(cpuinfo)
    assert cpu_flags(tmp_path / "absent") == frozenset()


def test_a_cpu_with_bf16_arithmetic_trains_in_bf16_unless_told_fp32(chat_file: Path, monkeypatch: pytest.MonkeyPatch):
    on_cpu(monkeypatch, AMX)
    cfg = build_config("tiny-random", str(chat_file))
    auto = speed_settings(cfg, "cpu", 10, WIDE)
    assert (auto.autocast, auto.precision) == (True, "bf16")
    # the weights (and so the LoRA matrices and the optimizer state) stay fp32; only the arithmetic is bf16
    assert pick_dtype("auto", "cpu") == pick_dtype("bf16", "cpu") == torch.float32
    off = speed_settings(build_config("tiny-random", str(chat_file), sets=["precision=fp32"]), "cpu", 10, WIDE)
    assert (off.autocast, off.precision) == (False, "fp32")
    # a model too narrow to gain stays fp32 unless bf16 is asked for
    narrow = speed_settings(cfg, "cpu", 10, FP32_MODEL)
    assert (narrow.autocast, narrow.precision) == (False, "fp32")
    asked = speed_settings(build_config("tiny-random", str(chat_file), sets=["precision=bf16"]), "cpu", 10,
                           FP32_MODEL)
    assert (asked.autocast, asked.precision) == (True, "bf16")


def test_a_cpu_without_bf16_arithmetic_stays_fp32_and_refuses_bf16(chat_file: Path, monkeypatch: pytest.MonkeyPatch):
    on_cpu(monkeypatch, NO_BF16)
    auto = speed_settings(build_config("tiny-random", str(chat_file)), "cpu", 10, WIDE)
    assert (auto.autocast, auto.precision) == (False, "fp32")
    assert pick_dtype("auto", "cpu") == torch.float32
    with pytest.raises(UsageError) as err:
        pick_dtype("bf16", "cpu")
    assert err.value.message == ("precision bf16 on a CPU needs bf16 arithmetic (AMX or AVX512-BF16), which this "
                                 "CPU does not have.")
    assert "--set precision=auto" in err.value.fix
    with pytest.raises(UsageError, match="fp16 needs a GPU"):
        pick_dtype("fp16", "cpu")


def test_a_classifier_on_a_cpu_says_bf16_is_not_for_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from tests.unit.train.conftest import DATA
    from tools.train.classify import train as train_classifier

    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    cfg = build_config("minilm", str(DATA / "task_types.jsonl"), sets=["task=classification", "precision=bf16"])
    final = train_classifier(cfg, tmp_path / "run")
    assert final["type"] == "failed"
    assert final["message"] == ("precision bf16 on a CPU is for text generation; classifiers and taggers train in "
                                "fp32 there.")
    assert final["fix"] == "Use --set precision=auto."


def test_speed_settings_are_validated_and_reproduced(chat_file: Path):
    with pytest.raises(UsageError) as err:
        build_config("tiny-random", str(chat_file), sets=["row_multiple=-8", "memory_budget_gb=0"])
    assert "row multiple -8" in err.value.message
    assert "memory budget 0 GB" in err.value.message
    with pytest.raises(UsageError) as err:
        build_config("tiny-random", str(chat_file), sets=["compile=maybe"])
    assert "compile = 'maybe': use true, false or 'auto'" in err.value.message  # one line, not one per kind
    cfg = build_config("tiny-random", str(chat_file), sets=["gradient_checkpointing=auto", "compile=false",
                                                            "row_multiple=256", "memory_budget_gb=12.5"])
    assert cfg.gradient_checkpointing == "auto"
    assert cfg.compile is False
    line = reproduce_command(cfg, "runs/x")
    assert "--set compile=false" in line
    assert "--set row_multiple=256" in line
    assert "memory_budget_gb=12.5" in line
    assert "gradient_checkpointing" not in line  # auto is the default


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict]]:
    """The same short tiny-random run with each speed setting (one workspace)."""
    root = tmp_path_factory.mktemp("speed")
    out: dict[str, list[dict]] = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MTW_HOME", str(root / "home"))
        get_settings.cache_clear()
        data = write_chat(root / "stories.jsonl", FEATURES)
        common = ["learning_rate=5e-3", "batch_size=3", "val_share=0.25", "eval_every=3", "lora_dropout=0"]
        for name, sets in {"plain": ["gradient_checkpointing=false"], "tight": ["memory_budget_gb=0.0001"],
                           "rows": ["row_multiple=64"],
                           "bf16": ["gradient_checkpointing=false", "precision=bf16"]}.items():
            # fp32 on whatever CPU runs the tests, except the run that sees one with bf16 arithmetic
            on_cpu(mp, AMX if name == "bf16" else NO_BF16)
            final = train(build_config("tiny-random", str(data), sets=common + sets, max_steps=6), root / name)
            assert final["type"] == "done", final
            out[name] = read_events(root / name)
    get_settings.cache_clear()
    return out


def _steps(events: list[dict]) -> list[dict]:
    return [e for e in events if e["type"] == "step"]


@pytest.mark.timeout(180)
def test_a_run_over_its_memory_budget_checkpoints_every_step_and_learns_the_same(runs):
    plain, tight = _steps(runs["plain"]), _steps(runs["tight"])
    assert len(plain) == len(tight) == 6
    assert all(s.get("checkpointed_layers") == 2 for s in tight)  # tiny-random has 2 layers, both recomputed
    assert not any("checkpointed_layers" in s for s in plain)
    assert [s["loss"] for s in tight] == pytest.approx([s["loss"] for s in plain], abs=1e-4)
    start = next(e for e in runs["tight"] if e["type"] == "start")
    assert start["speed"]["checkpointing"] == "auto"
    assert start["speed"]["memory_budget_mb"] == pytest.approx(0.1)


def test_rounded_rows_learn_the_same_and_count_only_real_tokens(runs):
    plain, rows = _steps(runs["plain"]), _steps(runs["rows"])
    assert [s["loss"] for s in rows] == pytest.approx([s["loss"] for s in plain], abs=1e-4)
    done = {k: next(e for e in v if e["type"] == "done")["metrics"] for k, v in runs.items()}
    assert done["rows"]["tokens"] == done["plain"]["tokens"] > 0
    assert done["rows"]["val_loss"] == pytest.approx(done["plain"]["val_loss"], abs=1e-4)
    assert next(e for e in runs["rows"] if e["type"] == "start")["speed"]["row_multiple"] == 64


def test_a_bf16_cpu_run_says_so_and_learns_like_fp32(runs):
    starts = {k: next(e for e in v if e["type"] == "start")["speed"] for k, v in runs.items()}
    assert (starts["bf16"]["autocast"], starts["bf16"]["precision"]) == (True, "bf16")
    assert (starts["plain"]["autocast"], starts["plain"]["precision"]) == (False, "fp32")
    plain, bf16 = _steps(runs["plain"]), _steps(runs["bf16"])
    assert [s["loss"] for s in bf16] != [s["loss"] for s in plain]  # the arithmetic really was bf16
    assert [s["loss"] for s in bf16] == pytest.approx([s["loss"] for s in plain], rel=2e-2)
    done = {k: next(e for e in v if e["type"] == "done")["metrics"] for k, v in runs.items()}
    assert done["bf16"]["val_loss"] == pytest.approx(done["plain"]["val_loss"], rel=2e-2)


def test_validation_and_held_out_loss_use_the_runs_bf16_choice(chat_file: Path, monkeypatch: pytest.MonkeyPatch):
    """The loss shown during training and the held-out loss of `mtw eval` run in the arithmetic training chose."""
    from tools.evaluate.heldout import causal_loss
    from tools.models.catalog import load_tokenizer
    from tools.train.data import tokenize_chat
    from tools.train.sft import evaluate

    on_cpu(monkeypatch, AMX)
    cfg = build_config("tiny-random", str(chat_file))
    model, tok = _lora_model(BF16_MIN_HIDDEN), load_tokenizer("tiny-random")
    convs = [story(f) for f in FEATURES[:4]]
    val = [tokenize_chat(tok, c, cfg.context) for c in convs]
    speeds = {p: speed_settings(cfg.model_copy(update={"precision": p}), "cpu", 10, model)
              for p in ("auto", "fp32")}
    during = {p: evaluate(model, val, cfg, 0, "cpu", speeds[p]) for p in speeds}
    after = {p: causal_loss(model, tok, convs, context=cfg.context, precision=p)["val_loss"] for p in speeds}
    assert during["auto"] != during["fp32"]
    assert after["auto"] != after["fp32"]
    assert after["fp32"] == pytest.approx(during["fp32"], abs=1e-5)
    assert after["auto"] == pytest.approx(during["auto"], rel=1e-3)
    on_cpu(monkeypatch, NO_BF16)
    assert causal_loss(model, tok, convs, context=cfg.context, precision="auto")["val_loss"] == after["fp32"]


@pytest.mark.slow
@pytest.mark.timeout(270)
def test_compile_true_trains_through_the_engine_on_cpu(tmp_path: Path, runs):
    """In its own process, as `mtw train` runs: the engine entry point reading RUN_DIR/config.yaml."""
    data = write_chat(tmp_path / "stories.jsonl", FEATURES)
    sets = ["learning_rate=5e-3", "batch_size=3", "val_share=0.25", "eval_every=3", "lora_dropout=0",
            "compile=true", "gradient_checkpointing=false", "precision=fp32"]  # fp32, as the plain run it is held to
    run = tmp_path / "run"
    run.mkdir()
    save_run_config(run, build_config("tiny-random", str(data), sets=sets, max_steps=2))
    env = os.environ | {"MTW_HOME": str(tmp_path / "home"), "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "tools.train.sft", str(run)], env=env, capture_output=True,
                          text=True, timeout=240, cwd=Path(__file__).resolve().parents[3])
    assert done.returncode == 0, done.stderr[-3000:]
    events = read_events(run)
    assert next(e for e in events if e["type"] == "start")["speed"]["compile"] is True
    assert events[-1]["type"] == "done"
    assert [s["loss"] for s in _steps(events)] == pytest.approx([s["loss"] for s in _steps(runs["plain"])[:2]],
                                                                 abs=1e-3)


@pytest.mark.timeout(180)
def test_mtw_train_says_which_speed_settings_it_chose(tmp_path: Path, chat_file: Path,
                                                      monkeypatch: pytest.MonkeyPatch):
    from typer.testing import CliRunner

    from mtw.cli import app

    monkeypatch.setenv("MTW_HOME", str(tmp_path / "home"))
    get_settings.cache_clear()
    result = CliRunner().invoke(app, ["train", "--data", str(chat_file), "--model", "tiny-random", "--out",
                                      str(tmp_path / "run"), "--max-steps", "1", "--set", "memory_budget_gb=3"])
    get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert "speed: gradient checkpointing where a step would exceed 3.0 GB" in result.output
    assert "estimate: fits in " in result.output


def test_speed_line_names_each_choice():
    from tools.train.narrate import describe_speed

    line = describe_speed({"compile": True, "row_multiple": 512, "checkpointing": True, "memory_budget_mb": 1024,
                           "autocast": True, "fused_adamw": True})
    assert line == ("speed: compiled layers, rows rounded to 512 tokens, gradient checkpointing on every step, "
                    "bf16 arithmetic, fused AdamW")
    assert describe_speed({"checkpointing": False, "autocast": True, "precision": "bf16"}) == "speed: bf16 arithmetic"
    assert describe_speed({}) == ""
    assert describe_speed({"checkpointing": False}) == ""
