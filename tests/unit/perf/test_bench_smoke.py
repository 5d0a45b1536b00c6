"""The throughput bench runs end to end on CPU and all three recipes start from the same loss."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[3] / "bench" / "train_throughput.py"


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_bench_runs_all_three_recipes_on_the_same_data(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("train_throughput", BENCH)
    assert spec
    assert spec.loader
    bench = importlib.util.module_from_spec(spec)
    sys.modules["train_throughput"] = bench
    spec.loader.exec_module(bench)
    out = tmp_path / "tiny.json"

    threads = torch.get_num_threads()
    try:
        assert bench.main(["--shape", "tiny", "--steps", "3", "--rounds", "1", "--json", str(out)]) == 0
    finally:
        torch.set_num_threads(threads)  # the bench pins one thread; leave the process as it was

    figures = json.loads(out.read_text())
    tiny = figures["shapes"]["tiny"]
    stock, trl, ours = tiny["stock"], tiny["trl"], tiny["ours"]
    assert stock["steps"] == ours["steps"] == trl["steps"] == 3
    # same examples per step: the same real tokens, only stock pays for padding
    assert stock["real_tokens"] == ours["real_tokens"] == trl["real_tokens"] > 0
    assert stock["padding_share"] > 0.2
    assert ours["padding_share"] == 0
    assert trl["padding_share"] == 0
    # same initial weights and data: the first step's loss is the same in both recipes
    assert math.isclose(stock["first_loss"], ours["first_loss"], rel_tol=1e-4)
    assert math.isclose(trl["first_loss"], ours["first_loss"], rel_tol=1e-4)
    assert figures["ratio"] == tiny["ratio"] > 0
    assert figures["ratio_vs_trl"] == tiny["ours_vs_trl"] > 0
