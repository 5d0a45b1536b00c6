"""The export workflow, top to bottom: choose the route, write the files, create in Ollama, verify, register."""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tools.errors import MTWError, UsageError
from tools.export.create import CreateJob, Progress, create
from tools.export.modelfile import ModelfileSpec, render_modelfile
from tools.export.names import check_name
from tools.export.quick import (
    GUIDE_PARAMETERS,
    PM_SAMPLE_DATA,
    dataset_pairs,
    pick_few_shot,
    project_dataset,
    system_prompt,
    training_system_prompt,
)
from tools.export.routes import UNQUANTISED, RouteChoice, choose_route
from tools.export.templates import stops_for, template_for
from tools.export.verify import PROBES, Check, ask_ollama, stop_budget, verify_replies
from tools.fileio import atomic_write_text

if TYPE_CHECKING:
    from tools.models.catalog import CatalogEntry

Say = Callable[[str], None]


@dataclass
class ExportResult:
    """What an export did: where its files are, the commands to repeat it, and how verification went."""

    name: str
    route: str
    reason: str
    export_dir: Path
    modelfile: Path
    commands: list[str]
    dry_run: bool
    checks: list[Check] = field(default_factory=list)
    registered: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        """True when every verification check passed (a dry run has none)."""
        return all(c.ok for c in self.checks)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "route": self.route, "reason": self.reason, "export_dir": str(self.export_dir),
                "modelfile": str(self.modelfile), "commands": self.commands, "dry_run": self.dry_run,
                "ok": self.ok, "checks": [c.as_dict() for c in self.checks], "registered": self.registered}


def _run_base_entry(run_dir: Path, model: str, dry_run: bool) -> CatalogEntry:
    """The weights the run trained on (RUN_DIR/base.json), or its model resolved now for an older run."""
    from tools.train.bases import run_entry

    try:
        return run_entry(run_dir, model, ask_ollama=not dry_run)
    except UsageError as exc:
        entry = base_entry(model, ask_ollama=not dry_run)
        if entry is None:
            raise UsageError(f"The run's base model '{model}' cannot be found any more ({exc.message})",
                             "Make the base model available again (same folder, download or Ollama), then "
                             "export.") from exc
        return entry


def _gguf_base(entry: CatalogEntry, dry_run: bool) -> str:
    """"ollama" when the run trained on the very GGUF its Ollama tag holds now, "file" for any other GGUF, else ""."""
    if not entry.gguf:
        return ""
    if not entry.ollama_tag:
        return "file"
    if dry_run:
        return "ollama"
    from tools.ollama_api import gguf_blob

    held = gguf_blob(entry.ollama_tag)
    # a tag pulled again since may hold newer weights, which the adapter never saw
    return "ollama" if held is not None and held.path.resolve() == Path(entry.gguf).resolve() else "file"


def base_entry(model: str, *, ask_ollama: bool = True) -> CatalogEntry | None:
    """The catalog entry for a model named by key, Hugging Face id, folder or Ollama tag; None when unknown."""
    from tools.models.catalog import CATALOG, resolve

    try:
        return resolve(model, ask_ollama=ask_ollama)
    except UsageError:
        tag = model if ":" in model else f"{model}:latest"
        return next((e for e in CATALOG.values() if e.ollama_tag and tag in (e.ollama_tag, f"{e.ollama_tag}:latest")),
                    None)


def _ollama_base_quantization(tag: str | None) -> str | None:
    """The quantisation Ollama holds the base in (`/api/show` details), or None when it is not there."""
    if not tag:
        return None
    from tools.ollama_api import client

    try:
        details = client(timeout=10).show(tag).details
    except Exception:  # not pulled (404) or unreadable: the route table treats both as unknown
        return None
    return str(details.quantization_level) if details and details.quantization_level else None


def ollama_reads(filename: str) -> bool:
    """True for the files Ollama's safetensors import uses: weights, JSON configs and a SentencePiece model."""
    return filename.endswith((".safetensors", ".json")) or filename == "tokenizer.model"


SMALL_BASE_B = 1.0
"""Tuned models on bases under this many billion parameters answer at SMALL_TEMPERATURE."""
SMALL_TEMPERATURE = 0.3
"""Measured on SmolLM2-135M tuned on the sample data (bench/README.md): the held-out user stories in the data's shape
went from 2–3 of 8 at the guide's 0.7 to 4–6 of 8 at 0.3 (6 of 8 greedy); a model this small samples its way out of
what it learned at 0.7."""


def tuned_temperature(entry: CatalogEntry) -> float:
    """The exported model's temperature: the guide's 0.7, or 0.3 for a tuned base under 1B parameters."""
    from tools.models.catalog import TINY_RANDOM

    small = entry.key != TINY_RANDOM and 0 < entry.params_b < SMALL_BASE_B
    return SMALL_TEMPERATURE if small else float(GUIDE_PARAMETERS["temperature"])


def _parameters(stops: list[str], num_ctx: int, temperature: float | None = None
                ) -> list[tuple[str, str | int | float]]:
    params: list[tuple[str, str | int | float]] = [
        ("temperature", GUIDE_PARAMETERS["temperature"] if temperature is None else temperature),
        ("top_p", GUIDE_PARAMETERS["top_p"]), ("num_ctx", num_ctx)]
    return params + [("stop", s) for s in stops]


def _api_parameters(params: list[tuple[str, str | int | float]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in params:
        if key == "stop":
            out.setdefault("stop", []).append(value)
        else:
            out[key] = value
    return out


def _command(name: str, modelfile: Path, quantize: str | None) -> str:
    # quoted: the user pastes it into a shell
    return shlex.join(["ollama", "create", name, "-f", str(modelfile),
                       *(["--quantize", quantize] if quantize else [])])


def _adapter_files(run_dir: Path) -> dict[str, Path]:
    adapter = run_dir / "adapter"
    files = {n: adapter / n for n in ("adapter_model.safetensors", "adapter_config.json")}
    missing = [n for n, p in files.items() if not p.is_file()]
    if missing:
        raise UsageError(f"{run_dir} has no finished adapter ({adapter} lacks {', '.join(missing)}).",
                         f"Finish training first (`mtw train ... --out {run_dir}`, or add --resume), then export.")
    return files


def export_run(run_dir: Path, name: str, route: str = "auto", *, dry_run: bool = False, quantize: str | None = None,
               say: Say = print, progress: Progress = lambda what, done, total: None) -> ExportResult:
    """Export a training run to Ollama (or, with `dry_run`, only write RUN_DIR/export/ and the commands)."""
    from tools import ollama_api
    from tools.export import merge
    from tools.train.config import load_run_config

    check_name(name)  # before anything is written: the name goes into the commands printed
    run_dir = Path(run_dir)
    cfg = load_run_config(run_dir)
    if cfg.task != "causal":
        raise UsageError(f"{run_dir} trained a {cfg.task} model (labels, not text): Ollama runs text-generation "
                         "models only.", "Use it from Python with tools.train.modeling.load_tuned, and check it "
                                         f"with `mtw eval {run_dir}`.")
    adapter_files = _adapter_files(run_dir)
    entry = _run_base_entry(run_dir, cfg.model, dry_run)
    version = None if dry_run else ollama_api.version()
    base_quant = None if dry_run else _ollama_base_quantization(entry.ollama_tag)
    gguf_base = _gguf_base(entry, dry_run)
    if gguf_base:
        base_quant = base_quant or entry.quantization
    choice: RouteChoice = choose_route(route, architecture=entry.architecture, ollama_tag=entry.ollama_tag,
                                       adapter_ok=entry.ollama_adapter_ok, base_quantization=base_quant,
                                       ollama_version=version, gguf_base=gguf_base,
                                       llama_cpp=merge.find_converter(script=merge.LORA_CONVERTER) is not None)
    say(f"Route: {choice.route}. {choice.reason}")
    # a base kept as a GGUF file Ollama does not hold travels with the model (FROM that file)
    on_file = gguf_base == "file" and choice.route in ("adapter", "gguf-adapter")
    export_dir = run_dir / "export"
    export_dir.mkdir(parents=True, exist_ok=True)

    files: dict[str, Path] = {}
    adapters: dict[str, Path] = {}
    if choice.route == "adapter":
        assert entry.ollama_tag, "choose_route only picks the adapter route for a base with an Ollama tag"
        from_, adapter_line, adapters = entry.ollama_tag, "../adapter", adapter_files
    elif choice.route == "gguf-adapter":
        lora_converter = merge.require_converter(script=merge.LORA_CONVERTER)
        progress("converting the adapter to GGUF with llama.cpp", 0, 0)
        gguf_adapter = merge.convert_adapter_to_gguf(lora_converter, run_dir / "adapter",
                                                     merge.base_config_dir(entry, export_dir / "base-config"),
                                                     export_dir / "adapter.gguf")
        adapters = {"adapter.gguf": gguf_adapter}
        if on_file:
            from_, adapter_line, files = entry.gguf, "./adapter.gguf", {"model.gguf": Path(entry.gguf)}
        else:
            assert entry.ollama_tag, "choose_route only picks the gguf-adapter route for a base with an Ollama tag"
            from_, adapter_line = entry.ollama_tag, "./adapter.gguf"
    else:
        converter = merge.require_converter() if choice.route == "gguf" else None
        merged_dir = export_dir / "merged"
        written = merge.merge_run(run_dir, merged_dir, progress)
        say(f"Merged model written to {merged_dir} ({sum(p.stat().st_size for p in written) / 1e6:.1f} MB).")
        if converter is not None:
            gguf = export_dir / "model.gguf"
            merge.check_disk(sum(p.stat().st_size for p in written), merge.free_bytes(export_dir), export_dir)
            progress("converting to GGUF with llama.cpp", 0, 0)
            merge.convert_to_gguf(converter, merged_dir, gguf)
            from_, adapter_line, files = "./model.gguf", None, {"model.gguf": gguf}
        else:
            from_, adapter_line = "./merged", None
            files = {p.name: p for p in written if ollama_reads(p.name)}

    stops = stops_for(entry.template_family, entry.stop_tokens)
    params = _parameters(stops, min(cfg.context, entry.context), tuned_temperature(entry))
    system = training_system_prompt(Path(cfg.data)) if Path(cfg.data).is_file() else None
    spec = ModelfileSpec(from_=from_, adapter=adapter_line, parameters=params, system=system,
                         template=template_for(entry.template_family, entry.template_variant))
    modelfile = export_dir / "Modelfile"
    atomic_write_text(modelfile, render_modelfile(spec))
    result = ExportResult(name, choice.route, choice.reason, export_dir, modelfile,
                          [_command(name, modelfile, quantize)], dry_run)
    if dry_run:
        if choice.route == "adapter":
            say("If `ollama create` then reports no adapter in the folder, your Ollama has the known folder-import "
                "problem: run the same `mtw export` without --dry-run, which uploads the files through the API.")
        return result

    on_base = choice.route in ("adapter", "gguf-adapter")
    job = CreateJob(name=name, from_=entry.ollama_tag if on_base and not on_file else None, files=files,
                    adapters=adapters, quantize=quantize, template=spec.template, system=system,
                    parameters=_api_parameters(params))
    create(ollama_api.client(), job, progress)
    say(f"Created '{name}' in Ollama. Checking that it answers and stops...")
    from tools.export.verify import ask_tuned

    try:
        expected, count_tokens, end_token = ask_tuned(run_dir, PROBES, system)
        # word-for-word only when Ollama runs the very weights we ran: unquantised, on an unquantised base (a GGUF
        # base trains on its dequantized weights, but llama.cpp multiplies them quantized: close, not identical)
        exact = quantize is None and not gguf_base and (not on_base or (base_quant or "").upper() in UNQUANTISED)
        replies = ask_ollama(name, PROBES, budgets=[stop_budget(e.tokens) for e in expected], plain=exact)
        result.checks = verify_replies(replies, stops, expected, exact=exact, count_tokens=count_tokens,
                                       end_token=end_token, template=spec.template)
    except MTWError as exc:
        # the model is in Ollama: a check that could not run is a failed check, never a failed export
        result.checks = [Check("checked", False, f"It is in Ollama, but checking it did not work: {exc.message}",
                               exc.fix or f"Try it with `ollama run {name}`; check it again from the menu.")]

    from tools import registry
    from tools.train.inputs import run_dataset_version

    record = registry.register(registry.ModelRecord(
        name=name, base_model=cfg.model, route=choice.route, ollama_tag=name,
        dataset_hash=run_dataset_version(run_dir, cfg.data), run_id=run_dir.resolve().name,
        run_dir=str(run_dir.resolve()), eval_scores=registry.run_scores(run_dir),
        verified=result.ok, notes=choice.reason, method=cfg.method, judgements=registry.run_judgements(run_dir)))
    result.registered = record.as_dict()
    return result


def export_from_spec(project: str, name: str, *, dry_run: bool = False, data: Path | None = None,
                     say: Say = print, progress: Progress = lambda what, done, total: None) -> ExportResult:
    """The quick path: a model on the project's base in Ollama, styled by a SYSTEM prompt and few-shot examples."""
    from tools import ollama_api
    from tools.project import load_spec, project_dir, slugify

    check_name(name)  # before anything is written: the name is a folder here, and goes into the commands printed
    spec = load_spec(project)
    entry = base_entry(spec.base_model)
    if entry is not None and not entry.ollama_tag:
        from tools.models.catalog import CATALOG

        tagged = ", ".join(e.key for e in CATALOG.values() if e.ollama_tag)
        raise UsageError(f"The quick path builds on a model in Ollama, and the project's base '{spec.base_model}' "
                         "has no Ollama version.", f"Set the project's base model to one that has: {tagged}.")
    tag = entry.ollama_tag if entry and entry.ollama_tag else spec.base_model
    source = data or project_dataset(project_dir(slugify(spec.name or project)))
    if source is None and PM_SAMPLE_DATA.is_file():
        source = PM_SAMPLE_DATA
        say(f"Few-shot examples come from the bundled PM sample data ({source.name}): the project has no dataset yet.")
    pairs = pick_few_shot(dataset_pairs(source), focus=f"{spec.purpose} {spec.house_style}") if source else []
    messages = [(role, text) for p, a in pairs for role, text in (("user", p), ("assistant", a))]
    stops = stops_for(entry.template_family, entry.stop_tokens) if entry else []
    params = _parameters(stops, int(GUIDE_PARAMETERS["num_ctx"]))
    # with no catalog entry the base keeps the template Ollama already has for it
    template = template_for(entry.template_family, entry.template_variant) if entry else None
    mf = ModelfileSpec(from_=tag, parameters=params, system=system_prompt(spec), template=template,
                       messages=messages)
    export_dir = project_dir(slugify(spec.name or project)) / "export" / name
    modelfile = export_dir / "Modelfile"
    atomic_write_text(modelfile, render_modelfile(mf))
    result = ExportResult(name, "spec", f"Built on '{tag}' with a SYSTEM prompt from the project spec and "
                                        f"{len(pairs)} example conversation(s); no training.", export_dir, modelfile,
                          [shlex.join(["ollama", "pull", tag]), _command(name, modelfile, None)], dry_run)
    if dry_run:
        return result

    from tools.export.routes import require_ollama

    require_ollama(ollama_api.version())
    job = CreateJob(name=name, from_=tag, template=template, system=mf.system, parameters=_api_parameters(params),
                    messages=[{"role": r, "content": c} for r, c in messages])
    create(ollama_api.client(), job, progress)
    say(f"Created '{name}' in Ollama on '{tag}'. Checking that it answers and stops...")
    try:
        result.checks = verify_replies(ask_ollama(name, PROBES), stops)
    except MTWError as exc:
        result.checks = [Check("checked", False, f"It is in Ollama, but checking it did not work: {exc.message}",
                               exc.fix or f"Try it with `ollama run {name}`.")]

    from tools import registry
    from tools.dataset.store import dataset_hash

    record = registry.register(registry.ModelRecord(
        name=name, base_model=spec.base_model, route="spec", ollama_tag=name,
        dataset_hash=dataset_hash(source) if source else "", verified=result.ok,
        notes=f"Quick path from the project '{spec.name or project}': SYSTEM prompt and {len(pairs)} example(s)."))
    result.registered = record.as_dict()
    return result
