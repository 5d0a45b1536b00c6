"""The quick path without training: a SYSTEM prompt and few-shot MESSAGE pairs written from the project spec."""

from __future__ import annotations

import re
from pathlib import Path

from tools.project import ProjectSpec

GUIDE_PARAMETERS: dict[str, float | int] = {"temperature": 0.7, "top_p": 0.9, "num_ctx": 4096}
"""The guide's Modelfile PARAMETERs for the 10-minute customisation."""

FEW_SHOT = 3
"""How many example conversations go into the Modelfile."""

MAX_PAIR_CHARS = 1500
"""Longer examples would eat the context window on every request."""

SAMPLE_CHARS = 800
"""How much of each writing sample the SYSTEM prompt quotes."""

PM_SAMPLE_DATA = Path(__file__).resolve().parents[2] / "examples" / "pm_dataset.jsonl"
"""The bundled PM example dataset, used for few-shot pairs when the project has none of its own."""


def system_prompt(spec: ProjectSpec) -> str:
    """The SYSTEM prompt for a project: its purpose, readers, house style, limits and a sample of its voice."""
    parts: list[str] = []
    purpose = spec.purpose.strip().rstrip(".")
    parts.append(f"You help with this job: {purpose}." if purpose else "You are a helpful writing assistant.")
    if spec.audience.strip():
        parts.append(f"Your readers are: {spec.audience.strip().rstrip('.')}.")
    if spec.house_style.strip():
        parts.append(f"House style: {spec.house_style.strip()}")
    if spec.task_type == "classification" and spec.labels:
        parts.append(f"Answer with exactly one of these labels and nothing else: {', '.join(spec.labels)}.")
    if spec.task_type == "entity_extraction" and spec.entity_types:
        parts.append(f"List every {', '.join(spec.entity_types)} mentioned in the text, one per line as "
                     "'TYPE: text'.")
    if spec.never_do:
        parts.append("Never:\n" + "\n".join(f"- {item.strip()}" for item in spec.never_do if item.strip()))
    samples = [s.strip() for s in spec.samples if s.strip()][:2]
    if samples:
        shown = "\n\n---\n\n".join(s[:SAMPLE_CHARS] for s in samples)
        parts.append(f"Write the way these samples of the team's own writing do:\n\n{shown}")
    return "\n\n".join(parts)


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9']+", text.lower()))


def _distance(a: set[str], b: set[str]) -> float:
    return 1.0 - len(a & b) / max(1, len(a | b))


def pick_few_shot(pairs: list[tuple[str, str]], k: int = FEW_SHOT, focus: str = "") -> list[tuple[str, str]]:
    """Up to `k` (prompt, answer) pairs that fit, are about `focus` (the project's purpose) and differ from each other.

    Start with the pair whose prompt shares most words with `focus` (ties: closest to the typical length),
    then keep adding the pair that best combines relevance with being unlike any already chosen.
    Deterministic for the same input.
    """
    fits = [(p.strip(), a.strip()) for p, a in pairs if p.strip() and a.strip() and len(p) + len(a) <= MAX_PAIR_CHARS]
    if not fits:
        return []
    lengths = sorted(len(p) + len(a) for p, a in fits)
    typical = lengths[len(lengths) // 2]
    topic = _words(focus)
    prompts = [_words(p) for p, _ in fits]
    relevance = [len(w & topic) / max(1, len(w)) for w in prompts]
    chosen = [min(range(len(fits)),
                  key=lambda i: (-relevance[i], abs(len(fits[i][0]) + len(fits[i][1]) - typical), i))]
    words = [_words(p + " " + a) for p, a in fits]
    while len(chosen) < min(k, len(fits)):
        best = max((i for i in range(len(fits)) if i not in chosen),
                   key=lambda i: (relevance[i] + min(_distance(words[i], words[j]) for j in chosen), -i))
        chosen.append(best)
    return [fits[i] for i in chosen]


def dataset_pairs(path: Path) -> list[tuple[str, str]]:
    """(prompt, answer) pairs of the chat rows of a dataset file."""
    from tools.dataset.readers import read_dataset

    result = read_dataset(path)
    return [(ex.prompt(), ex.answer()) for ex in result.examples if ex.kind == "chat" and ex.answer()]


def training_system_prompt(path: Path) -> str | None:
    """The system prompt every chat row of a training file starts with, if they all share one; else None.

    A model trained under a fixed system prompt answers best when Ollama sends the same one.
    """
    from tools.dataset.readers import read_dataset

    chats = [ex for ex in read_dataset(path).examples if ex.kind == "chat"]
    systems = {next((m.content for m in ex.messages if m.role == "system"), None) for ex in chats}
    if len(systems) != 1:
        return None
    return systems.pop() or None


def project_dataset(project_folder: Path) -> Path | None:
    """The project's current dataset version, else the newest dataset file saved in its folder, if it has any."""
    from tools.dataset.store import DatasetStore

    current = DatasetStore(project_folder.name, root=project_folder / "dataset").current()
    if current is not None:
        return current.path
    found = [p for p in project_folder.rglob("*") if p.is_file() and p.suffix in (".jsonl", ".json", ".csv")
             and p.name != "spec.json" and not {"runs", "dataset"} & set(p.relative_to(project_folder).parts)]
    return max(found, key=lambda p: (p.stat().st_mtime, str(p)), default=None)
