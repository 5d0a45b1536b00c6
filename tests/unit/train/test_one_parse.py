"""`mtw train` on a dataset it has not seen: the file is parsed once, for the task, the check, the estimate and the
run alike (a large dataset parsed twice costs its user seconds before the first step)."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mtw.cli import app


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    import tools.dataset.readers as readers

    seen: list[str] = []
    real = readers.iter_records
    monkeypatch.setattr(readers, "iter_records", lambda path, **kw: seen.append(Path(path).name) or real(path, **kw))
    return seen


def test_a_new_dataset_is_parsed_once_from_the_command_to_the_last_step(tmp_path: Path, parses: list[str]):
    data = tmp_path / "stories.jsonl"
    data.write_text("".join(json.dumps({"messages": [{"role": "user", "content": f"Story {i} please"},
                                                     {"role": "assistant", "content": f"As a PM I want {i}."}]})
                            + "\n" for i in range(12)))
    result = CliRunner().invoke(app, ["train", "--data", str(data), "--model", "tiny-random", "--out",
                                      str(tmp_path / "run"), "--max-steps", "1"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "run" / "adapter").is_dir()  # it trained
    assert parses.count("stories.jsonl") == 1, parses


def test_with_map_the_file_is_parsed_once_and_its_copy_once(tmp_path: Path, parses: list[str]):
    data = tmp_path / "asks.csv"
    data.write_text("Ask,Reply\n" + "".join(f"Story {i} please,As a PM I want {i}.\n" for i in range(12)))
    result = CliRunner().invoke(app, ["train", "--data", str(data), "--model", "tiny-random", "--out",
                                      str(tmp_path / "run"), "--max-steps", "1", "--map", "prompt=Ask",
                                      "--map", "response=Reply"])
    assert result.exit_code == 0, result.output
    assert parses.count("asks.csv") == 1, parses
    assert parses.count("dataset.jsonl") == 1, parses  # the run's mapped copy, which the run trains on
