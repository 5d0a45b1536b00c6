"""Which way a tuned model goes into Ollama: adapter, GGUF adapter, merged or GGUF, chosen and explained (pure)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from tools.errors import UsageError

Route = Literal["adapter", "gguf-adapter", "merged", "gguf"]
ROUTES: tuple[Route, ...] = ("adapter", "gguf-adapter", "merged", "gguf")

MIN_OLLAMA = (0, 5, 5)
"""The create API with `files` / `adapters` (what our upload uses) arrived in Ollama 0.5.5."""

ADAPTER_ARCHS = frozenset({"llama", "gemma2"})
"""Ollama imports a safetensors LoRA ADAPTER only for these bases."""

# from Ollama's convert/ package as of v0.33 (checked 2026-11): MistralForCausalLM was dropped in 0.6.5 (a mistral
# base goes through GGUF), qwen2 arrived in 0.5.6, gemma3 in 0.6.0; Qwen3 is not converted
CONVERTIBLE: dict[str, tuple[int, int, int]] = {
    "llama": MIN_OLLAMA, "mixtral": MIN_OLLAMA, "gemma": MIN_OLLAMA, "gemma2": MIN_OLLAMA, "phi3": MIN_OLLAMA,
    "qwen2": (0, 5, 6), "gemma3": (0, 6, 0),
}
"""Architectures Ollama converts from safetensors itself, and the first Ollama version that does."""

UNQUANTISED = frozenset({"F16", "BF16", "F32"})

_ARCH_NAMES = {
    "LlamaForCausalLM": "llama", "MistralForCausalLM": "mistral", "MixtralForCausalLM": "mixtral",
    "GemmaForCausalLM": "gemma", "Gemma2ForCausalLM": "gemma2", "Gemma3ForCausalLM": "gemma3",
    "Gemma3ForConditionalGeneration": "gemma3", "Phi3ForCausalLM": "phi3", "Qwen2ForCausalLM": "qwen2",
}


@dataclass(frozen=True)
class RouteChoice:
    """The route and why, in words a user can follow."""

    route: Route
    reason: str


def arch_name(architecture: str) -> str:
    """Ollama's short name for a transformers architecture class (`Phi3ForCausalLM` → `phi3`)."""
    if architecture in _ARCH_NAMES:
        return _ARCH_NAMES[architecture]
    return re.sub(r"for(causallm|conditionalgeneration)$", "", architecture.lower())


def parse_version(text: str | None) -> tuple[int, int, int] | None:
    """(major, minor, patch) from a version string like '0.12.6' or '0.6.0-rc1'; None when unreadable."""
    m = re.match(r"v?(\d+)\.(\d+)(?:\.(\d+))?", (text or "").strip())
    if not m:
        return None
    return int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)


def _v(version: tuple[int, int, int]) -> str:
    return ".".join(map(str, version))


def require_ollama(ollama_version: str | None) -> tuple[int, int, int] | None:
    """The parsed version; UsageError when Ollama is too old for the create API we use."""
    version = parse_version(ollama_version)
    if version is not None and version < MIN_OLLAMA:
        raise UsageError(f"Your Ollama is version {ollama_version}; creating models through its API needs "
                         f"{_v(MIN_OLLAMA)} or newer.", "Update Ollama from https://ollama.com/download and try again.")
    return version


def choose_route(
    requested: str,
    *,
    architecture: str,
    ollama_tag: str | None,
    adapter_ok: bool,
    base_quantization: str | None,
    ollama_version: str | None,
    llama_cpp: bool = False,
    gguf_base: str = "",
) -> RouteChoice:
    """The route for `requested` ('auto' or a route name); UsageError when it cannot work, with the way out.

    `base_quantization` is the quantisation of the base as Ollama holds it (`/api/show` details, e.g.
    'Q4_K_M' or 'F16'; None when unknown or not pulled); `ollama_version` is None when Ollama is not asked
    (dry run); `llama_cpp` says whether llama.cpp's converters are on this machine. `gguf_base` is "ollama" when the
    run trained on the very GGUF `ollama_tag` holds in the user's Ollama, "file" when it trained on a GGUF file that
    Ollama does not hold, "" otherwise.
    """
    arch = arch_name(architecture)
    version = require_ollama(ollama_version)
    converts = arch in CONVERTIBLE and (version is None or version >= CONVERTIBLE[arch])
    adapter_possible = adapter_ok and arch in ADAPTER_ARCHS and bool(ollama_tag)
    exact_base = (base_quantization or "").upper() in UNQUANTISED

    if requested == "adapter":
        if not ollama_tag:
            raise UsageError("The adapter route needs the same base model in Ollama, and this base has no Ollama tag.",
                             "Use --route merged: the tuned weights then travel as one model.")
        if not (adapter_ok and arch in ADAPTER_ARCHS):
            raise UsageError(f"Ollama loads LoRA adapters only for llama and gemma2 bases; this base is {arch}.",
                             "Use --route merged (or --route auto).")
        return RouteChoice("adapter", f"You asked for the adapter route: the LoRA adapter is applied on top of "
                                      f"'{ollama_tag}' in your Ollama.")
    if requested == "gguf-adapter":
        if not ollama_tag and gguf_base != "file":
            raise UsageError("The gguf-adapter route needs the same base model in Ollama, and this base has no "
                             "Ollama tag.", "Use --route merged or --route gguf: the tuned weights then travel as "
                                            "one model.")
        return RouteChoice("gguf-adapter", f"You asked for the GGUF adapter route: llama.cpp turns the LoRA adapter "
                                           f"into a small GGUF file that Ollama applies on top of '{ollama_tag}'.")
    if requested == "merged":
        if not converts:
            need = f" (Ollama {_v(CONVERTIBLE[arch])} or newer)" if arch in CONVERTIBLE else ""
            raise UsageError(f"Ollama cannot convert {arch} models from safetensors{need}.",
                             "Use --route gguf (needs llama.cpp's converter), or update Ollama.")
        return RouteChoice("merged", "You asked for the merged route: the adapter is folded into the base weights "
                                     "and Ollama converts the result.")
    if requested == "gguf":
        return RouteChoice("gguf", "You asked for the GGUF route: llama.cpp's converter writes one model.gguf file.")
    if requested != "auto":
        raise UsageError(f"Unknown route '{requested}'.", f"Use one of: auto, {', '.join(ROUTES)}.")
    if gguf_base:
        return _on_trained_gguf(gguf_base, arch, ollama_tag, base_quantization, llama_cpp, converts)

    if adapter_possible and exact_base:
        return RouteChoice("adapter", f"Ollama applies LoRA adapters to {arch} bases, and '{ollama_tag}' in your "
                                      f"Ollama holds the full-precision ({base_quantization}) weights the adapter "
                                      "learned on, so uploading the small adapter is enough.")
    in_ollama = bool(ollama_tag) and base_quantization is not None
    if in_ollama and llama_cpp and arch not in ADAPTER_ARCHS:
        drift = ("" if exact_base else f" Your Ollama holds that base as {base_quantization}, so its answers can "
                                       "differ a little from the tuned model's.")
        return RouteChoice("gguf-adapter", f"Ollama applies safetensors adapters only to llama and gemma2 bases, but "
                                           f"it takes a GGUF adapter on any base: llama.cpp converts the small "
                                           f"adapter, which sits on '{ollama_tag}' already in your Ollama." + drift)
    if converts:
        if adapter_possible:
            held = f"is {base_quantization}" if base_quantization else "could not be checked"
            why = (f"Ollama could apply the adapter to '{ollama_tag}', but that base {held}, not the exact weights "
                   "the adapter learned on, so answers would drift. ")
        elif arch in ADAPTER_ARCHS and not ollama_tag:
            why = "This base is not in Ollama's library, so the adapter has nothing to sit on. "
        else:
            why = f"Ollama cannot load a LoRA adapter on a {arch} base. "
        return RouteChoice("merged", why + f"Merging the adapter into the base gives one model that Ollama converts "
                                           f"itself ({arch} is an architecture it knows).")
    if arch in CONVERTIBLE:
        return RouteChoice("gguf", f"Your Ollama ({ollama_version}) cannot convert {arch} models yet (it needs "
                                   f"{_v(CONVERTIBLE[arch])}), so the merged model goes through llama.cpp's GGUF "
                                   "converter instead; updating Ollama would allow the simpler merged route.")
    return RouteChoice("gguf", f"Ollama cannot convert {arch} models from safetensors, so the merged model goes "
                               "through llama.cpp's GGUF converter, which knows many more architectures.")


def _on_trained_gguf(gguf_base: str, arch: str, ollama_tag: str | None, quantization: str | None, llama_cpp: bool,
                     converts: bool) -> RouteChoice:
    """The route for a run that trained on a GGUF: a small adapter on those very weights whenever possible."""
    held = f"'{ollama_tag}' in your Ollama" if gguf_base == "ollama" else "its GGUF file"
    exact = (f"This run trained on the very weights of {held} ({quantization or 'GGUF'}), so a small adapter on "
             "top of them is exact")
    if llama_cpp:
        return RouteChoice("gguf-adapter", exact + ": llama.cpp turns the LoRA adapter into a GGUF adapter, and "
                                                   "nothing else needs uploading."
                           if gguf_base == "ollama" else exact + ": llama.cpp turns the LoRA adapter into a GGUF "
                                                                 "adapter that Ollama applies to that file.")
    if gguf_base == "ollama" and arch in ADAPTER_ARCHS:
        return RouteChoice("adapter", exact + f": Ollama applies LoRA adapters to {arch} bases itself.")
    if converts:
        return RouteChoice("merged", f"{exact.split(', so')[0]}. llama.cpp's converters are not on this machine to "
                                     "make a GGUF adapter, so the adapter is folded into the dequantized base and "
                                     "Ollama converts the result (a full-size model; with LLAMA_CPP_DIR set the "
                                     "export is a small adapter instead).")
    return RouteChoice("gguf-adapter", exact + ": llama.cpp turns the LoRA adapter into a GGUF adapter (set "
                                               "LLAMA_CPP_DIR to llama.cpp's folder first).")
