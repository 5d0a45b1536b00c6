"""Every export route of a tiny-random run, loaded and chatted with in llama.cpp's llama-server as Ollama runs it."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.llama_engine import LlamaEngine, llama_cpp_dir
from tests.fakes.ollama_double import OllamaDouble
from tools.export.pipeline import ExportResult, export_run

pytestmark = [
    pytest.mark.engine,
    # the first test also trains the module's run (minutes on a busy two-core machine)
    pytest.mark.timeout(900),
    pytest.mark.skipif(llama_cpp_dir() is None,
                       reason="LLAMA_CPP_DIR does not point at a built llama.cpp (bin/llama-server); .ci/run sets it"),
]

BASE_TAG = "tiny-random-base:latest"
STOPS_AFTER = "Noted, I will add it to the backlog."


@pytest.fixture(scope="module")
def stopping_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny-random run overfit on one short reply: it has learned to end its turn."""
    from tools.train.config import build_config
    from tools.train.sft import train

    folder = tmp_path_factory.mktemp("engine-run")
    data = folder / "notes.jsonl"
    asks = [f"Write a user story for {feature}." for feature in (
        "password reset", "CSV export", "dark mode", "team invites", "billing page", "two-factor login",
        "search filters", "email digests", "audit log", "bulk upload")]
    data.write_text("".join(json.dumps({"messages": [{"role": "user", "content": a},
                                                     {"role": "assistant", "content": STOPS_AFTER}]}) + "\n"
                            for a in asks), encoding="utf-8")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MTW_HOME", str(folder / "mtw-home"))
        cfg = build_config("tiny-random", str(data), sets=["learning_rate=1e-2", "batch_size=10", "val_share=0",
                                                           "lora_dropout=0", "warmup_ratio=0",
                                                           "checkpoint_every=1000"], max_steps=40)
        final = train(cfg, folder / "run")
    assert final["type"] == "done", final
    return folder / "run"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OllamaDouble]:
    """One Ollama double answering from llama-server for the whole module: what is created in it stays loaded."""
    root = llama_cpp_dir()
    assert root is not None
    double = OllamaDouble(version="0.33.0", engine=LlamaEngine(root, work=tmp_path_factory.mktemp("engine"))).start()
    yield double
    double.stop()


@pytest.fixture
def engine(served: OllamaDouble, monkeypatch: pytest.MonkeyPatch) -> OllamaDouble:
    """The module's engine-backed double, found through OLLAMA_HOST by this test."""
    from tools.settings import get_settings

    monkeypatch.setenv("OLLAMA_HOST", served.url)
    get_settings.cache_clear()
    return served


@dataclasses.dataclass
class Exported:
    """One export of the module's trained run, and the last chat its verification sent."""

    run: Path
    result: ExportResult
    last_chat: dict[str, Any]


@pytest.fixture(scope="module")
def exports() -> dict[str, Exported]:
    """Exports of the trained run by route, made once: a later test reuses what an earlier one created."""
    return {}


def _export(route: str, stopping_run: Path, exports: dict[str, Exported], engine: OllamaDouble,
            tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Exported:
    if route not in exports:
        import shutil

        if route == "gguf-adapter":
            _base_in_ollama(tmp_path, monkeypatch)
        run = tmp_path / "run"
        shutil.copytree(stopping_run, run)
        result = export_run(run, f"Notes-{route}-v1", route, say=lambda text: None)
        exports[route] = Exported(run, result, engine.requests_to("/api/chat")[-1].body)
    return exports[route]


def _base_in_ollama(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """tiny-random's base as a GGUF model in the double, and the catalog pointing at it as its Ollama tag."""
    from tools import ollama_api
    from tools.export import merge
    from tools.export.create import CreateJob, create
    from tools.models import catalog

    folder = tmp_path / "base"
    merge.save_merged(catalog.build_tiny_random(seed=0), catalog.tiny_random_tokenizer(), folder,
                      merge.base_sentencepiece(catalog.CATALOG[catalog.TINY_RANDOM]))
    gguf = merge.convert_to_gguf(merge.require_converter(), folder, tmp_path / "base.gguf")
    create(ollama_api.client(), CreateJob(name=BASE_TAG, files={"model.gguf": gguf}), lambda *a: None)
    tagged = dataclasses.replace(catalog.CATALOG[catalog.TINY_RANDOM], ollama_tag=BASE_TAG)
    monkeypatch.setitem(catalog.CATALOG, catalog.TINY_RANDOM, tagged)


@pytest.mark.parametrize("route", ["merged", "gguf", "gguf-adapter"])
def test_each_route_loads_answers_and_stops_in_the_engine(route: str, stopping_run: Path, exports: dict[str, Exported],
                                                          engine: OllamaDouble, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    done = _export(route, stopping_run, exports, engine, tmp_path, monkeypatch)
    checks = {c.name: c for c in done.result.checks}
    assert done.result.route == route
    assert set(checks) == {"answers", "stops", "no_hidden_turns", "no_template_text", "matches_tuned"}
    assert done.result.ok, [c.as_dict() for c in done.result.checks if not c.ok]
    # what a user sees in Ollama: the learned reply, ended by the model itself
    assert done.last_chat["options"]["num_predict"] < 256
    if route == "gguf-adapter":
        assert engine.created[f"Notes-{route}-v1"]["from"] == BASE_TAG
        assert set(engine.created[f"Notes-{route}-v1"]["adapters"]) == {"adapter.gguf"}


def test_eval_answers_the_test_prompts_from_the_exported_model(stopping_run: Path, exports: dict[str, Exported],
                                                               engine: OllamaDouble, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from mtw.cli import app

    done = _export("merged", stopping_run, exports, engine, tmp_path, monkeypatch)
    name = done.result.name
    asked = len(engine.requests_to("/api/chat"))
    result = CliRunner().invoke(app, ["eval", str(done.run), "--ollama-model", name, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["tuned_source"] == f"ollama:{name}"
    # each test prompt's tuned answer came from llama-server through the double, none from a script
    chats = [r.body for r in engine.requests_to("/api/chat")[asked:]]
    assert len(chats) == len(report["prompts"]) > 0
    assert {c["model"] for c in chats} == {name}
    assert not engine.chat_replies
    assert all(row["tuned"]["answer"] for row in report["prompts"])
    assert (done.run / "eval" / "ollama" / name / "report.json").is_file()


def test_a_model_that_never_learned_to_stop_is_caught_in_the_engine(tiny_run: Path, engine: OllamaDouble,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from tools.export import verify

    # greedy answers are prefixes of one another: 32 tokens show it talking on as well as 256 would
    monkeypatch.setattr(verify, "PROBE_TOKENS", 32)
    result = export_run(tiny_run, "Random-v1", "merged", say=lambda text: None)
    checks = {c.name: c for c in result.checks}
    assert not result.ok
    assert not checks["stops"].ok
    assert "never stopped" in checks["stops"].message
    # a loaded model that talks on is not an empty one
    assert checks["answers"].ok
