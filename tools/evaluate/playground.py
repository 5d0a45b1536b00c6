"""Try your model: its answer to your own prompt, streamed as it is written, and your ratings kept with the run."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tools.errors import UsageError
from tools.evaluate.generate import DEFAULT_MAX_NEW_TOKENS, end_ids, render_prompt, variant
from tools.fileio import append_jsonl

RATINGS = "ratings.jsonl"
"""RUN_DIR/ratings.jsonl: one line per rating, appended, never rewritten."""
SAMPLE_TEMPERATURE = 0.8
"""How freely "another answer" is drawn: different enough to compare, still the model's own kind of answer."""
THUMBS = {"up": 5, "down": 1}
"""A thumb counts as the ends of the 1–5 scale, so thumbs and stars add up in round 2."""
Variant = Literal["tuned", "base"]


class LocalModel:
    """The run's tuned model on this machine (before export), loaded once; 'base' switches its adapter off."""

    def __init__(self, run_dir: str | Path, device: str | None = None) -> None:
        import torch

        from tools.train.config import load_run_config
        from tools.train.modeling import load_tuned

        self.run_dir = Path(run_dir)
        # before loading anything: a classifier says so in a second, not after the weights are read
        task = load_run_config(self.run_dir).task
        if task != "causal":
            raise UsageError(f"{self.run_dir} trained a {task} model: it picks labels, it does not write answers.",
                             "Try it on the validation texts instead: `mtw eval` shows what it predicts.")
        self.model, self.tokenizer, _ = load_tuned(self.run_dir, device=device or (
            "cuda" if torch.cuda.is_available() else "cpu"))
        self._lock = threading.Lock()

    def stream(self, prompt: str, *, which: Variant = "tuned", system: str | None = None,
               max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS, sample: int = 0) -> Iterator[str]:
        """The answer to `prompt`, piece by piece as it is generated (greedy, so the same prompt gives the same text;
        `sample` n > 0: the n-th other answer it could give, drawn at temperature SAMPLE_TEMPERATURE, seeded by n).

        Stop iterating early and the generation stops too.
        """
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

        if not prompt.strip():
            raise UsageError("The prompt is empty.", "Type what you would ask your model.")
        tok = self.tokenizer
        stops = end_ids(tok)
        enc = tok(render_prompt(tok, prompt, system), return_tensors="pt", add_special_tokens=False)
        streamer = TextIteratorStreamer(tok, skip_prompt=True, skip_special_tokens=True)
        cancelled = threading.Event()

        class _Cancelled(StoppingCriteria):
            def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> bool:
                return cancelled.is_set()

        failure: list[BaseException] = []

        drawn: dict[str, Any] = {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
        if sample:
            drawn = {"do_sample": True, "temperature": SAMPLE_TEMPERATURE, "top_p": 0.95, "top_k": None}

        def run() -> None:
            try:
                with torch.no_grad():
                    if sample:
                        torch.manual_seed(sample)
                    self.model.generate(input_ids=enc["input_ids"].to(self.model.device),
                                        attention_mask=enc["attention_mask"].to(self.model.device),
                                        max_new_tokens=max_new_tokens, eos_token_id=stops,
                                        pad_token_id=tok.pad_token_id if tok.pad_token_id is not None else stops[0],
                                        streamer=streamer, stopping_criteria=StoppingCriteriaList([_Cancelled()]),
                                        **drawn)
            except BaseException as exc:  # handed to the reader below, which raises it in the caller's thread
                failure.append(exc)
                streamer.end()

        # one generation at a time: switching the adapter off for 'base' changes the shared model
        with self._lock, variant(self.model, which):
            worker = threading.Thread(target=run, daemon=True)
            worker.start()
            try:
                yield from streamer
            finally:
                cancelled.set()
                worker.join()
        if failure:
            raise failure[0]


def stream_ollama(model: str, prompt: str, *, system: str | None = None,
                  max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS, sample: int = 0) -> Iterator[str]:
    """The answer of an Ollama model (the exported one, or its base) to `prompt`, piece by piece (greedy, seeded;
    `sample` n > 0: another answer, at temperature SAMPLE_TEMPERATURE with seed n)."""
    import httpx
    import ollama

    from tools import ollama_api

    if not prompt.strip():
        raise UsageError("The prompt is empty.", "Type what you would ask your model.")
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
    try:
        for chunk in ollama_api.client().chat(model=model, messages=messages, stream=True,
                                              options={"temperature": SAMPLE_TEMPERATURE if sample else 0,
                                                       "seed": sample, "num_predict": max_new_tokens}):
            if chunk.message.content:
                yield chunk.message.content
    except (ConnectionError, httpx.HTTPError, ollama.ResponseError) as exc:
        raise ollama_api.translate(exc, model) from exc


# ---------------------------------------------------------------- ratings


class Rating(BaseModel):
    """One rating the user gave an answer while trying the model."""

    model_config = ConfigDict(extra="forbid")
    prompt: str
    answer: str
    score: int = Field(ge=1, le=5)
    """1–5; a thumbs up is 5 and a thumbs down 1."""
    thumbs: Literal["up", "down"] | None = None
    """Set when the user rated with a thumb rather than a score."""
    variant: Variant = "tuned"
    source: str = "local"
    """Where the answer came from: 'local' (the run's adapter on this machine) or 'ollama:NAME'."""
    created: str = ""


def rate(run_dir: str | Path, prompt: str, answer: str, rating: int | str, *, which: Variant = "tuned",
         source: str = "local") -> Rating:
    """Keep a rating with the run (RUN_DIR/ratings.jsonl): 1–5, or 'up' / 'down'."""
    run = Path(run_dir)
    if not run.is_dir():
        raise UsageError(f"{run} is not a run folder.", "Rate answers of a model trained by the wizard.")
    thumbs = str(rating).strip().lower() if str(rating).strip().lower() in THUMBS else None
    try:
        score = THUMBS[thumbs] if thumbs else int(str(rating).strip())
        kept = Rating(prompt=prompt, answer=answer, score=score, thumbs=thumbs,  # type: ignore[arg-type]
                      variant=which, source=source, created=datetime.now(UTC).isoformat(timespec="seconds"))
    except (ValueError, ValidationError) as exc:
        raise UsageError(f"'{rating}' is not a rating.", "Give 1 to 5 stars, or thumbs up / down.") from exc
    append_jsonl(run / RATINGS, kept.model_dump())
    return kept


def load_ratings(run_dir: str | Path) -> list[Rating]:
    """Every rating kept with the run, oldest first; a line cut short by a crash is skipped."""
    path = Path(run_dir) / RATINGS
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(Rating.model_validate(json.loads(line)))
        except (json.JSONDecodeError, ValidationError):
            continue
    return out
