from pathlib import Path

import pytest
import torch

from tests.unit.train.conftest import FEATURES, story, write_chat
from tools.models.catalog import build_tiny_random
from tools.settings import get_settings
from tools.train.config import build_config, load_run_config
from tools.train.data import IGNORE, tokenize_chat
from tools.train.events import read_events
from tools.train.modeling import apply_lora, load_base, load_tuned, lora_settings
from tools.train.planning import tokenize_rows
from tools.train.sft import evaluate, train

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    """One short tiny-random run shared by the tests below (its own workspace)."""
    root = tmp_path_factory.mktemp("sft")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MTW_HOME", str(root / "home"))
        get_settings.cache_clear()
        data = write_chat(root / "stories.jsonl", FEATURES)
        cfg = build_config("tiny-random", str(data), sets=["learning_rate=5e-3", "batch_size=3", "val_share=0.25",
                                                           "eval_every=4", "checkpoint_every=4"], max_steps=8)
        final = train(cfg, root / "run")
        from tools.jobs import get_run

        runs = [get_run(root / "run")]
    get_settings.cache_clear()
    return root / "run", final, runs


def test_run_folder_has_the_documented_files_and_events(trained):
    run, final, _ = trained
    assert final["type"] == "done", final
    assert (run / "config.yaml").read_text().startswith("# mtw train --data ")
    adapter = run / "adapter"
    for name in ("adapter_model.safetensors", "adapter_config.json", "tokenizer_config.json"):
        assert (adapter / name).is_file(), name
    events = read_events(run)
    kinds = [e["type"] for e in events]
    assert kinds[0] == "start"
    assert kinds[-1] == "done"
    assert events[0]["estimate_s"] > 0  # the whole run's time, as the plan (or the run itself) estimated it
    steps = [e for e in events if e["type"] == "step"]
    assert [s["step"] for s in steps] == list(range(1, 9))
    for s in steps:
        assert {"step", "epoch", "loss", "lr", "tokens_per_s", "eta_s", "peak_mem_mb", "ts"} <= set(s)
        assert s["loss"] > 0
        assert s["tokens_per_s"] > 0
    assert [e["step"] for e in events if e["type"] == "eval"] == [4, 8]
    assert [e["step"] for e in events if e["type"] == "checkpoint"] == [4, 8]
    assert final["metrics"]["steps"] == 8
    assert final["adapter"] == str(adapter)
    # the loss fell over the run
    assert steps[-1]["loss"] < steps[0]["loss"]


def test_every_lora_weight_changed_and_the_base_did_not(trained):
    run, _, _ = trained
    tuned, _, cfg = load_tuned(run)
    fresh = apply_lora(load_base("tiny-random")[0], **lora_settings(cfg))
    lora_names = [n for n, _ in fresh.named_parameters() if "lora_" in n]
    assert lora_names
    tuned_params = dict(tuned.named_parameters())
    for name in lora_names:
        assert not torch.equal(tuned_params[name], dict(fresh.named_parameters())[name]), name
    base = build_tiny_random(seed=0).state_dict()
    for name, value in tuned.get_base_model().state_dict().items():
        if "lora_" not in name:
            assert torch.equal(value, base[name.replace(".base_layer", "")]), name


def test_reloaded_adapter_reproduces_the_final_validation_loss(trained, tmp_path):
    run, final, _ = trained
    model, tok, cfg = load_tuned(run)
    assert load_run_config(run) == cfg
    from tools.train.inputs import read_training_data

    data = read_training_data(cfg.data, model=cfg.model, context=cfg.context, val_share=cfg.val_share, seed=cfg.seed)
    val = tokenize_rows(data.validation, tok, cfg.context)
    assert evaluate(model, val, cfg, tok.pad_token_id, "cpu") == pytest.approx(final["metrics"]["val_loss"], abs=1e-4)


def test_the_run_is_in_the_registry(trained):
    run, final, runs = trained
    (record,) = runs
    assert record.status == "done"
    assert Path(record.run_dir) == run.resolve()
    assert record.metrics["steps"] == 8
    assert record.dataset_version


def test_overfit_model_reproduces_the_format_and_stops(tmp_path):
    data = write_chat(tmp_path / "five.jsonl", FEATURES[:10])
    cfg = build_config("tiny-random", str(data), sets=["learning_rate=1e-2", "batch_size=5", "val_share=0",
                                                       "lora_dropout=0", "warmup_ratio=0", "checkpoint_every=1000"],
                       max_steps=150)
    final = train(cfg, tmp_path / "run")
    assert final["type"] == "done", final
    model, tok, _ = load_tuned(tmp_path / "run")
    msgs = story(FEATURES[3])
    expected = tokenize_chat(tok, msgs, 512)
    answer = [t for t, lab in zip(expected.input_ids, expected.labels, strict=True) if lab != IGNORE]
    prompt = tok.apply_chat_template(msgs[:2], add_generation_prompt=True, tokenize=False)
    ids = torch.tensor([tok(prompt, add_special_tokens=False)["input_ids"]])
    out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=len(answer) + 10,
                         do_sample=False, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    generated = out[0, ids.shape[1]:].tolist()
    text = tok.decode(generated)
    assert text.startswith("As a user, I want"), text
    assert "Acceptance criteria" in text
    # it ends its turn with the end-of-turn token instead of running on
    assert generated[-1] == tok.eos_token_id, text
