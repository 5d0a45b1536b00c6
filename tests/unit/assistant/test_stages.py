import json
from pathlib import Path

from assistant.state import nest
from assistant.watch import progress_text
from tests.fakes.hf_hub_double import GATED, TINY_CHAT, tiny_chat_files
from tests.unit.assistant.helpers import ScriptedLLM, Session
from tests.unit.train.conftest import FEATURES, write_chat
from tools import jobs
from tools.project import project_dir
from tools.units import human_bytes


async def interview(s: Session, task: str = "generation") -> None:
    await s.send()
    for answer in ["User stories from ideas", task, "engineers", "plain", "skip", "skip"]:
        q = await s.send(answer)
    if task == "classification":
        q = await s.send("bug\nidea")
    assert q["kind"] == "confirm"
    q = await s.send("confirm")
    assert q["then"] == "on_data_choice"


def done(run_dir) -> dict:
    """What the live view hands back when a run has finished."""
    return {"outcome": jobs.run_outcome(run_dir) | {"status": "done"}}


async def test_sample_data_is_checked_and_training_starts_in_its_own_process():
    s = Session(ScriptedLLM(ok=False))
    await interview(s)
    assert "draft" not in s.question["choices"]  # drafting needs the assistant model
    q = await s.send("sample")
    report = s.said[-1]
    assert "45 examples" in report
    assert "problems to fix" in report
    assert q["then"] == "on_checked"
    assert "continue" in q["choices"]
    q = await s.send("continue")
    # on a 2-core CPU the wizard picks a base that trains a first dataset within the hour, and says why
    picked = [t for t in s.said if t.startswith("**Base model:** qwen2.5-0.5b, chosen for this machine")]
    assert picked
    assert "phi-4-mini would take about" in picked[0]  # the bigger base, passed over with its reason
    # its weights are not here and the Hub cannot be reached: the choice still says what it would take
    assert q["then"] == "on_base_offer"
    assert "not on this machine" in q["text"]
    assert "cannot reach" in q["text"].lower()
    assert q["choices"]["download"] == "Download qwen2.5-0.5b (~980 MB)"
    q = await s.send("tiny")
    assert any("**Plan:**" in t and "tiny-random" in t for t in s.said)
    assert q["then"] == "on_confirm_training"
    q = await s.click("start")
    assert q["kind"] == "training"
    run_dir = Path(q["run_dir"])
    assert run_dir.parent == project_dir("user-stories-from-ideas") / "runs"
    record = jobs.get_run(run_dir)
    assert record.pid
    assert "--max-steps 20" in record.message
    assert "learning_rate=3e-3" in record.message
    jobs.stop_run(run_dir)
    # the live view hands the outcome back; the chat says what comes next
    q = await s.send(done(run_dir))
    assert any(f"{run_dir}/adapter" in t for t in s.said)
    assert q["then"] == "on_next"


async def test_an_upload_with_errors_offers_the_fix_and_the_cleaned_copy_passes(tmp_path):
    bad = tmp_path / "mine.jsonl"
    good = {"messages": [{"role": "user", "content": "Write a status update"},
                         {"role": "assistant", "content": "We shipped the beta."}]}
    rows = [json.dumps({**good, "messages": [good["messages"][0],
                                             {"role": "assistant", "content": f"Update number {i} " * 3}]})
            for i in range(12)]
    bad.write_text("\n".join([rows[0], rows[0], "{not json", *rows[1:]]) + "\n")
    s = Session(ScriptedLLM(ok=False))
    await interview(s)
    q = await s.send("upload")
    assert q["kind"] == "file"
    q = await s.send({"path": str(bad), "name": "mine.jsonl"})
    assert "line 3" in s.said[-1].lower()
    assert "line 3: Line 3" not in s.said[-1]
    assert q["then"] == "on_checked"
    assert "fix" in q["choices"]
    assert bad.read_text().count("{not json") == 1  # the user's file is never edited
    q = await s.send("fix")
    assert "cleaned version" in s.said[-2]
    assert "your file is kept" in s.said[-2]
    assert "0 problems to fix" in s.said[-1]
    assert "continue" in q["choices"]


async def test_drafting_keeps_the_examples_the_user_accepts():
    from tests.unit.assistant.test_journey import story

    topics = ["saved carts", "gift cards", "order tracking", "address book", "wish lists"]
    drafts = {"examples": [story(i, t) for i, t in enumerate(topics)]}
    llm = ScriptedLLM(ok=True)
    llm.updates.extend([{"purpose": "User stories from ideas", "task_type": "generation"}, {"audience": "eng"},
                        {"house_style": "plain"}, {}])
    llm.structured = lambda prompt, schema, system=None: schema.model_validate(drafts)  # type: ignore[method-assign]
    s = Session(llm)
    await s.send()
    for answer in ["User stories from ideas", "generation", "eng", "plain", "skip", "skip"]:
        q = await s.send(answer)
    q = await s.send("confirm")
    assert "draft" in q["choices"]
    q = await s.send("draft")
    assert q["then"] == "on_review"
    assert "saved carts" in q["text"]
    for answer in ["keep", "drop", "keep", "keep", "drop"]:
        q = await s.send(answer)
    assert q["then"] == "on_after_drafts"
    assert "**3 examples**" in q["text"]
    q = await s.send("check")
    assert "3 examples" in s.said[-1]


def test_the_live_view_tails_only_complete_new_lines(tmp_path):
    from tools.train.events import tail_events

    path = tmp_path / "events.jsonl"
    path.write_text('{"type": "start"}\n{"type": "step", "step": 1, "loss": 2.5}\n{"type": "st')
    events, offset = tail_events(tmp_path, 0)
    assert [e["type"] for e in events] == ["start", "step"]
    with open(path, "a") as f:
        f.write('ep", "step": 2, "loss": 2.0, "tokens_per_s": 900, "eta_s": 75}\n')
    events, offset = tail_events(tmp_path, offset)
    assert events[0]["step"] == 2
    assert progress_text(events[0], 20) == ("Training: step **2 of 20** · loss 2.000 · 900 tokens/s, "
                                            "about 1 min 15 s left")


async def _finished_run(tmp_path: Path, s: Session) -> Path:
    """A tiny-random run trained through `mtw train`, handed to the wizard as the run it just finished."""
    from typer.testing import CliRunner

    from mtw.cli import app

    data = write_chat(tmp_path / "stories.jsonl", FEATURES)
    finished = tmp_path / "run"
    res = CliRunner().invoke(app, ["train", "--data", str(data), "--model", "tiny-random", "--out", str(finished),
                                   "--max-steps", "2"])
    assert res.exit_code == 0, res.output
    await interview(s)
    await s.send("sample")
    await s.send("continue")
    await s.send("Use tiny-random to try the steps")
    q = await s.click("start")
    jobs.stop_run(q["run_dir"])
    # the live view hands back how the run ended: here, the run trained above
    await s.graph.aupdate_state(s.cfg, nest({"run_dir": str(finished), "reply": done(finished)}), as_node="listen")
    return finished


async def test_after_a_finished_run_the_chat_compares_and_exports(tmp_path):
    from tools import registry

    s = Session(ScriptedLLM(ok=False))
    finished = await _finished_run(tmp_path, s)
    q = await s.resume()
    assert any("Training finished" in t for t in s.said)
    assert q["then"] == "on_next"
    assert {"eval", "export", "new"} <= set(q["choices"])
    q = await s.send("eval")
    assert any(t.startswith("**Verdict.**") for t in s.said)
    assert (finished / "eval" / "report.json").is_file()
    assert "eval" not in q["choices"]
    assert "score" in q["choices"]
    q = await s.send("score")
    assert q["then"] == "on_score"
    assert "**format**" in q["text"]
    for n in ["4", "oops", "3", "5", "2", "4", "4"]:  # a non-score answer is asked again
        q = await s.send(n)
    assert q["then"] == "on_next"
    assert "scores are saved" in s.said[-1]
    lines = (finished / "eval" / "user_scores.jsonl").read_text().splitlines()
    assert [json.loads(x)["scores"] for x in lines][:2] == [{"format": 4}, {"tone": 3}]
    assert len(lines) == 6
    q = await s.click("export")
    assert q["then"] == "on_export_name"
    assert "PM-UserStories-v1" in q["text"]
    q = await s.click("suggested")
    q = await s.click("none")
    # Ollama away: a dry run, then a way on once Ollama is back
    assert q["then"] == "on_export_problem"
    assert "again" in q["choices"]
    said = s.said[-1]
    assert "PM-UserStories-v1" in said
    assert "ollama create PM-UserStories-v1" in said
    assert (finished / "export" / "Modelfile").is_file()
    assert registry.list_models() == []  # nothing registered until Ollama really has it
    exporting = [p for p in s.progress if p.get("title") == "Exporting"]
    merging = [p for p in exporting if p["status"].startswith("merging")]
    assert exporting[0]["status"] == "loading the tuned model"
    assert merging
    assert merging[-1]["completed"] == merging[-1]["total"] > 0
    # or back to the choices: the conversation goes on, the export still offered
    q = await s.click("back")
    assert q["then"] == "on_next"
    assert "export" in q["choices"]


async def test_a_model_put_into_ollama_can_be_checked_as_ollama_serves_it(tmp_path, ollama):
    ollama.responder = lambda body: "As a user, I want the served answer, so that it is checked."
    s = Session(ScriptedLLM(ok=False))
    finished = await _finished_run(tmp_path, s)
    await s.resume()
    q = await s.send("eval")  # the local comparison first
    assert json.loads((finished / "eval" / "report.json").read_text())["tuned_source"] == "local"
    s.ctx.llm.ok = True  # Ollama is up by the time the user exports
    await s.click("export")
    await s.click("suggested")
    q = await s.click("none")
    assert "PM-UserStories-v1" in ollama.created
    # the double answers unlike the local tuned model, and the export's own verification says so
    assert "❌ On 3 of 3 prompts it answers differently" in s.said[-1]
    assert q["then"] == "on_next"
    assert q["choices"]["check"] == "Check PM-UserStories-v1 as Ollama serves it"
    assert "export" not in q["choices"]
    q = await s.send("check")
    assert s.said[-1].startswith("**Verdict for PM-UserStories-v1.**")
    report = json.loads((finished / "eval" / "ollama" / "PM-UserStories-v1" / "report.json").read_text())
    assert report["tuned_source"] == "ollama:PM-UserStories-v1"
    # the local comparison is still there, untouched
    assert json.loads((finished / "eval" / "report.json").read_text())["tuned_source"] == "local"
    assert all(p["tuned"]["answer"].startswith("As a user, I want the served answer") for p in report["prompts"])
    assert any(r.path == "/api/chat" and r.body.get("model") == "PM-UserStories-v1" for r in ollama.requests)
    assert "check" not in q["choices"]
    assert q["then"] == "on_next"


async def _at_base_choice(s: Session, base: str) -> dict:
    """Interview, sample data, then a project whose base model is `base`; returns the download question."""
    await interview(s)
    await s.send("sample")
    spec = (await s.state())["spec"]
    # the user answers "continue" to a project whose spec names this base
    await s.graph.aupdate_state(s.cfg, {"spec": {**spec, "base_model": base}, "reply": "continue"}, as_node="listen")
    return await s.resume()


async def test_a_missing_base_model_is_downloaded_with_progress_and_then_planned(hub):
    s = Session(ScriptedLLM(ok=False))
    q = await _at_base_choice(s, TINY_CHAT)
    size = sum(len(b) for n, b in tiny_chat_files().items())
    assert q["then"] == "on_base_offer"
    assert f"`{TINY_CHAT}`" in q["text"]
    assert "hf-home" in q["text"]
    assert q["choices"] == {"download": f"Download {TINY_CHAT} (~{human_bytes(size)})",
                            "tiny": "Use tiny-random to try the steps"}
    q = await s.click("download")
    assert s.progress
    assert s.progress[-1]["completed"] == s.progress[-1]["total"] == size
    assert all(p["status"].startswith(TINY_CHAT) for p in s.progress)
    assert any("is downloaded and ready" in t for t in s.said)
    plan = next(t for t in s.said if t.startswith("**Plan:**"))
    assert f"**{TINY_CHAT}**" in plan
    assert "tiny-random" not in plan
    assert q["then"] == "on_confirm_training"
    assert (await s.state())["train_model"] == TINY_CHAT
    assert sorted(hub.fetched()) == sorted(tiny_chat_files())  # the decoys stayed on the Hub


async def test_a_failed_download_says_why_and_still_offers_tiny_random(hub):
    s = Session(ScriptedLLM(ok=False))
    q = await _at_base_choice(s, GATED)
    assert "accept its licence" in q["text"]
    q = await s.click("download")
    failed = s.said[-1]
    assert "is gated" in failed
    assert f"https://huggingface.co/{GATED}" in failed
    assert "hf auth login" in failed
    assert q["then"] == "on_base_offer"
    assert "tiny" in q["choices"]
    q = await s.send("tiny")
    assert any(t.startswith("**Plan:**") and "tiny-random" in t for t in s.said)
    assert q["then"] == "on_confirm_training"
