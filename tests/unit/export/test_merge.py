"""Merging a LoRA adapter into its base, saving it, the disk check, and finding llama.cpp's converter."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tools.errors import MTWError, UsageError
from tools.export.merge import (
    CONVERTER,
    check_disk,
    convert_to_gguf,
    find_converter,
    merge_peft_model,
    require_converter,
    save_merged,
)


def test_merged_weights_equal_base_plus_scaled_lora_delta(tiny_run: Path) -> None:
    import torch
    from peft.tuners.lora import LoraLayer

    from tools.train.modeling import load_tuned

    model, _tok, _cfg = load_tuned(tiny_run)
    base, expected = {}, {}
    for name, module in model.named_modules():
        if isinstance(module, LoraLayer):
            a, b = module.lora_A["default"].weight, module.lora_B["default"].weight
            key = name.removeprefix("base_model.model.") + ".weight"
            base[key] = module.base_layer.weight.detach().clone()
            expected[key] = base[key] + (b @ a) * module.scaling["default"]
    assert len(expected) == 14  # 7 projections x 2 layers of the tiny model
    seen: list[tuple[int, int]] = []
    state = merge_peft_model(model, lambda done, total: seen.append((done, total))).state_dict()
    assert len(seen) == 14
    assert seen[-1][0] == seen[-1][1] > 0
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    for key, want in expected.items():
        torch.testing.assert_close(state[key], want, rtol=1e-5, atol=1e-6)
        assert not torch.allclose(state[key], base[key])  # the adapter really changed this layer
    assert not any("lora" in k for k in state)


def test_saved_merged_model_is_16_bit_safetensors_with_tokenizer(tiny_run: Path, tmp_path: Path) -> None:
    from safetensors import safe_open

    from tools.train.modeling import load_tuned

    model, tok, _ = load_tuned(tiny_run)
    files = save_merged(merge_peft_model(model), tok, tmp_path / "merged")
    names = {p.name for p in files}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"} <= names
    with safe_open(str(tmp_path / "merged" / "model.safetensors"), "pt") as f:
        key = next(iter(f.keys()))
        assert str(f.get_tensor(key).dtype) == "torch.float16"


def test_disk_check_names_sizes_and_fix(tmp_path: Path) -> None:
    check_disk(1_000, 10_000, tmp_path)
    with pytest.raises(MTWError, match=r"needs about 8\.80 GB and 1\.00 GB are free") as err:
        check_disk(8_000_000_000, 1_000_000_000, tmp_path)
    assert "checkpoints" in err.value.fix


def fake_converter(folder: Path, ok: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    script = folder / CONVERTER
    body = ("import sys; out = sys.argv[sys.argv.index('--outfile') + 1]; open(out, 'wb').write(b'GGUF')"
            if ok else "import sys; print('unsupported architecture Foo', file=sys.stderr); sys.exit(3)")
    script.write_text(body + "\n", encoding="utf-8")
    script.chmod(0o755)
    return script


def test_converter_found_through_llama_cpp_dir_or_path(tmp_path: Path) -> None:
    script = fake_converter(tmp_path / "llama.cpp")
    assert find_converter({"LLAMA_CPP_DIR": str(tmp_path / "llama.cpp"), "PATH": ""}) == script
    assert find_converter({"PATH": str(tmp_path / "llama.cpp")}) == script
    assert find_converter({"PATH": str(tmp_path / "nowhere")}) is None


def test_missing_converter_explains_how_to_get_it(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as err:
        require_converter({"LLAMA_CPP_DIR": str(tmp_path), "PATH": ""})
    assert CONVERTER in err.value.message
    assert str(tmp_path) in err.value.message
    assert "git clone" in err.value.fix
    assert "LLAMA_CPP_DIR" in err.value.fix
    assert "--route merged" in err.value.fix


def test_converter_run_and_its_failure_in_words(tmp_path: Path) -> None:
    good = fake_converter(tmp_path / "good")
    out = convert_to_gguf(good, tmp_path, tmp_path / "model.gguf")
    assert out.read_bytes() == b"GGUF"
    bad = fake_converter(tmp_path / "bad", ok=False)
    with pytest.raises(MTWError, match="unsupported architecture Foo"):
        convert_to_gguf(bad, tmp_path, tmp_path / "other.gguf")
    assert os.path.exists(tmp_path / "model.gguf")
