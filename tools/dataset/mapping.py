"""Which column holds which field: `--map FIELD=COLUMN` and LLaMA-Factory's dataset_info.json entries."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tools.errors import UsageError

FIELDS = ("text", "label", "prompt", "response", "completion", "context", "instruction", "input", "output",
          "system", "messages", "conversations", "history", "tools", "tokens", "tags", "chosen", "rejected",
          "query", "kto_tag")
"""Fields a column can be mapped to."""
TAGS = ("role_tag", "content_tag", "user_tag", "assistant_tag", "observation_tag", "function_tag", "system_tag")
"""LLaMA-Factory's turn tags: which key of a turn holds its role and which its text, and the role names used."""

# LLaMA-Factory's column names -> the fields our readers read, per `formatting`
_LF_ALPACA = {"prompt": "instruction", "query": "input", "response": "output", "history": "history",
              "system": "system", "tools": "tools", "chosen": "chosen", "rejected": "rejected", "kto_tag": "kto_tag"}
_LF_SHAREGPT = {"messages": "conversations", "system": "system", "tools": "tools", "chosen": "chosen",
                "rejected": "rejected", "kto_tag": "kto_tag"}


def parse_map(items: Sequence[str]) -> dict[str, str]:
    """`["text=SMS", "label=Label"]` -> {"text": "SMS", "label": "Label"}; a bad item is a usage error."""
    out: dict[str, str] = {}
    for item in items:
        fld, sep, col = item.partition("=")
        fld, col = fld.strip().lower(), col.strip()
        if not sep or not fld or not col:
            raise UsageError(f"--map {item}: write it as FIELD=COLUMN.", "e.g. --map text=SMS --map label=Label")
        if fld not in FIELDS and fld not in TAGS:
            raise UsageError(f"--map {item}: '{fld}' is not a field mtw reads.",
                             f"Use one of: {', '.join(FIELDS)}; or, for the turns of a conversation, one of "
                             f"{', '.join(TAGS)} (e.g. --map role_tag=speaker --map user_tag=customer).")
        out[fld] = col
    return out


def from_dataset_info(info: Path, name: str) -> dict[str, str]:
    """The column map of one entry of a LLaMA-Factory dataset_info.json."""
    return _mapping(_entry(info, name))


def ranking_format(info: Path | None, name: str | None) -> str | None:
    """"dpo" when the dataset_info.json entry is a ranking dataset (`"ranking": true`: chosen / rejected pairs)."""
    if info is None or name is None:
        return None
    return "dpo" if _entry(info, name).get("ranking") is True else None


def _entry(info: Path, name: str) -> dict[str, Any]:
    try:
        registry = json.loads(info.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"Could not read {info} as a dataset_info.json ({exc}).",
                         "Give LLaMA-Factory's data/dataset_info.json.") from exc
    if not isinstance(registry, dict) or name not in registry or not isinstance(registry[name], dict):
        known = ", ".join(list(registry)[:10]) if isinstance(registry, dict) else "none"
        raise UsageError(f"{info} has no dataset named '{name}'.", f"Use one of: {known}.")
    entry: dict[str, Any] = registry[name]
    return entry


def _mapping(entry: dict[str, Any]) -> dict[str, str]:
    columns = entry.get("columns") or {}
    table = _LF_SHAREGPT if entry.get("formatting") == "sharegpt" else _LF_ALPACA
    out = {table[k]: v for k, v in columns.items() if k in table and isinstance(v, str) and table[k] != v}
    tags = entry.get("tags") or {}
    if entry.get("formatting") == "sharegpt" and isinstance(tags, dict):
        # LLaMA-Factory reads tags for sharegpt entries only
        out.update({k: v for k, v in tags.items() if k in TAGS and isinstance(v, str)})
    return out


def column_map(items: Sequence[str], info: Path | None, name: str | None) -> dict[str, str]:
    """The map from --dataset-info/--dataset, then --map on top (the command line wins)."""
    if (info is None) != (name is None):
        raise UsageError("--dataset-info and --dataset go together.",
                         "e.g. --dataset-info data/dataset_info.json --dataset alpaca_en_demo")
    out = from_dataset_info(info, name) if info is not None and name is not None else {}
    out.update(parse_map(items))
    return out
