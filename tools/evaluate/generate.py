"""Answers from base and tuned, side by side: batched greedy generation in process, or through Ollama."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from tools.train.data import END_OF_TURN

DEFAULT_MAX_NEW_TOKENS = 256


@dataclass
class Generation:
    """One generated answer."""

    text: str
    stopped: bool
    """True when the model ended its turn itself; False when it ran into the token limit."""
    tokens: int


Generator = Callable[[list[str], str], list[Generation]]
"""(prompts, variant "base"/"tuned") → one Generation per prompt."""


@contextmanager
def variant(model: Any, which: str) -> Iterator[Any]:
    """The tuned model as is, or its base with the LoRA adapter switched off (no second copy in memory)."""
    from peft import PeftModel

    if which == "base" and isinstance(model, PeftModel):
        with model.disable_adapter():
            yield model
    else:
        yield model


def end_ids(tokenizer: Any) -> list[int]:
    """Token ids that end an assistant turn for this tokenizer (its end-of-turn markers and EOS)."""
    vocab = tokenizer.get_vocab()
    ids = {vocab[m] for m in END_OF_TURN if m in vocab}
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    return sorted(ids)


def render_prompt(tokenizer: Any, prompt: str, system: str | None = None) -> str:
    """The prompt as the model reads it: its own chat template, ready for the assistant's turn."""
    turns = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
    return str(tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=True))


def generate(model: Any, tokenizer: Any, prompts: list[str], *, max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
             batch_size: int = 16, system: str | None = None) -> list[Generation]:
    """Greedy answers for `prompts`, rendered with the model's own chat template, in left-padded batches."""
    import torch

    stops = end_ids(tokenizer)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stops[0]
    side = tokenizer.padding_side
    # decoder-only models continue from the last position: pad on the left so every prompt ends there
    tokenizer.padding_side = "left"
    out: list[Generation] = []
    try:
        for i in range(0, len(prompts), batch_size):
            chunk = prompts[i: i + batch_size]
            texts = [render_prompt(tokenizer, p, system) for p in chunk]
            enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
            # only what a decoder reads (a BERT-style tokenizer adds token_type_ids, which generate() rejects)
            enc = {k: enc[k].to(model.device) for k in ("input_ids", "attention_mask")}
            with torch.no_grad():
                seqs = model.generate(**enc, do_sample=False, max_new_tokens=max_new_tokens, eos_token_id=stops,
                                      pad_token_id=pad, temperature=None, top_p=None, top_k=None)
            for row in seqs[:, enc["input_ids"].shape[1]:].tolist():
                cut = next((j for j, t in enumerate(row) if t in stops), None)
                ids = row if cut is None else row[:cut]
                out.append(Generation(tokenizer.decode(ids, skip_special_tokens=False).strip(), cut is not None,
                                      len(ids)))
    finally:
        tokenizer.padding_side = side
    return out


def in_process_generator(model: Any, tokenizer: Any, *, max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS) -> Generator:
    """A Generator over a loaded tuned model: 'base' switches its adapter off."""
    def run(prompts: list[str], which: str) -> list[Generation]:
        with variant(model, which):
            return generate(model, tokenizer, prompts, max_new_tokens=max_new_tokens)

    return run


def ollama_generator(models: dict[str, str], *, max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS) -> Generator:
    """A Generator over Ollama models, e.g. {"base": "phi4-mini", "tuned": "PM-General-v1"} (greedy, seeded)."""
    def run(prompts: list[str], which: str) -> list[Generation]:
        import httpx
        import ollama

        from tools import ollama_api

        client = ollama_api.client()
        out = []
        for p in prompts:
            try:
                r = client.chat(model=models[which], messages=[{"role": "user", "content": p}], stream=False,
                                options={"temperature": 0, "seed": 0, "num_predict": max_new_tokens})
            except (ConnectionError, httpx.HTTPError, ollama.ResponseError) as exc:
                raise ollama_api.translate(exc, models[which]) from exc
            out.append(Generation((r.message.content or "").strip(), r.done_reason != "length", r.eval_count or 0))
        return out

    return run


def split_generator(base: Generator, tuned: Generator) -> Generator:
    """A Generator that answers 'base' with one generator and 'tuned' with another (local base, Ollama tuned)."""
    def run(prompts: list[str], which: str) -> list[Generation]:
        return (tuned if which == "tuned" else base)(prompts, which)

    return run
