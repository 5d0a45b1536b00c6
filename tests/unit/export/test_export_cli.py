"""`mtw export`: dry run from a tiny-random run, the full create-verify-register flow, and the quick path."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mtw.cli import app
from tests.fakes.ollama_double import OllamaDouble
from tests.unit.export.conftest import write_dataset
from tests.unit.export.modelfile_reader import parse_modelfile
from tools.export.templates import TEMPLATES, VARIANT_TEMPLATES
from tools.export.verify import PROBES

runner = CliRunner()


def flat(text: str) -> str:
    """Output with rich's line wrapping undone."""
    return " ".join(text.split())


def test_dry_run_writes_modelfile_and_merged_model_without_contacting_ollama(
        tiny_run: Path, ollama: OllamaDouble) -> None:
    result = runner.invoke(app, ["export", str(tiny_run), "--name", "PM-General-v1", "--dry-run"])
    assert result.exit_code == 0, result.output
    export = tiny_run / "export"
    spec = parse_modelfile((export / "Modelfile").read_text(encoding="utf-8"))
    assert spec.from_ == "./merged"
    assert spec.adapter is None
    assert spec.template == TEMPLATES["chatml"]
    assert ("stop", "<|im_end|>") in spec.parameters
    assert ("temperature", 0.7) in spec.parameters
    assert {"model.safetensors", "config.json", "tokenizer.json"} <= {p.name for p in (export / "merged").iterdir()}
    assert f"  ollama create PM-General-v1 -f {export / 'Modelfile'}\n" in result.output
    out = " ".join(result.output.split())
    assert "Route: merged" in out
    assert "not in Ollama's library" in out
    assert ollama.requests == []


def test_dry_run_asks_for_a_route_that_cannot_work_with_exit_2(tiny_run: Path) -> None:
    result = runner.invoke(app, ["export", str(tiny_run), "--name", "x-v1", "--route", "adapter", "--dry-run"])
    assert result.exit_code == 2
    assert "no Ollama tag" in flat(result.output)
    assert "--route merged" in flat(result.output)


def test_adapter_route_dry_run_builds_on_the_ollama_base(tiny_run: Path, ollama: OllamaDouble) -> None:
    config = tiny_run / "config.yaml"
    config.write_text(config.read_text(encoding="utf-8").replace("model: tiny-random", "model: llama-3.2-1b"),
                      encoding="utf-8")
    result = runner.invoke(app, ["export", str(tiny_run), "--name", "PM-General-v1", "--route", "adapter",
                                 "--dry-run"])
    assert result.exit_code == 0, result.output
    spec = parse_modelfile((tiny_run / "export" / "Modelfile").read_text(encoding="utf-8"))
    assert (spec.from_, spec.adapter) == ("llama3.2:1b", "../adapter")
    assert spec.template == VARIANT_TEMPLATES["llama3.2"]
    assert ("stop", "<|eot_id|>") in spec.parameters
    assert (tiny_run / "export" / spec.adapter / "adapter_model.safetensors").is_file()
    assert not (tiny_run / "export" / "merged").exists()
    assert "without --dry-run" in flat(result.output)
    assert ollama.requests == []


def test_gguf_route_without_converter_explains_how_to_get_it(tiny_run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LLAMA_CPP_DIR", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    result = runner.invoke(app, ["export", str(tiny_run), "--name", "x-v1", "--route", "gguf", "--dry-run"])
    assert result.exit_code == 2
    assert "convert_hf_to_gguf.py" in flat(result.output)
    assert "LLAMA_CPP_DIR" in flat(result.output)
    assert not (tiny_run / "export" / "merged").exists()  # refused before writing gigabytes


def test_gguf_route_dry_run_converts_with_llama_cpp(tiny_run: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.unit.export.test_merge import fake_converter

    fake_converter(tmp_path / "llama.cpp")
    monkeypatch.setenv("LLAMA_CPP_DIR", str(tmp_path / "llama.cpp"))
    result = runner.invoke(app, ["export", str(tiny_run), "--name", "x-v1", "--route", "gguf", "--dry-run",
                                 "--quantize", "q4_K_M"])
    assert result.exit_code == 0, result.output
    export = tiny_run / "export"
    assert (export / "model.gguf").read_bytes() == b"GGUF"
    assert parse_modelfile((export / "Modelfile").read_text(encoding="utf-8")).from_ == "./model.gguf"
    assert f"  ollama create x-v1 -f {export / 'Modelfile'} --quantize q4_K_M\n" in result.output


def test_export_uploads_creates_verifies_and_registers(tiny_run: Path, ollama: OllamaDouble,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from tools.export import verify

    monkeypatch.setattr(verify, "PROBE_TOKENS", 8)  # the tiny model never stops; keep its answers short

    # a faithful Ollama answers exactly what the tuned model says in-process
    answers, _count, _end = verify.ask_tuned(tiny_run, PROBES)
    tuned = dict(zip(PROBES, answers, strict=True))
    ollama.responder = lambda body: {"content": tuned[body["messages"][-1]["content"]].text, "done_reason": "stop",
                                     "eval_count": tuned[body["messages"][-1]["content"]].tokens}
    result = runner.invoke(app, ["export", str(tiny_run), "--name", "PM-General", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["name"] == "PM-General-v1"
    assert report["route"] == "merged"
    assert report["ok"]
    assert [c["name"] for c in report["checks"]] == ["answers", "stops", "no_hidden_turns", "no_template_text",
                                                     "matches_tuned"]
    body = ollama.created["PM-General-v1"]
    merged = tiny_run / "export" / "merged"
    assert set(body["files"]) == {p.name for p in merged.iterdir()
                                  if p.suffix in (".json", ".safetensors", ".model")}
    assert {"model.safetensors", "config.json", "tokenizer.json", "tokenizer.model"} <= set(body["files"])
    assert set(body["files"].values()) <= set(ollama.blobs)
    assert body["parameters"]["stop"] == ["<|im_end|>"]
    assert body["template"] == TEMPLATES["chatml"]

    listed = json.loads(runner.invoke(app, ["models", "--json"]).stdout)["models"]
    assert [(m["name"], m["route"], m["verified"], m["run_id"]) for m in listed] == \
        [("PM-General-v1", "merged", True, "run")]
    from tools.dataset.store import dataset_hash
    from tools.train.config import load_run_config

    # this run predates split.json, so its data file names the version
    assert listed[0]["dataset_hash"] == dataset_hash(load_run_config(tiny_run).data)

    again = runner.invoke(app, ["export", str(tiny_run), "--name", "PM-General-v1"])
    assert again.exit_code == 2
    assert "--name PM-General-v2" in flat(again.output)


def test_export_that_never_stops_exits_1_and_registers_unverified(tiny_run: Path, ollama: OllamaDouble,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from tools.export import verify

    monkeypatch.setattr(verify, "PROBE_TOKENS", 8)
    ollama.responder = lambda body: {"content": "word " * 200, "done_reason": "length"}
    result = runner.invoke(app, ["export", str(tiny_run), "--name", "PM-General-v1"])
    assert result.exit_code == 1
    # the tiny model does not stop within its 8 tokens in-process either: the fix is in training, not the Modelfile
    assert "never stopped" in flat(result.output)
    assert "does not stop on these prompts before export" in flat(
        result.output)
    listed = json.loads(runner.invoke(app, ["models", "--json"]).stdout)["models"]
    assert listed[0]["verified"] is False


def test_export_without_ollama_says_so(tiny_run: Path) -> None:
    result = runner.invoke(app, ["export", str(tiny_run), "--name", "PM-General-v1"])
    assert result.exit_code == 1
    assert "Ollama is not running" in flat(result.output)


def test_classifier_runs_and_unfinished_runs_are_refused(tiny_run: Path) -> None:
    config = tiny_run / "config.yaml"
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace("task: causal", "task: classification"), encoding="utf-8")
    result = runner.invoke(app, ["export", str(tiny_run), "--name", "x-v1", "--dry-run"])
    assert result.exit_code == 2
    assert "text-generation models only" in flat(result.output)
    config.write_text(text, encoding="utf-8")
    (tiny_run / "adapter" / "adapter_model.safetensors").unlink()
    result = runner.invoke(app, ["export", str(tiny_run), "--name", "x-v1", "--dry-run"])
    assert result.exit_code == 2
    assert "no finished adapter" in flat(result.output)
    assert "--resume" in flat(result.output)
    assert runner.invoke(app, ["export", str(tiny_run / "nope"), "--name", "x-v1", "--dry-run"]).exit_code == 2


def test_run_dir_and_from_spec_are_exclusive() -> None:
    assert runner.invoke(app, ["export", "--name", "x"]).exit_code == 2
    assert runner.invoke(app, ["export", "run", "--from-spec", "p", "--name", "x"]).exit_code == 2


@pytest.fixture
def project(tmp_path: Path) -> str:
    from tools.project import load_spec, save_spec

    spec = load_spec(str(Path(__file__).parents[3] / "examples" / "spec_user_stories.json"))
    save_spec(spec)
    return spec.name


def test_quick_path_builds_a_styled_model_from_the_spec(project: str, ollama: OllamaDouble, tmp_path: Path) -> None:
    data = write_dataset(tmp_path / "pm.jsonl")
    ollama.enqueue("As a user, I want a reset link.", "OKRs are goals.", "Hi all, we are two weeks late.")
    result = runner.invoke(app, ["export", "--from-spec", project, "--name", "PM-Style", "--data", str(data)])
    assert result.exit_code == 0, result.output
    body = ollama.created["PM-Style-v1"]
    assert body["from"] == "phi4-mini"
    assert "user story with acceptance criteria" in body["system"]
    assert "Invent metrics" in body["system"]
    assert body["parameters"] == {"temperature": 0.7, "top_p": 0.9, "num_ctx": 4096,
                                  "stop": ["<|end|>", "<|endoftext|>"]}
    assert body["template"] == TEMPLATES["phi3"]
    roles = [m["role"] for m in body["messages"]]
    assert roles == ["user", "assistant"] * 3
    assert len({m["content"] for m in body["messages"]}) == 6
    listed = json.loads(runner.invoke(app, ["models", "--json"]).stdout)["models"]
    assert [(m["name"], m["route"], m["base_model"], m["verified"]) for m in listed] == \
        [("PM-Style-v1", "spec", "phi4-mini", True)]


def test_quick_path_on_an_old_ollama_says_update(project: str, ollama: OllamaDouble) -> None:
    ollama.version = "0.4.7"
    result = runner.invoke(app, ["export", "--from-spec", project, "--name", "PM-Style"])
    assert result.exit_code == 2
    assert "0.4.7" in flat(result.output)
    assert "ollama.com/download" in flat(result.output)
    assert not ollama.requests_to("/api/create")


def test_quick_path_needs_a_base_that_ollama_has(tmp_path: Path) -> None:
    from tools.project import ProjectSpec, save_spec

    save_spec(ProjectSpec(name="Toy", purpose="try it", base_model="tiny-random"))
    result = runner.invoke(app, ["export", "--from-spec", "Toy", "--name", "Toy-v1", "--dry-run"])
    assert result.exit_code == 2
    assert "no Ollama version" in flat(result.output)
    assert "phi-4-mini" in flat(result.output)


def test_quick_path_dry_run_writes_a_modelfile_that_reads_back(project: str, tmp_path: Path) -> None:
    data = write_dataset(tmp_path / "pm.jsonl")
    result = runner.invoke(app, ["export", "--from-spec", project, "--name", "PM-Style-v3", "--data", str(data),
                                 "--dry-run"])
    assert result.exit_code == 0, result.output
    line = next(x for x in result.output.splitlines() if "ollama create" in x)
    spec = parse_modelfile(Path(line.split(" -f ")[1].strip()).read_text(encoding="utf-8"))
    assert spec.from_ == "phi4-mini"
    assert len(spec.messages) == 6
    assert spec.system
    assert "Never:" in spec.system


@pytest.mark.ollama
def test_quick_path_against_a_real_ollama(project: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Needs a running Ollama with phi4-mini pulled: the styled model answers, stops and shows no template text."""
    import os

    from tools.export.create import delete_model
    from tools.settings import get_settings

    monkeypatch.setenv("OLLAMA_HOST", os.environ.get("MTW_REAL_OLLAMA", "http://127.0.0.1:11434"))
    get_settings.cache_clear()
    result = runner.invoke(app, ["export", "--from-spec", project, "--name", "mtw-test-style-v1", "--json"])
    try:
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["ok"]
    finally:
        delete_model("mtw-test-style-v1")


@pytest.mark.parametrize("name", ["x; touch /tmp/PWN #", "", "a b", "../x", "x" * 300, "-rf", "$(id)"])
def test_a_name_ollama_would_not_take_is_refused_in_one_sentence_before_anything_is_written(
        tiny_run: Path, project: str, name: str) -> None:
    for args in ([str(tiny_run)], ["--from-spec", project]):
        result = runner.invoke(app, ["export", *args, "--name", name, "--dry-run"])
        assert result.exit_code == 2, result.output
        said = flat(result.output)
        assert "Ollama" in said
        assert "e.g. --name PM-General-v1" in said
        assert "Traceback" not in said
        assert "ollama create" not in said
    assert not (tiny_run / "export").exists()
    assert not Path("/tmp/PWN").exists()


def test_every_printed_command_is_quoted_for_the_shell(tiny_run: Path, project: str, tmp_path: Path) -> None:
    spaced = tmp_path / "my runs" / "v1 (final)"
    spaced.parent.mkdir()
    tiny_run.rename(spaced)
    result = runner.invoke(app, ["export", str(spaced), "--name", "PM-General-v1", "--dry-run"])
    assert result.exit_code == 0, result.output
    [command] = [line.strip() for line in result.output.splitlines() if line.strip().startswith("ollama create")]
    # pasted into a shell, it is these words exactly
    assert shlex.split(command) == ["ollama", "create", "PM-General-v1", "-f", str(spaced / "export" / "Modelfile")]
    quick = runner.invoke(app, ["export", "--from-spec", project, "--name", "PM-Style-v1", "--dry-run"])
    assert quick.exit_code == 0, quick.output
    assert "ollama create PM-Style-v1 -f" in quick.output


def test_an_export_into_a_read_only_run_folder_is_one_sentence(tiny_run: Path, monkeypatch) -> None:
    from tests.unit.dataset.test_cli_fix import read_only

    read_only(monkeypatch, tiny_run)
    result = runner.invoke(app, ["export", str(tiny_run), "--name", "PM-General-v1", "--dry-run"])
    assert result.exit_code == 1
    said = flat(result.output)
    assert "cannot be written (the folder is read-only or not yours)" in said
    assert "then run the same command again" in said
    assert "Traceback" not in said


def test_a_tuned_small_base_answers_cooler_than_the_guides_default():
    from tools.export.pipeline import SMALL_TEMPERATURE, tuned_temperature
    from tools.models.catalog import resolve

    assert tuned_temperature(resolve("smollm2-135m", ask_ollama=False)) == SMALL_TEMPERATURE
    assert tuned_temperature(resolve("qwen2.5-0.5b", ask_ollama=False)) == SMALL_TEMPERATURE
    assert tuned_temperature(resolve("phi-4-mini", ask_ollama=False)) == 0.7  # the guide's, from 1B up
    assert tuned_temperature(resolve("tiny-random", ask_ollama=False)) == 0.7  # shows the workflow only
