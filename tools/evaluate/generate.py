"""Answers from base and tuned, side by side: batched greedy generation in process, or through Ollama."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from tools.train.data import END_OF_TURN

DEFAULT_MAX_NEW_TOKENS = 256
"""For one answer typed in Try it; the evaluation's cap follows the run's own answers (limits.answer_cap)."""


@dataclass
class Generation:
    """One generated answer."""

    text: str
    stopped: bool
    """True when the model ended its turn itself; False when it ran into the token limit."""
    tokens: int


Generator = Callable[[list[str], str], list[Generation]]
"""(prompts, variant "base"/"tuned") → one Generation per prompt."""
Progress = Callable[[str, int, int], None]
"""(what is happening, done, total): e.g. ("tuned answers", 3, 16); total 0 = no count."""


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
             batch_size: int = 16, system: str | None = None,
             on_step: Callable[[int, int], None] | None = None) -> list[Generation]:
    """Greedy answers for `prompts`, rendered with the model's own chat template, in left-padded batches.

    `on_step(ended, tokens)`: how many answers have ended so far, and how many tokens the batch has generated;
    called when an answer ends, every 32 tokens, and with tokens 0 once all are done.
    """
    import torch
    from transformers import StoppingCriteriaList

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
            watch = [] if on_step is None else [_Watch(enc["input_ids"].shape[1], stops, on_step, len(out))]
            with torch.no_grad():
                seqs = model.generate(**enc, do_sample=False, max_new_tokens=max_new_tokens, eos_token_id=stops,
                                      pad_token_id=pad, temperature=None, top_p=None, top_k=None,
                                      stopping_criteria=StoppingCriteriaList(watch))
            for row in seqs[:, enc["input_ids"].shape[1]:].tolist():
                cut = next((j for j, t in enumerate(row) if t in stops), None)
                ids = row if cut is None else row[:cut]
                out.append(Generation(tokenizer.decode(ids, skip_special_tokens=False).strip(), cut is not None,
                                      len(ids)))
            if on_step is not None:
                on_step(len(out), 0)
    finally:
        tokenizer.padding_side = side
    return out


class _Watch:
    """A stopping criterion that never stops anything: it reports the answers that have ended, for progress."""

    EVERY = 32
    """Tokens between two reports while no answer ends: a run to the cap still shows it is moving."""

    def __init__(self, prompt_len: int, stops: list[int], report: Callable[[int, int], None], before: int) -> None:
        import torch

        self.prompt_len, self.report, self.before, self.last = prompt_len, report, before, -1
        self.stops = torch.tensor(stops)

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        made = input_ids.shape[1] - self.prompt_len
        ended = int(torch.isin(input_ids[:, self.prompt_len:], self.stops.to(input_ids.device)).any(dim=1).sum())
        if ended != self.last or made % self.EVERY == 0:
            self.last = ended
            self.report(self.before + ended, made)
        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)


def in_process_generator(model: Any, tokenizer: Any, *, max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
                         bf16: bool = False, progress: Progress | None = None) -> Generator:
    """A Generator over a loaded tuned model: 'base' switches its adapter off.

    On a CPU it generates with the cores that are free now (limits.free_threads). `bf16` casts the weights to bf16
    in place (half the bytes read per token, for CPUs that multiply bf16 natively): make the
    generator after the held-out numbers, which are measured in fp32.
    """
    import torch

    from tools.evaluate.limits import free_threads

    on_cpu = model.device.type == "cpu"
    if bf16:
        model.to(torch.bfloat16)

    def run(prompts: list[str], which: str) -> list[Generation]:
        def report(ended: int, tokens: int) -> None:
            if progress is not None:
                progress(f"{which} answers" + (f" ({tokens} of up to {max_new_tokens} tokens)" if tokens else ""),
                         ended, len(prompts))

        threads = torch.get_num_threads()
        if on_cpu:
            torch.set_num_threads(free_threads())
        try:
            with variant(model, which):
                return generate(model, tokenizer, prompts, max_new_tokens=max_new_tokens, on_step=report)
        finally:
            torch.set_num_threads(threads)

    return run


def ollama_generator(models: dict[str, str], *, max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
                     progress: Progress | None = None) -> Generator:
    """A Generator over Ollama models, e.g. {"base": "phi4-mini", "tuned": "PM-General-v1"} (greedy, seeded)."""
    def run(prompts: list[str], which: str) -> list[Generation]:
        import httpx
        import ollama

        from tools import ollama_api

        client = ollama_api.client()
        out: list[Generation] = []
        for p in prompts:
            if progress is not None:
                progress(f"{which} answers", len(out), len(prompts))
            try:
                r = client.chat(model=models[which], messages=[{"role": "user", "content": p}], stream=False,
                                options={"temperature": 0, "seed": 0, "num_predict": max_new_tokens})
            except (ConnectionError, httpx.HTTPError, ollama.ResponseError) as exc:
                raise ollama_api.translate(exc, models[which]) from exc
            out.append(Generation((r.message.content or "").strip(), r.done_reason != "length", r.eval_count or 0))
        if progress is not None:
            progress(f"{which} answers", len(out), len(prompts))
        return out

    return run


def split_generator(base: Generator, tuned: Generator) -> Generator:
    """A Generator that answers 'base' with one generator and 'tuned' with another (local base, Ollama tuned)."""
    def run(prompts: list[str], which: str) -> list[Generation]:
        return (tuned if which == "tuned" else base)(prompts, which)

    return run
