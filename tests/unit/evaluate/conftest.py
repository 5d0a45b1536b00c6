"""Real run folders for evaluation tests: tiny-random and MiniLM with a LoRA adapter trained for a few steps here."""

import json
import random
from pathlib import Path

import pytest

STORY = "As a {user}\nI want {feature}\nSo that I can work faster\n\nAcceptance criteria:\n- {feature} is in the menu"
FEATURES = ["password reset", "CSV export", "dark mode", "two-factor login", "team invites", "usage dashboard",
            "billing history", "email alerts", "search filters", "bulk delete", "file upload", "audit log",
            "single sign-on", "API keys", "custom roles", "saved views", "data import", "calendar sync",
            "invoice download", "webhooks"]
TICKETS = {
    "bug": ["The app crashes when I upload a file", "Export button does nothing", "Login page shows an error",
            "Numbers in the report are wrong", "The page freezes on save", "Emails arrive twice",
            "The chart is blank on Safari", "Error 500 when saving a project", "Notifications stopped working"],
    "feature": ["Please add dark mode", "Could we get a CSV export", "Add support for SSO", "Add tags to projects",
                "I would like calendar sync", "Allow bulk editing of tasks", "Please add a mobile app",
                "Let us schedule reports", "Add an API for invoices"],
    "question": ["How do I reset my password?", "Where can I find my invoices?", "How do I invite a teammate?",
                 "Is there a limit on file size?", "Can I change my email?", "How do I cancel my plan?",
                 "Which browsers are supported?", "How do I export data?", "Where is the audit log?"],
}


def write_stories(path: Path) -> Path:
    rng = random.Random(0)
    with open(path, "w", encoding="utf-8") as f:
        for feat in FEATURES:
            answer = STORY.format(user=rng.choice(["admin", "customer", "team lead"]), feature=feat)
            f.write(json.dumps({"messages": [{"role": "user", "content": f"Write a user story for {feat}."},
                                             {"role": "assistant", "content": answer}]}) + "\n")
    return path


def write_tickets(path: Path) -> Path:
    rows = [(t, lab) for lab, ts in TICKETS.items() for t in ts]
    random.Random(0).shuffle(rows)
    path.write_text("".join(json.dumps({"text": t, "label": lab}) + "\n" for t, lab in rows), encoding="utf-8")
    return path


def _train_causal(run: Path, data: Path, steps: int) -> None:
    import torch

    from tools.train.batching import padded_batch
    from tools.train.config import TrainConfig, save_run_config
    from tools.train.data import tokenize_chat
    from tools.train.events import EventWriter
    from tools.train.inputs import read_training_data
    from tools.train.loss import lm_loss
    from tools.train.modeling import apply_lora, load_base

    cfg = TrainConfig(model="tiny-random", data=str(data), max_steps=steps, val_share=0.2, context=256)
    save_run_config(run, cfg)
    split = read_training_data(str(data), model=None, context=cfg.context, val_share=cfg.val_share, seed=cfg.seed,
                               check_model=False)
    base, tok = load_base("tiny-random", "causal", precision="fp32")
    model = apply_lora(base, r=8, alpha=16, dropout=0.0, seed=0)
    ex = [tokenize_chat(tok, [{"role": m.role, "content": m.content} for m in e.messages], 256) for e in split.train]
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    events = EventWriter(run)
    events.emit("start", config=cfg.model_dump(mode="json"), n_examples=len(ex), device="cpu")
    model.train()
    for step in range(1, steps + 1):
        batch = padded_batch([ex[(step * 4 + k) % len(ex)] for k in range(4)], tok.pad_token_id or 0)
        loss, _ = lm_loss(model, batch)
        loss.backward()
        opt.step()
        opt.zero_grad()
        events.emit("step", step=step, epoch=step * 4 / len(ex), loss=loss.item(), lr=1e-2, tokens_per_s=1000.0,
                    eta_s=steps - step, peak_mem_mb=400.0)
    model.eval()
    model.save_pretrained(str(run / "adapter"))
    tok.save_pretrained(str(run / "adapter"))
    events.emit("done", adapter=str(run / "adapter"), metrics={})


def _train_classifier(run: Path, data: Path, steps: int) -> None:
    import torch

    from tools.train.config import TrainConfig, save_run_config
    from tools.train.inputs import read_training_data
    from tools.train.modeling import apply_lora, load_base

    labels = sorted(TICKETS)
    cfg = TrainConfig(model="minilm", data=str(data), task="classification", labels=labels, val_share=0.3,
                      context=64, max_steps=steps)
    save_run_config(run, cfg)
    split = read_training_data(str(data), model=None, context=64, val_share=cfg.val_share, seed=cfg.seed,
                               check_model=False)
    base, tok = load_base("minilm", "classification", labels=labels, precision="fp32", seed=cfg.seed)
    model = apply_lora(base, task="classification", r=8, alpha=16, dropout=0.0, seed=0)
    texts = [e.text for e in split.train]
    y = torch.tensor([labels.index(str(e.label)) for e in split.train])
    enc = tok(texts, padding=True, return_tensors="pt")
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=5e-3)
    model.train()
    for _ in range(steps):
        loss = model(**enc, labels=y).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    model.eval()
    model.save_pretrained(str(run / "adapter"))
    tok.save_pretrained(str(run / "adapter"))


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """A tiny-random run folder: config.yaml, events.jsonl, adapter/ trained 20 steps on 16 user stories."""
    root = tmp_path_factory.mktemp("tiny")
    run = root / "run"
    _train_causal(run, write_stories(root / "stories.jsonl"), steps=20)
    return run


@pytest.fixture(scope="session")
def minilm_run(tmp_path_factory) -> Path:
    """A MiniLM ticket classifier run folder (bug / feature / question)."""
    root = tmp_path_factory.mktemp("minilm")
    run = root / "run"
    _train_classifier(run, write_tickets(root / "tickets.jsonl"), steps=8)
    return run
