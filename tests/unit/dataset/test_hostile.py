"""Hostile files through `mtw check` and `--fix`: small versions of each, a plain report, never a traceback."""

from __future__ import annotations

import gzip
import json
import random
import re

import pytest
from typer.testing import CliRunner

from mtw.cli import app
from tests.unit.dataset.conftest import chat_record

runner = CliRunner()


def rows(n: int) -> str:
    return "".join(json.dumps(chat_record(i)) + "\n" for i in range(n))


HOSTILE = {
    "truncated.jsonl": lambda: rows(30)[:-25].encode(),
    "binary.jsonl": lambda: random.Random(1).randbytes(20_000),
    "invalid_utf8.jsonl": lambda: rows(20).encode().replace(b"user story", b"r\xe9sum\xe9 \xff\xfe"),
    "utf16_no_bom.jsonl": lambda: rows(20).encode("utf-16-le"),
    "nested.json": lambda: ("[" * 100_000 + "]" * 100_000 + "\n").encode(),
    "nested_field.jsonl": lambda: ('{"messages": ' + "[" * 100_000 + "]" * 100_000 + "}\n").encode(),
    "single_line.jsonl": lambda: ('{"messages": [{"role": "user", "content": "' + "word " * 400_000 + '"}]}').encode(),
    "big_example.jsonl": lambda: (rows(12) + json.dumps({"messages": [
        {"role": "user", "content": "Summarise"}, {"role": "assistant", "content": "lorem " * 220_000}]}) + "\n"
    ).encode(),
    "tiny_lines.jsonl": lambda: "".join(f'{{"text": "msg {i}", "label": "{"ab"[i % 2]}"}}\n'
                                        for i in range(20_000)).encode(),
    "gzip_bomb.csv": lambda: gzip.compress(b"text,label\n" + b"a,b\n" * 2_000_000),
    "wide.csv": lambda: (",".join(["text", "label"] + [f"c{i}" for i in range(10_000)]) + "\n"
                         + "".join(",".join([f"message {r}", "ab"[r % 2]] + ["1"] * 10_000) + "\n"
                                   for r in range(12))).encode(),
}


def run(*args: str):
    result = runner.invoke(app, list(args))
    # an uncaught exception would surface here instead of an exit code
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    return result


@pytest.mark.parametrize("name", list(HOSTILE))
def test_check_answers_in_plain_words(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(HOSTILE[name]())
    result = run("check", str(path))
    assert result.exit_code in (0, 1)
    assert "format:" in result.output
    assert re.search(r"[✔✘] \d+ examples?", result.output)


@pytest.mark.parametrize("name", ["truncated.jsonl", "invalid_utf8.jsonl", "utf16_no_bom.jsonl", "big_example.jsonl",
                                  "tiny_lines.jsonl", "wide.csv"])
def test_fix_writes_a_clean_copy_or_says_why_not(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(HOSTILE[name]())
    out = tmp_path / "clean.jsonl"
    result = run("check", str(path), "--fix", str(out))
    assert out.is_file()
    assert run("check", str(out)).exit_code == 0, result.output


def test_what_each_hostile_file_is_called(tmp_path):
    def report(name: str, tmp) -> dict:
        path = tmp / name
        path.write_bytes(HOSTILE[name]())
        return json.loads(run("check", str(path), "--json").output)

    tmp = tmp_path
    assert "not a text file" in report("binary.jsonl", tmp)["issues"][0]["message"]
    assert "gzip" in report("gzip_bomb.csv", tmp)["issues"][0]["message"]
    assert report("utf16_no_bom.jsonl", tmp)["stats"]["encoding"] == "utf-16-le"
    deep = report("nested.json", tmp)
    assert any("nested too deeply" in i["message"] for i in deep["issues"])
    big = report("big_example.jsonl", tmp)
    too_long = [i for i in big["issues"] if i["code"] == "too_long"]
    assert [i["line"] for i in too_long] == [13]
    assert "1,000,000" in too_long[0]["message"]
    cut = report("truncated.jsonl", tmp)
    assert any(i["code"] == "invalid_json" and i["line"] == 30 for i in cut["issues"])
