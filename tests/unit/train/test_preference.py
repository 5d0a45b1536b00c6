"""Preference rounds (DPO, KTO) on tiny-random, on top of a supervised run's adapter: the run folder and events a
supervised run writes, every LoRA weight trained, the chosen answer made likelier than the rejected one on pairs
the round never saw, a stop and a resume that ends like an uninterrupted round, and the CLI's refusals."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from mtw.cli import app
from tests.unit.train.conftest import FEATURES, story, write_chat
from tools.dataset.model import Example
from tools.settings import get_settings
from tools.train.config import build_config
from tools.train.events import read_events
from tools.train.modeling import load_tuned
from tools.train.pairs import judgements, margins
from tools.train.preference import train
from tools.train.sft import train as train_sft

pytestmark = pytest.mark.timeout(240)

MORE = ["webhooks", "roles and permissions", "calendar sync", "usage reports"]
SETS = ["learning_rate=5e-3", "batch_size=4", "val_share=0.2", "eval_every=4", "checkpoint_every=3"]
STEPS = 8


def good(feature: str) -> str:
    return story(feature)[2]["content"]


def bad(feature: str) -> str:
    return f"{feature}? Just build it. No story needed, whatever."


def pair(feature: str) -> dict:
    prompt = story(feature)[:2]
    return {"prompt": prompt, "chosen": [{"role": "assistant", "content": good(feature)}],
            "rejected": [{"role": "assistant", "content": bad(feature)}]}


def write_pairs(path: Path, features: list[str]) -> Path:
    path.write_text("".join(json.dumps(pair(f)) + "\n" for f in features), encoding="utf-8")
    return path


def write_labels(path: Path, features: list[str]) -> Path:
    rows = [{"messages": [*story(f)[:2], {"role": "assistant", "content": good(f) if i % 2 == 0 else bad(f)}],
             "label": i % 2 == 0} for i, f in enumerate(features + features[1:] + features[:1])]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def unseen_pairs():
    """Pairs on features no round trains on: what a preference round should generalise to."""
    return judgements([Example.model_validate({"messages": [*pair(f)["prompt"], *pair(f)["chosen"]],
                                               "rejected": pair(f)["rejected"]}) for f in MORE])


@pytest.fixture(scope="module")
def rounds(tmp_path_factory: pytest.TempPathFactory):
    """A short supervised run, then a DPO and a KTO round on top of its adapter (one workspace)."""
    root = tmp_path_factory.mktemp("pref")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MTW_HOME", str(root / "home"))
        get_settings.cache_clear()
        sft = root / "v1"
        done = train_sft(build_config("tiny-random", str(write_chat(root / "stories.jsonl", FEATURES)),
                                      sets=["learning_rate=5e-3", "val_share=0", "lora_r=8"], max_steps=4), sft)
        assert done["type"] == "done", done
        out = {"v1": sft}
        for method, data in (("dpo", write_pairs(root / "pairs.jsonl", FEATURES)),
                             ("kto", write_labels(root / "labels.jsonl", FEATURES))):
            cfg = build_config("tiny-random", str(data), sets=SETS, max_steps=STEPS, method=method,
                               from_run=str(sft), lora_r=8)
            out[method] = (root / method, cfg, train(cfg, root / method))
        from tools.jobs import get_run

        out["runs"] = {name: get_run(root / name) for name in ("v1", "dpo", "kto")}
    get_settings.cache_clear()
    return out


@pytest.mark.parametrize("method", ["dpo", "kto"])
def test_a_round_writes_the_run_folder_and_events_of_any_run(rounds, method):
    run, _, final = rounds[method]
    assert final["type"] == "done", final
    first = (run / "config.yaml").read_text().splitlines()[0]
    assert first.startswith("# mtw train --data ")
    assert f"--method {method} --from-run {rounds['v1']}" in first
    events = read_events(run)
    assert [e["type"] for e in events][0] == "start"
    assert events[0]["method"] == method
    assert events[0]["estimate_s"] > 0
    steps = [e for e in events if e["type"] == "step"]
    assert [s["step"] for s in steps] == list(range(1, STEPS + 1))
    for s in steps:
        assert {"step", "epoch", "loss", "lr", "tokens_per_s", "eta_s", "peak_mem_mb", "reward_margin"} <= set(s)
        assert s["loss"] > 0
    assert steps[-1]["loss"] < steps[0]["loss"]
    assert [e["step"] for e in events if e["type"] == "eval"] == [4, 8]
    assert [e["step"] for e in events if e["type"] == "checkpoint"] == [3, 6, 8]
    assert final["metrics"]["judgements"] == (12 if method == "dpo" else 24)
    assert final["metrics"]["method"] == method
    assert (run / "adapter" / "adapter_model.safetensors").is_file()
    assert not (run / "adapter" / "ref").exists()  # the frozen reference is not part of the result
    assert rounds["runs"][method].status == "done"


@pytest.mark.parametrize("method", ["dpo", "kto"])
def test_every_lora_weight_moved_from_where_the_round_started(rounds, method):
    start, _, _ = load_tuned(rounds["v1"])
    tuned, _, cfg = load_tuned(rounds[method][0])
    assert cfg.method == method
    before = {n: p for n, p in start.named_parameters() if "lora_" in n}
    after = dict(tuned.named_parameters())
    assert before
    for name, value in before.items():
        assert not torch.equal(after[name], value), name
    base = {n: p for n, p in start.get_base_model().state_dict().items() if "lora_" not in n}
    for name, value in tuned.get_base_model().state_dict().items():
        if "lora_" not in name:
            assert torch.equal(value, base[name]), name


@pytest.mark.parametrize("method", ["dpo", "kto"])
def test_the_chosen_answer_becomes_likelier_than_the_rejected_one_on_unseen_pairs(rounds, method):
    pairs = unseen_pairs()
    start, tok, _ = load_tuned(rounds["v1"])
    tuned, _, _ = load_tuned(rounds[method][0])
    before, after = margins(start, tok, pairs), margins(tuned, tok, pairs)
    assert len(before) == len(MORE)
    assert all(a > b for a, b in zip(after, before, strict=True)), (before, after)


def test_a_stopped_round_resumes_and_ends_like_one_never_stopped(rounds, tmp_path):
    _, cfg, reference = rounds["dpo"]
    run = tmp_path / "stopped"

    def stop_at_two(ev: dict) -> None:
        if ev["type"] == "step" and ev["step"] == 2:
            os.kill(os.getpid(), signal.SIGTERM)  # what the wizard's Stop sends

    stopped = train(cfg, run, listener=stop_at_two)
    assert stopped["type"] == "stopped", stopped
    n = stopped["step"]
    assert n < STEPS
    assert f"--out {run}" in stopped["message"]
    assert stopped["message"].endswith("--resume`")
    assert (run / "checkpoints" / f"checkpoint-{n}" / "trainer_state.json").is_file()
    assert (run / "adapter" / "adapter_config.json").is_file()  # a stopped round can be tried already
    from tools.jobs import get_run, run_outcome

    assert run_outcome(run)["resumable"]
    final = train(cfg, run, resume=True)
    assert final["type"] == "done", final
    events = read_events(run)
    assert [e["resumed_from"] for e in events if e["type"] == "start"] == [0, n]
    assert final["metrics"]["steps"] == STEPS
    assert final["metrics"]["train_loss"] == pytest.approx(reference["metrics"]["train_loss"], abs=1e-3)
    assert get_run(run).status == "done"


def test_method_is_refused_in_one_sentence_where_it_cannot_learn(tmp_path):
    runner = CliRunner()
    labelled = tmp_path / "tickets.jsonl"
    labelled.write_text("".join(json.dumps({"text": f"ticket {i}", "label": "bug" if i % 2 else "idea"}) + "\n"
                                for i in range(12)), encoding="utf-8")
    result = runner.invoke(app, ["train", "--data", str(labelled), "--model", "minilm", "--method", "dpo",
                                 "--out", str(tmp_path / "r1")])
    assert result.exit_code == 2
    first = result.output.strip().splitlines()[0]
    assert first.startswith("--method dpo teaches a text generator from judgements")
    assert first.count(". ") == 0
    examples = write_chat(tmp_path / "stories.jsonl", FEATURES)
    result = runner.invoke(app, ["train", "--data", str(examples), "--model", "tiny-random", "--method", "kto",
                                 "--out", str(tmp_path / "r2")])
    assert result.exit_code == 2
    assert "holds examples, not judgements" in result.output
    pairs = write_pairs(tmp_path / "pairs.jsonl", FEATURES)
    result = runner.invoke(app, ["train", "--data", str(pairs), "--model", "tiny-random",
                                 "--out", str(tmp_path / "r3")])
    assert result.exit_code == 2
    assert "--method dpo" in result.output
    few = write_pairs(tmp_path / "few.jsonl", FEATURES[:4])
    result = runner.invoke(app, ["train", "--data", str(few), "--model", "tiny-random", "--method", "dpo",
                                 "--out", str(tmp_path / "r4")])
    assert result.exit_code == 2
    assert "holds 4 judgements" in result.output
    assert "6 more would let it start" in result.output
    assert not (tmp_path / "r4").exists()


class StoryJudge:
    """A judge double: 5 on every criterion for an answer in the team's user-story shape, 1 otherwise."""

    def structured(self, prompt, schema, *, system=None):
        score = 5 if "As a user, I want" in prompt.split("Answer", 1)[-1] else 1
        return schema.model_validate({c: {"score": score, "justification": "as scripted"}
                                      for c in ("accuracy", "format", "relevance", "completeness", "tone")})


def test_after_a_round_the_new_version_is_compared_with_the_one_it_started_from(rounds):
    from tools.evaluate.rounds import JUDGED, compare_round

    run, _, _ = rounds["dpo"]
    report = compare_round(run, judge=StoryJudge(), judge_model="story-judge", max_new_tokens=24)
    assert report["from_run"] == str(rounds["v1"])
    assert report["method"] == "dpo"
    assert report["judgements"] == 12
    assert report["held_out"] == 2  # a fifth of the judgements, never trained on
    assert report["categories"][JUDGED]["after"] + report["categories"][JUDGED]["before"] \
        + report["categories"][JUDGED]["tie"] == 2
    assert {"format_consistency", "domain_knowledge"} <= set(report["categories"])
    agreed = report["agreement"]
    assert agreed["after"]["pairs"] == agreed["before"]["pairs"] == 2
    assert agreed["after"]["pairs_agreed"] >= agreed["before"]["pairs_agreed"]
    assert agreed["after"]["margin"] > agreed["before"]["margin"]  # the round leans towards the user's picks
    assert report["judged_by"] == "judge"
    assert "By the judge, the new version wins" in report["verdict"]
    assert "leans closer to your picks" in report["verdict"]
    assert json.loads((run / "eval" / "round.json").read_text())["verdict"] == report["verdict"]
