"""A tiny-random run folder (config.yaml + a LoRA adapter with non-zero weights), built once per session."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

PAIRS = [
    ("Write a user story for password reset.",
     "As a user, I want to reset my password, so that I can get back into my account.\n\nAcceptance criteria:\n"
     "- A reset link arrives within 1 minute\n- The link expires after 24 hours"),
    ("Explain OKRs vs KPIs.", "OKRs set ambitious goals with measurable key results; KPIs track ongoing health."),
    ("Write a stakeholder update: we are 2 weeks behind.",
     "Hi all, the launch moves two weeks because the payment review took longer. New date: 14 March."),
    ("Give 5 ways to improve SaaS onboarding.", "1. Shorter sign-up\n2. Checklists\n3. Sample data\n4. Tours\n5. Help"),
    ("Write a user story for exporting reports.",
     "As an analyst, I want to export reports as CSV, so that I can share them."),
]


def write_dataset(path: Path) -> Path:
    path.write_text("".join(json.dumps({"messages": [{"role": "user", "content": p},
                                                     {"role": "assistant", "content": a}]}) + "\n"
                            for p, a in PAIRS), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def tiny_run_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished tiny-random run: config.yaml and adapter/ (weights, config, tokenizer)."""
    import torch

    from tools.train.config import build_config, save_run_config
    from tools.train.modeling import apply_lora, load_base, lora_settings

    run = tmp_path_factory.mktemp("runs") / "pm-run"
    run.mkdir()
    data = write_dataset(run.parent / "pm.jsonl")
    cfg = build_config("tiny-random", str(data), max_steps=10)
    save_run_config(run, cfg)
    base, tok = load_base(cfg.model, precision="fp32")
    model = apply_lora(base, **lora_settings(cfg))
    # a fresh adapter has B = 0 (no effect); give it weights so merging visibly changes the base
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(1)
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.05)
    model.save_pretrained(run / "adapter")
    tok.save_pretrained(run / "adapter")
    return run


@pytest.fixture
def tiny_run(tiny_run_template: Path, tmp_path: Path) -> Path:
    """A private copy of the tiny-random run, so exports never see each other's files."""
    run = tmp_path / "run"
    shutil.copytree(tiny_run_template, run)
    return run
