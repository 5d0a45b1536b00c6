import hashlib
import json
import shutil
import socket
from collections import namedtuple
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mtw.cli import app
from tests.fakes.hf_hub_double import DECOYS, GATED, TINY_CHAT, TOKEN, tiny_chat_files
from tests.unit.train.conftest import FEATURES, write_chat
from tools import download as dl
from tools import download_resume
from tools.errors import UsageError
from tools.models.catalog import load_tokenizer, resolve
from tools.units import human_bytes

RUNNER = CliRunner()
DEAD = "http://127.0.0.1:9"
WEIGHTS = "model.safetensors"


def mtw(*args: str):
    return RUNNER.invoke(app, list(args))


def snapshot(hf_home: Path, repo: str = TINY_CHAT) -> Path:
    storage = hf_home / "hub" / ("models--" + repo.replace("/", "--"))
    return storage / "snapshots" / (storage / "refs" / "main").read_text()


def partial_of(hf_home: Path, data: bytes, repo: str = TINY_CHAT) -> Path:
    blobs = hf_home / "hub" / ("models--" + repo.replace("/", "--")) / "blobs"
    return blobs / (hashlib.sha256(data).hexdigest() + ".partial")


def stop_partway(after: int = 5_000_000) -> int:
    """Download TINY_CHAT until `after` bytes of its weights arrived, then press Ctrl-C; return the bytes kept."""
    files = tiny_chat_files()
    small = sum(len(b) for n, b in files.items() if n != WEIGHTS)

    def ctrl_c(status: str, done: int, total: int) -> None:
        if status == WEIGHTS and done >= small + after:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        dl.download(TINY_CHAT, ctrl_c)
    return small


@pytest.fixture
def hf_home(tmp_path: Path) -> Path:
    return tmp_path / "hf-home"  # where the autouse fixture points HF_HOME


def test_download_fetches_only_what_training_reads_and_the_model_then_trains_offline(hub, hf_home, tmp_path,
                                                                                     monkeypatch):
    result = mtw("download", TINY_CHAT)
    assert result.exit_code == 0, result.output
    wanted = sorted(tiny_chat_files())
    size = sum(len(b) for b in tiny_chat_files().values())
    assert f"6 files, {human_bytes(size)}" in result.output
    assert f"ready: train with `mtw train --model {TINY_CHAT}" in result.output
    folder = snapshot(hf_home)
    assert sorted(p.name for p in folder.iterdir()) == wanted
    assert all((folder / n).read_bytes() == b for n, b in tiny_chat_files().items())
    # the weights are described twice: to fetch them, and when huggingface_hub links them into the snapshot
    assert sorted(hub.fetched()) == wanted
    assert sorted(hub.described()) == sorted([*wanted, WEIGHTS])
    assert not set(hub.fetched()) & set(DECOYS)

    # training finds the downloaded folder through the same cache, with the Hub out of reach
    monkeypatch.setenv("HF_ENDPOINT", DEAD)
    seen = len(hub.requests)
    data = write_chat(tmp_path / "stories.jsonl", FEATURES)
    run = tmp_path / "run"
    result = mtw("train", "--data", str(data), "--model", TINY_CHAT, "--out", str(run), "--max-steps", "2")
    assert result.exit_code == 0, result.output
    assert (run / "adapter" / "adapter_model.safetensors").is_file()
    events = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]
    assert events[0]["config"]["model"] == TINY_CHAT
    assert any(e["type"] == "step" for e in events)
    assert len(hub.requests) == seen


def test_a_second_download_returns_at_once_without_the_network(hub, monkeypatch):
    assert mtw("download", TINY_CHAT).exit_code == 0
    seen = len(hub.requests)
    monkeypatch.setenv("HF_ENDPOINT", DEAD)
    result = mtw("download", TINY_CHAT, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["ok"]
    assert report["complete"]
    assert report["total_bytes"] == sum(map(len, tiny_chat_files().values()))
    assert len(hub.requests) == seen
    assert "already downloaded" in mtw("download", TINY_CHAT).output
    assert not dl.needs_download(TINY_CHAT)


def test_a_connection_cut_mid_file_is_resumed_where_it_broke(hub, hf_home):
    weights = tiny_chat_files()[WEIGHTS]
    assert len(weights) > 12_000_000
    hub.cut_once(WEIGHTS, 12_000_000)
    seen: list[tuple[str, int, int]] = []
    folder = dl.download(TINY_CHAT, lambda status, done, total: seen.append((status, done, total)))
    assert (folder / WEIGHTS).read_bytes() == weights
    first, second = hub.downloads(WEIGHTS)
    assert first.headers.get("range") is None
    assert second.headers.get("range") == "bytes=12000000-"
    assert second.sent == len(weights) - 12_000_000
    assert seen[-1][1] == seen[-1][2] == sum(map(len, tiny_chat_files().values()))
    assert [d for _, d, _ in seen] == sorted(d for _, d, _ in seen)  # progress never goes backwards


def test_a_download_cut_off_for_good_keeps_its_partial_file_and_the_next_run_fetches_only_the_rest(
        hub, hf_home, monkeypatch):
    weights = tiny_chat_files()[WEIGHTS]
    monkeypatch.setattr(download_resume, "RETRY_WAITS_S", (0.0, 0.0))
    for after in (12_000_000, 0, 0):  # some bytes arrive, then the network stays down through both retries
        hub.cut_once(WEIGHTS, after)
    result = mtw("download", TINY_CHAT)
    assert result.exit_code == 1, result.output
    assert "the connection dropped" in result.output
    assert "it continues where it stopped" in result.output
    assert [r.headers.get("range") for r in hub.downloads(WEIGHTS)] == [None] + ["bytes=12000000-"] * 2
    partial = partial_of(hf_home, weights)
    assert partial.read_bytes() == weights[:12_000_000]

    result = mtw("download", TINY_CHAT)
    assert result.exit_code == 0, result.output
    assert "of it already here" in result.output
    assert f"{WEIGHTS}: continuing from the 12.0 MB downloaded earlier" in result.output
    last = hub.downloads(WEIGHTS)[-1]
    assert last.headers["range"] == "bytes=12000000-"
    assert last.sent == len(weights) - 12_000_000
    assert (snapshot(hf_home) / WEIGHTS).read_bytes() == weights
    assert not partial.exists()
    assert not list((hf_home / "hub").rglob("*.incomplete"))


def test_ctrl_c_keeps_the_partial_file_and_the_next_run_starts_its_progress_there(hub, hf_home, monkeypatch):
    weights = tiny_chat_files()[WEIGHTS]
    small = stop_partway()
    kept = partial_of(hf_home, weights).stat().st_size
    assert 5_000_000 <= kept < len(weights)
    assert partial_of(hf_home, weights).read_bytes() == weights[:kept]

    def ctrl_c(*args: object) -> None:
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(download_resume, "append_rest", ctrl_c)
        result = mtw("download", TINY_CHAT)
    assert result.exit_code == 130
    assert (f"run `mtw download {TINY_CHAT}` again to continue from {dl.human_bytes(small + kept)}"
            in result.output)

    seen: list[tuple[str, int]] = []
    dl.download(TINY_CHAT, lambda status, done, total: seen.append((status, done)))
    assert seen[0] == ("starting", small + kept)
    assert [d for _, d in seen] == sorted(d for _, d in seen)  # from the partial's size up, never back
    assert hub.downloads(WEIGHTS)[-1].headers["range"] == f"bytes={kept}-"
    assert hub.downloads(WEIGHTS)[-1].sent == len(weights) - kept


def test_a_partial_file_of_a_version_the_hub_no_longer_has_is_not_reused(hub, hf_home):
    weights = tiny_chat_files()[WEIGHTS]
    stop_partway()
    old = partial_of(hf_home, weights)
    assert old.is_file()
    changed = weights[:-64] + bytes(64)  # the owner pushed new weights: a new etag
    hub.add_repo(TINY_CHAT, {**tiny_chat_files(), **DECOYS, WEIGHTS: changed})
    result = mtw("download", TINY_CHAT)
    assert result.exit_code == 0, result.output
    last = hub.downloads(WEIGHTS)[-1]
    assert "range" not in last.headers
    assert last.sent == len(changed)
    assert (snapshot(hf_home) / WEIGHTS).read_bytes() == changed
    assert not old.exists()  # a partial of the old version is removed once the new one is complete


def test_a_server_that_ignores_range_makes_the_file_start_over(hub, hf_home):
    weights = tiny_chat_files()[WEIGHTS]
    small = stop_partway()
    kept = partial_of(hf_home, weights).stat().st_size
    hub.ignore_range = True
    seen: list[int] = []
    folder = dl.download(TINY_CHAT, lambda status, done, total: seen.append(done))
    assert (folder / WEIGHTS).read_bytes() == weights
    last = hub.downloads(WEIGHTS)[-1]
    assert last.headers["range"] == f"bytes={kept}-"
    assert last.sent == len(weights)
    assert seen[0] == small + kept
    assert small in seen


def test_a_damaged_partial_file_is_caught_by_its_checksum_and_downloaded_again(hub, hf_home):
    weights = tiny_chat_files()[WEIGHTS]
    stop_partway()
    partial = partial_of(hf_home, weights)
    kept = partial.stat().st_size
    damaged = bytearray(partial.read_bytes())
    damaged[1000] ^= 0xFF
    partial.write_bytes(bytes(damaged))
    result = mtw("download", TINY_CHAT)
    assert result.exit_code == 0, result.output
    assert (f"{WEIGHTS}: the downloaded file was damaged (its sha256 checksum does not match the Hub's); deleted it "
            "and downloading it again") in result.output
    assert [r.headers.get("range") for r in hub.downloads(WEIGHTS)][-2:] == [f"bytes={kept}-", None]
    assert (snapshot(hf_home) / WEIGHTS).read_bytes() == weights


def test_a_file_that_arrives_damaged_twice_stops_with_a_plain_error(hub, monkeypatch):
    monkeypatch.setattr(download_resume.Partial, "problem",
                        lambda self, size: "its sha256 checksum does not match the Hub's")
    result = mtw("download", TINY_CHAT)
    assert result.exit_code == 1
    assert f"{WEIGHTS} of {TINY_CHAT} arrived damaged twice" in result.output
    assert "Traceback" not in result.output
    assert len(hub.downloads(WEIGHTS)) == 2


def test_a_stopped_download_fetches_only_what_is_missing_when_run_again(hub, hf_home):
    def stop_at_the_weights(status: str, done: int, total: int) -> None:
        if status == "model.safetensors":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        dl.download(TINY_CHAT, stop_at_the_weights)
    plan = dl.plan_download(TINY_CHAT)
    assert [f.name for f in plan.files if not f.cached] == ["model.safetensors"]
    assert dl.needs_download(TINY_CHAT)
    before = len(hub.fetched())
    result = mtw("download", TINY_CHAT)
    assert result.exit_code == 0, result.output
    assert "already here" in result.output
    assert hub.fetched()[before:] == ["model.safetensors"]
    assert not list((hf_home / "hub").rglob("*.incomplete"))
    assert not list((hf_home / "hub").rglob("*.partial"))


def test_without_symlinks_the_weights_are_kept_once(hub, hf_home, monkeypatch):
    # Windows without developer mode: huggingface_hub copies blobs into the snapshot instead of linking them
    from huggingface_hub import file_download

    monkeypatch.setattr(file_download, "are_symlinks_supported", lambda *args: False)
    folder = dl.download(TINY_CHAT)
    weights = tiny_chat_files()[WEIGHTS]
    assert not (folder / WEIGHTS).is_symlink()
    assert (folder / WEIGHTS).read_bytes() == weights
    assert not (partial_of(hf_home, weights).parent / hashlib.sha256(weights).hexdigest()).exists()


def test_a_gated_model_says_how_to_get_access_and_a_token_opens_it(hub, monkeypatch):
    result = mtw("download", GATED)
    assert result.exit_code == 1
    assert "is gated" in result.output
    assert f"https://huggingface.co/{GATED}" in result.output
    assert "hf auth login" in result.output
    assert "HF_TOKEN" in result.output
    assert isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    assert mtw("download", GATED).exit_code == 0


def test_a_model_the_hub_does_not_have_is_a_usage_error(hub):
    result = mtw("download", "test-org/no-such-model")
    assert result.exit_code == 2
    assert "There is no model called test-org/no-such-model on the Hugging Face Hub" in result.output
    assert "Traceback" not in result.output
    assert hub.fetched() == []


def test_an_unreachable_hub_says_so_and_names_the_offline_way(monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"
    monkeypatch.setenv("HF_ENDPOINT", closed)
    result = mtw("download", "qwen2.5-0.5b")
    assert result.exit_code == 1
    assert f"Cannot reach the Hugging Face Hub at {closed}" in result.output
    assert "--model /path/to/folder" in result.output
    assert "Traceback" not in result.output
    report = json.loads(mtw("download", "qwen2.5-0.5b", "--json").output)
    assert report["ok"] is False
    assert report["error"]["code"] == "download_offline"


def test_too_little_free_disk_is_refused_before_any_file_is_fetched(hub, monkeypatch):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 10**7, 10**7))
    result = mtw("download", TINY_CHAT)
    assert result.exit_code == 1
    assert "Not enough free disk space" in result.output
    assert "only 10.0 MB is free" in result.output
    assert hub.fetched() == []


@pytest.mark.parametrize("model", ["tiny-random", "minilm"])
def test_built_in_models_have_nothing_to_download(model):
    result = mtw("download", model)
    assert result.exit_code == 2
    assert "built in" in result.output


def test_catalog_and_ollama_names_map_to_their_hub_repos():
    assert dl.repo_for("qwen2.5-0.5b") == "Qwen/Qwen2.5-0.5B-Instruct"
    assert dl.repo_for("phi4-mini") == "microsoft/Phi-4-mini-instruct"
    assert dl.repo_for("llama3.2:1b") == "meta-llama/Llama-3.2-1B-Instruct"
    assert dl.repo_for("some-org/some-model") == "some-org/some-model"
    with pytest.raises(UsageError):
        dl.repo_for("not a model")


def test_only_config_tokenizer_and_one_copy_of_the_weights_are_selected():
    llama = ["config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
             "special_tokens_map.json", "original/consolidated.00.pth", "original/tokenizer.model",
             "original/params.json", "LICENSE.txt", "README.md", "USE_POLICY.md", ".gitattributes"]
    assert dl.select_files(llama) == ["config.json", "generation_config.json", "model.safetensors",
                                      "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json"]
    sharded = ["config.json", "tokenizer.json", "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors",
               "model.safetensors.index.json", "consolidated.safetensors", "pytorch_model-00001-of-00002.bin",
               "pytorch_model.bin.index.json", "onnx/model.onnx", "model.gguf", "flax_model.msgpack", "tf_model.h5"]
    assert dl.select_files(sharded) == ["config.json", "model-00001-of-00002.safetensors",
                                        "model-00002-of-00002.safetensors", "model.safetensors.index.json",
                                        "tokenizer.json"]
    only_bin = ["config.json", "vocab.json", "merges.txt", "pytorch_model.bin", "model.pt"]
    assert dl.select_files(only_bin) == ["config.json", "merges.txt", "pytorch_model.bin", "vocab.json"]
    assert dl.missing_parts(dl.select_files(["README.md", "model-q4_k_m.gguf"])) == [
        "config.json", "a tokenizer", "weights in safetensors or PyTorch format"]


def test_the_cache_folder_and_endpoint_are_read_when_used(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "elsewhere"))
    monkeypatch.setenv("HF_ENDPOINT", "http://mirror.example/")
    assert dl.hub_cache() == tmp_path / "elsewhere"
    assert dl.hub_endpoint() == "http://mirror.example"
    monkeypatch.delenv("HF_HUB_CACHE")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    assert dl.hub_cache() == tmp_path / "hf" / "hub"


def test_a_downloaded_hub_id_resolves_from_the_cache_and_a_missing_one_points_at_mtw_download(hub):
    with pytest.raises(UsageError) as missing:
        resolve(TINY_CHAT)
    assert f"mtw download {TINY_CHAT}" in missing.value.fix
    with pytest.raises(UsageError) as no_weights:
        load_tokenizer("qwen2.5-0.5b")
    assert "mtw download qwen2.5-0.5b" in no_weights.value.fix
    assert "huggingface-cli" not in no_weights.value.fix
    dl.download(TINY_CHAT)
    entry = resolve(TINY_CHAT)
    assert entry.key == TINY_CHAT
    assert Path(entry.hf_id).is_dir()
    assert entry.template_family == "chatml"
    assert load_tokenizer(TINY_CHAT).eos_token == "<|im_end|>"



def test_a_folder_missing_one_shard_of_its_index_is_not_complete(tmp_path):
    folder = tmp_path / "snap"
    folder.mkdir()
    for name in ("config.json", "tokenizer.json", "model-00001-of-00002.safetensors"):
        (folder / name).write_text("{}")
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {
        "a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}))
    assert dl.missing_in_folder(folder) == ["model-00002-of-00002.safetensors"]
    (folder / "model-00002-of-00002.safetensors").write_text("{}")
    assert dl.missing_in_folder(folder) == []


def test_a_repo_with_only_gguf_files_is_refused_before_downloading(hub):
    hub.add_repo("test-org/tiny-chat-gguf", {"README.md": b"# gguf only", "tiny-chat-q4_k_m.gguf": b"gguf"})
    result = mtw("download", "test-org/tiny-chat-gguf")
    assert result.exit_code == 1
    assert "lacks what training reads" in result.output
    assert "GGUF" in result.output
    assert hub.fetched() == []


def test_a_catalog_model_loads_from_the_cache_its_download_filled(hub):
    # the double serves the tiny model's files under the catalog's repo id: only the loading path is real here
    hub.add_repo("Qwen/Qwen2.5-0.5B-Instruct", tiny_chat_files())
    assert dl.needs_download("qwen2.5-0.5b")
    assert mtw("download", "qwen2.5-0.5b").exit_code == 0
    assert not dl.needs_download("qwen2.5-0.5b")
    from tools.train.modeling import load_base

    model, tok = load_base("qwen2.5-0.5b", precision="fp32")
    assert model.config.num_hidden_layers == 2
    assert tok.eos_token == "<|im_end|>"
