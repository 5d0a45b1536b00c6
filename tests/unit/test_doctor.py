import json
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mtw.cli import app

runner = CliRunner()


def test_doctor_says_ollama_is_not_running_with_the_fix():
    res = runner.invoke(app, ["doctor"])
    assert res.exit_code == 1
    assert "Ollama is not running" in res.output
    assert "ollama serve" in res.output


def test_doctor_json_reports_version_models_and_assistant_model(ollama):
    ollama.models = ["phi4-mini:latest", "llama3.2:3b"]
    res = runner.invoke(app, ["doctor", "--json"])
    data = json.loads(res.output)
    by_name = {c["name"]: c for c in data["checks"]}
    assert by_name["ollama"]["status"] == "ok"
    assert ollama.version in by_name["ollama"]["detail"]
    assert "llama3.2:3b" in by_name["models"]["detail"]
    assert by_name["assistant model"]["status"] == "ok"
    assert {"memory", "disk", "torch", "gpu", "workspace"} <= set(by_name)
    assert data["ok"] is True
    assert res.exit_code == 0


def test_doctor_warns_when_assistant_model_missing(ollama, monkeypatch):
    ollama.models = ["llama3.2:3b"]
    monkeypatch.setenv("MTW_ASSISTANT_MODEL", "phi4-mini")
    from tools.settings import get_settings

    get_settings.cache_clear()
    data = json.loads(runner.invoke(app, ["doctor", "--json"]).output)
    check = {c["name"]: c for c in data["checks"]}["assistant model"]
    assert check["status"] == "warning"
    assert "ollama pull phi4-mini" in check["fix"]


def test_doctor_flags_unwritable_home(monkeypatch, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    monkeypatch.setenv("MTW_HOME", str(blocker / "home"))
    from tools.settings import get_settings

    get_settings.cache_clear()
    data = json.loads(runner.invoke(app, ["doctor", "--json"]).output)
    ws = {c["name"]: c for c in data["checks"]}["workspace"]
    assert ws["status"] == "problem"
    assert "MTW_HOME" in ws["fix"]


def test_ui_refuses_a_busy_port_with_the_fix():
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        res = runner.invoke(app, ["ui", "--port", str(port)])
    assert res.exit_code == 2
    assert "already in use" in res.output
    assert f"--port {port + 1}" in res.output


def test_base_models_line_names_what_is_downloaded_and_how_to_get_one(tmp_path, monkeypatch):
    import os

    from tools.doctor import check_base_models

    empty = check_base_models()
    assert empty.status == "warning"
    assert "tiny-random" in empty.detail
    assert empty.fix.startswith("`mtw download qwen2.5-0.5b` (about 980 MB)")
    # a complete snapshot of Qwen2.5-0.5B-Instruct in the Hugging Face cache, as `mtw download` leaves it
    storage = tmp_path / "hf-home" / "hub" / "models--Qwen--Qwen2.5-0.5B-Instruct"
    snapshot = storage / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    for name in ("config.json", "tokenizer.json", "model.safetensors"):
        (snapshot / name).write_text("{}")
    (storage / "refs").mkdir()
    (storage / "refs" / "main").write_text("abc123")
    assert os.environ["HF_HOME"] == str(tmp_path / "hf-home")
    found = check_base_models()
    assert found.status == "ok"
    assert found.detail == "Downloaded: qwen2.5-0.5b"
    (snapshot / "model.safetensors").unlink()  # an interrupted download is not a model
    assert check_base_models().status == "warning"


def test_the_recommended_base_says_which_and_why(monkeypatch):
    from tools.doctor import check_recommended_base
    from tools.train import recommend

    monkeypatch.setattr(recommend, "for_this_machine",
                        lambda task="generation": recommend.recommend_base(cuda=False, memory_mb=24 * 1024, cores=2))
    line = check_recommended_base()
    assert line.status == "ok"
    assert line.detail.startswith("qwen2.5-0.5b: it fits")
    monkeypatch.setattr(recommend, "for_this_machine",
                        lambda task="generation": recommend.recommend_base(cuda=True, memory_mb=1024, cores=2))
    none = check_recommended_base()
    assert none.status == "warning"
    assert "no real base model fits" in none.detail
    assert none.fix


def test_a_cpu_only_torch_is_reported_without_importing_it():
    """The chat's first answer waits for the machine check: with a CPU-only torch it must not wait for torch's
    import (seconds), and it must say the same as torch would."""
    import subprocess

    probe = ("import sys, json; from tools import doctor; checks = doctor.check_accelerator(); "
             "print(json.dumps([[c.name, c.status, c.detail] for c in checks] + ['torch' in sys.modules]))")
    fast = json.loads(subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                                     cwd=Path(__file__).resolve().parents[2]).stdout)
    import torch

    if torch.cuda.is_available() or torch.version.cuda or torch.version.hip:
        pytest.skip("this torch is built for a GPU")
    assert fast[-1] is False, "torch was imported"
    assert fast[1][:2] == ["gpu", "warning"]
    assert "No GPU found" in fast[1][2]


def test_a_gpu_build_of_torch_is_asked_itself(tmp_path, monkeypatch):
    """A torch built for CUDA (its version file names a CUDA version) is imported to see if a GPU is there."""
    from importlib.machinery import ModuleSpec

    from tools import doctor

    (tmp_path / "version.py").write_text("from typing import Optional\n__version__ = '2.13.0+cu126'\n"
                                         "cuda: Optional[str] = '12.6'\n"
                                         "hip: Optional[str] = None\nxpu: Optional[str] = None\n")
    spec = ModuleSpec("torch", None, is_package=True)
    spec.submodule_search_locations = [str(tmp_path)]
    monkeypatch.setattr("importlib.util.find_spec", lambda name: spec)
    assert doctor._cpu_only_build() is False
    (tmp_path / "version.py").write_text("cuda = None\nhip = None\nxpu = None\n")
    assert doctor._cpu_only_build() is (sys.platform != "darwin")
