"""The create flow against the Ollama test double: blobs first, then create; failures in plain words."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.fakes.ollama_double import OllamaDouble
from tools.errors import ModelNotPulled, MTWError
from tools.export.create import CreateJob, create
from tools.ollama_api import client


def sha(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def adapter_files(tmp_path: Path) -> dict[str, Path]:
    (tmp_path / "adapter_model.safetensors").write_bytes(b"\x00weights" * 1000)
    (tmp_path / "adapter_config.json").write_text('{"r": 16}', encoding="utf-8")
    return {"adapter_model.safetensors": tmp_path / "adapter_model.safetensors",
            "adapter_config.json": tmp_path / "adapter_config.json"}


def test_adapter_blobs_are_uploaded_with_their_digests_before_create(
        ollama: OllamaDouble, adapter_files: dict[str, Path]) -> None:
    ollama.models.append("llama3.2:1b")
    seen: list[tuple[str, int, int]] = []
    job = CreateJob(name="PM-General-v1", from_="llama3.2:1b", adapters=adapter_files, template="{{ .Prompt }}",
                    parameters={"temperature": 0.7, "stop": ["<|eot_id|>"]})
    create(client(), job, lambda what, done, total: seen.append((what, done, total)))

    digests = {n: sha(p) for n, p in adapter_files.items()}
    assert set(ollama.blobs) == set(digests.values())
    paths = [r.path for r in ollama.requests if r.method == "POST"]
    assert paths.index("/api/create") > max(paths.index(f"/api/blobs/{d}") for d in digests.values())
    body = ollama.created["PM-General-v1"]
    assert body["from"] == "llama3.2:1b"
    assert body["adapters"] == digests
    assert body["template"] == "{{ .Prompt }}"
    assert body["parameters"] == {"temperature": 0.7, "stop": ["<|eot_id|>"]}
    assert "files" not in body
    assert "quantize" not in body
    total = sum(p.stat().st_size for p in adapter_files.values())
    assert ("uploaded adapter_config.json", total, total) in seen
    assert any(what == "success" for what, _, _ in seen)


def test_full_model_files_and_quantise_go_in_the_create_payload(ollama: OllamaDouble, tmp_path: Path) -> None:
    f = tmp_path / "model.gguf"
    f.write_bytes(b"GGUF" + bytes(range(256)))
    create(client(), CreateJob(name="pm", files={"model.gguf": f}, quantize="q4_K_M"), lambda *a: None)
    body = ollama.created["pm"]
    assert body["files"] == {"model.gguf": sha(f)}
    assert body["quantize"] == "q4_K_M"
    assert "from" not in body


def test_digest_mismatch_is_explained(ollama: OllamaDouble, adapter_files: dict[str, Path]) -> None:
    ollama.models.append("llama3.2:1b")
    first = sha(adapter_files["adapter_model.safetensors"])
    ollama.fail_next(f"/api/blobs/{first}", 400, "digest mismatch")
    with pytest.raises(MTWError) as err:
        create(client(), CreateJob(name="x", from_="llama3.2:1b", adapters=adapter_files), lambda *a: None)
    assert err.value.code == "digest_mismatch"
    assert "adapter_model.safetensors" in err.value.message
    assert "checksum" in err.value.message
    assert "Run the export again" in err.value.fix
    assert "x" not in ollama.created


def test_missing_base_model_is_named_with_the_pull_command(ollama: OllamaDouble,
                                                          adapter_files: dict[str, Path]) -> None:
    with pytest.raises(ModelNotPulled) as err:
        create(client(), CreateJob(name="x", from_="llama3.2:1b", adapters=adapter_files), lambda *a: None)
    assert "'llama3.2:1b' is not in your Ollama" in err.value.message
    assert "ollama pull llama3.2:1b" in err.value.fix


def test_ollama_not_running_is_one_sentence(adapter_files: dict[str, Path]) -> None:
    with pytest.raises(MTWError, match="Ollama is not running"):
        create(client(), CreateJob(name="x", from_="b", adapters=adapter_files), lambda *a: None)
