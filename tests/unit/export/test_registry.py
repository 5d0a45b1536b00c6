"""The model registry: version naming, list, promote, compare and delete (with and without Ollama)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mtw.cli import app
from tests.fakes.ollama_double import OllamaDouble
from tools import registry
from tools.errors import UsageError

runner = CliRunner()


@pytest.mark.parametrize(("name", "existing", "expected"), [
    ("PM-General", [], "PM-General-v1"),
    ("PM-General", ["PM-General-v1", "PM-General-v2"], "PM-General-v3"),
    ("PM-General-v1", [], "PM-General-v1"),
    ("PM-General-v1", ["PM-General-v1"], "PM-General-v2"),
    ("PM-General-v2", ["PM-General-v1", "PM-General-v3"], "PM-General-v2"),
    ("PM-General-v1", ["PM-General-v1", "PM-General-v3", "PM-Comms-v7"], "PM-General-v4"),
    ("pm-general-v1", ["PM-General-v1"], "pm-general-v2"),
])
def test_next_version_name(name: str, existing: list[str], expected: str) -> None:
    assert registry.next_version_name(name, existing) == expected


def make_run(tmp_path: Path, name: str, report: dict) -> str:
    run = tmp_path / name
    (run / "eval").mkdir(parents=True)
    (run / "eval" / "report.json").write_text(json.dumps(report), encoding="utf-8")
    return str(run)


def add(name: str, run_dir: str = "", scores: dict | None = None) -> registry.ModelRecord:
    return registry.register(registry.ModelRecord(name=name, base_model="llama-3.2-1b", route="merged",
                                                  ollama_tag=name, run_dir=run_dir, run_id=Path(run_dir).name,
                                                  eval_scores=scores or {}, verified=True, notes="round 1"))


def test_register_list_and_versions(tmp_path: Path) -> None:
    add("PM-General-v1")
    add("PM-General-v2")
    add("PM-Comms-v1")
    assert [m.name for m in registry.list_models()] == ["PM-Comms-v1", "PM-General-v2", "PM-General-v1"]
    assert registry.get("pm-general-v2").stem == "PM-General"
    assert registry.get("PM-General-v2").version == 2
    assert registry.suggest_name("PM-General") == "PM-General-v3"
    with pytest.raises(UsageError, match="PM-Comms-v1, PM-General-v2, PM-General-v1"):
        registry.get("PM-Ghost-v1")


def test_promote_keeps_one_promoted_version_per_stem_and_survives_re_export() -> None:
    for n in ("PM-General-v1", "PM-General-v2", "PM-Comms-v1"):
        add(n)
    registry.promote("PM-General-v1")
    registry.promote("PM-Comms-v1")
    registry.promote("PM-General-v2")
    promoted = {m.name for m in registry.list_models() if m.promoted}
    assert promoted == {"PM-General-v2", "PM-Comms-v1"}
    add("PM-General-v2")  # exported again under the same name
    assert registry.get("PM-General-v2").promoted


def test_compare_puts_eval_reports_side_by_side(tmp_path: Path) -> None:
    add("PM-General-v1", make_run(tmp_path, "r1", {"rubric": {"average": 3.6, "format": 3.0}, "val_loss": 1.9,
                                                     "model": "x", "rows": [{"score": 5}]}))
    add("PM-General-v2", make_run(tmp_path, "r2", {"rubric": {"average": 4.2, "format": 4.5}, "accuracy": 0.9}))
    cmp = registry.compare("PM-General-v1", "PM-General-v2")
    assert cmp.rows == [("rubric.average", 3.6, 4.2), ("rubric.format", 3.0, 4.5), ("val_loss", 1.9, None),
                        ("accuracy", None, 0.9)]
    out = runner.invoke(app, ["models", "--compare", "PM-General-v1", "PM-General-v2"])
    assert out.exit_code == 0
    assert "rubric.average" in out.output
    assert "3.6" in out.output
    assert "4.2" in out.output
    as_json = json.loads(runner.invoke(app, ["models", "--compare", "PM-General-v1", "PM-General-v2", "--json"]).stdout)
    assert as_json["metrics"][0] == {"metric": "rubric.average", "a": 3.6, "b": 4.2}


def test_compare_falls_back_to_scores_stored_at_registration() -> None:
    add("PM-General-v1", scores={"rubric.average": 3.0})
    add("PM-General-v2", scores={"rubric.average": 4.0})
    assert registry.compare("PM-General-v1", "PM-General-v2").rows == [("rubric.average", 3.0, 4.0)]


def test_models_json_lists_what_is_registered() -> None:
    assert json.loads(runner.invoke(app, ["models", "--json"]).stdout) == {"models": []}
    add("PM-General-v1")
    result = runner.invoke(app, ["models", "--json"])
    assert result.exit_code == 0
    (row,) = json.loads(result.stdout)["models"]
    assert {k: row[k] for k in ("name", "base_model", "route", "verified", "promoted", "notes")} == {
        "name": "PM-General-v1", "base_model": "llama-3.2-1b", "route": "merged", "verified": True,
        "promoted": False, "notes": "round 1"}
    table = runner.invoke(app, ["models"])
    assert table.exit_code == 0
    assert "PM-General-v1" in table.output


def test_promote_through_the_cli_and_unknown_names() -> None:
    add("PM-General-v1")
    result = runner.invoke(app, ["models", "--promote", "PM-General-v1"])
    assert result.exit_code == 0
    assert "promoted" in result.output
    assert registry.get("PM-General-v1").promoted
    missing = runner.invoke(app, ["models", "--promote", "PM-Nope-v1"])
    assert missing.exit_code == 2
    assert "No registered model" in missing.output


def test_delete_asks_first_and_can_remove_the_ollama_model(ollama: OllamaDouble) -> None:
    add("PM-General-v1")
    ollama.created["PM-General-v1"] = {}
    declined = runner.invoke(app, ["models", "--delete", "PM-General-v1", "--ollama"], input="n\n")
    assert declined.exit_code == 1
    assert "Nothing deleted" in declined.output
    assert registry.list_models()
    assert "PM-General-v1" in ollama.created
    done = runner.invoke(app, ["models", "--delete", "PM-General-v1", "--ollama"], input="y\n")
    assert done.exit_code == 0, done.output
    assert registry.list_models() == []
    assert "PM-General-v1" not in ollama.created


def test_delete_registry_only_leaves_ollama_alone(ollama: OllamaDouble) -> None:
    add("PM-General-v1")
    ollama.created["PM-General-v1"] = {}
    assert runner.invoke(app, ["models", "--delete", "PM-General-v1", "--yes"]).exit_code == 0
    assert registry.list_models() == []
    assert "PM-General-v1" in ollama.created
    assert not ollama.requests_to("/api/delete")


def test_compare_shows_the_tuned_side_of_eval_reports(tmp_path: Path) -> None:
    def report(loss: float, rouge: float) -> dict:
        return {"model": "phi-4-mini", "training": {"steps": 30, "final_val_loss": loss, "finished": True},
                "heldout": {"base": {"val_loss": 2.5, "tokens": 900}, "tuned": {"val_loss": loss, "tokens": 900}},
                "summary": {"base": {"prompts": 10, "rouge_l": 0.1}, "tuned": {"prompts": 10, "rouge_l": rouge},
                            "by_category": {"format_consistency": {"base": {"checks_pass": 0, "prompts": 2},
                                                                   "tuned": {"checks_pass": 2, "prompts": 2}}}},
                "prompts": [{"id": "p1", "tuned": {"rouge_l": 0.9}}]}
    add("PM-General-v1", make_run(tmp_path, "r1", report(1.9, 0.31)))
    add("PM-General-v2", make_run(tmp_path, "r2", report(1.6, 0.42)))
    assert registry.compare("PM-General-v1", "PM-General-v2").rows == [
        ("training.steps", 30.0, 30.0), ("training.final_val_loss", 1.9, 1.6), ("heldout.val_loss", 1.9, 1.6),
        ("summary.rouge_l", 0.31, 0.42), ("summary.by_category.format_consistency.checks_pass", 2.0, 2.0)]


def test_a_preference_round_is_registered_with_its_method_and_judgements() -> None:
    record = registry.register(registry.ModelRecord(name="PM-Stories-v2", base_model="tiny-random", route="merged",
                                                    ollama_tag="PM-Stories-v2", method="dpo", judgements=14))
    assert (record.method, record.judgements) == ("dpo", 14)
    stored = registry.get("PM-Stories-v2")
    assert (stored.method, stored.judgements) == ("dpo", 14)
    registry.register(registry.ModelRecord(name="PM-Stories-v1", base_model="tiny-random", route="merged",
                                           ollama_tag="PM-Stories-v1"))
    assert (registry.get("PM-Stories-v1").method, registry.get("PM-Stories-v1").judgements) == ("sft", 0)
