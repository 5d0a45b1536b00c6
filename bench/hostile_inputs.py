"""Peak memory of `mtw check` (and `--fix`) on a corpus of hostile files, each run in its own process.

Generates the corpus in a temporary folder: a truncated file, random binary, invalid UTF-8, UTF-16 without a
BOM, JSON nested 100k deep, one 50 MB line, one 5 MB example, 1M tiny lines, a gzip bomb renamed .csv and a
10k-column CSV. Each file is checked by `mtw check` in a fresh process, which reports its own peak RSS
(ru_maxrss), exit code, wall and CPU time, and whether anything printed a traceback. `--fix` runs on the 1M-line
file too. Bounds: 1.5 GB for every check, 1 GB for --fix on 1M lines.

    .venv/bin/python bench/hostile_inputs.py
    .venv/bin/python bench/hostile_inputs.py --only tiny_lines_1m.jsonl --fix
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import zlib
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHECK_BOUND_MB = 1536
FIX_BOUND_MB = 1024


def _row(i: int, answer: str | None = None) -> str:
    return json.dumps({"messages": [{"role": "user", "content": f"Write a user story for feature {i}."},
                                    {"role": "assistant", "content": answer or f"As a user I want feature {i}."}]})


def truncated(path: Path) -> None:
    text = "".join(_row(i) + "\n" for i in range(2000))
    path.write_text(text[: len(text) - 37], encoding="utf-8")


def binary(path: Path) -> None:
    path.write_bytes(random.Random(1).randbytes(20 << 20))


def invalid_utf8(path: Path) -> None:
    with open(path, "wb") as f:
        for i in range(2000):
            f.write(_row(i, f"Cafe {i} MARK").encode().replace(b"MARK", b"r\xe9sum\xe9 \xff\xfe") + b"\n")


def utf16_no_bom(path: Path) -> None:
    path.write_bytes("".join(_row(i) + "\n" for i in range(5000)).encode("utf-16-le"))


def nested(path: Path) -> None:
    path.write_text("[" * 100_000 + "]" * 100_000 + "\n" + '{"messages": ' + "[" * 100_000 + "]" * 100_000 + "}\n")


def single_line_50mb(path: Path) -> None:
    words = " ".join(f"word{i % 1000}" for i in range(6_000_000))[: 50 << 20]
    path.write_text(_row(0, words) + "\n", encoding="utf-8")


def example_5mb(path: Path) -> None:
    big = " ".join(f"word{i % 1000}" for i in range(700_000))[: 5 << 20]
    path.write_text("".join(_row(i) + "\n" for i in range(50)) + _row(50, big) + "\n", encoding="utf-8")


def tiny_lines_1m(path: Path) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for i in range(1_000_000):
            f.write(f'{{"text": "msg {i}", "label": "{"ab"[i % 2]}"}}\n')


def gzip_bomb(path: Path) -> None:
    # 4 GB of CSV text compresses to a few MB; a reader that inflates it would need all of it in memory
    comp = zlib.compressobj(9, zlib.DEFLATED, 31)
    chunk = b"text,label\n" + b"a,b\n" * (1 << 20)
    with open(path, "wb") as f:
        for _ in range(1024):
            f.write(comp.compress(chunk))
        f.write(comp.flush())


def columns_10k(path: Path) -> None:
    header = ",".join(["text", "label"] + [f"c{i}" for i in range(10_000)])
    rows = [",".join([f"message {r}", "ab"[r % 2]] + [str(i) for i in range(10_000)]) for r in range(200)]
    path.write_text(header + "\n" + "\n".join(rows) + "\n", encoding="utf-8")


CORPUS: dict[str, Callable[[Path], None]] = {
    "truncated.jsonl": truncated, "binary.jsonl": binary, "invalid_utf8.jsonl": invalid_utf8,
    "utf16_no_bom.jsonl": utf16_no_bom, "nested_100k.json": nested, "single_line_50mb.jsonl": single_line_50mb,
    "example_5mb.jsonl": example_5mb, "tiny_lines_1m.jsonl": tiny_lines_1m, "gzip_bomb.csv": gzip_bomb,
    "columns_10k.csv": columns_10k,
}

_CHILD = """
import io, json, resource, sys, time, traceback
from contextlib import redirect_stdout, redirect_stderr
sys.setrecursionlimit(1000)
from mtw.cli import app
out, err = io.StringIO(), io.StringIO()
t0, c0 = time.perf_counter(), time.process_time()
code = None
with redirect_stdout(out), redirect_stderr(err):
    try:
        code = app(sys.argv[1:], standalone_mode=False) or 0
    except SystemExit as exc:
        code = exc.code
    except BaseException as exc:
        code = getattr(exc, "exit_code", None)
        if code is None:
            traceback.print_exc()
            code = "crash"
text = out.getvalue() + err.getvalue()
print(json.dumps({"rc": code, "wall_s": round(time.perf_counter() - t0, 1),
                  "cpu_s": round(time.process_time() - c0, 1),
                  "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                  "traceback": "Traceback" in text, "first_lines": text.strip().splitlines()[:3]}))
"""


def run_one(args: list[str]) -> dict:
    """`mtw ARGS` in a fresh process; its own peak RSS, exit code, times and the first lines it printed."""
    proc = subprocess.run([sys.executable, "-c", _CHILD, *args], capture_output=True, text=True, cwd=ROOT,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "HOME": str(Path.home())})
    try:
        return json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        return {"rc": proc.returncode, "peak_rss_mb": None, "traceback": True,
                "first_lines": (proc.stderr or proc.stdout).strip().splitlines()[-3:]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", help="file name(s) from the corpus to run")
    parser.add_argument("--fix", action="store_true", help="only the --fix run on 1M tiny lines")
    parser.add_argument("--make", nargs=2, metavar=("NAME", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.make:
        CORPUS[args.make[0]](Path(args.make[1]))
        return
    names = args.only or list(CORPUS)
    results = []
    with tempfile.TemporaryDirectory() as d:
        for name in names:
            path = Path(d) / name
            # made in a process of its own: Linux carries a process's peak RSS over to the children it starts,
            # so this one must stay small for the children's figures to be their own
            subprocess.run([sys.executable, __file__, "--make", name, str(path)], check=True)
            size_mb = round(path.stat().st_size / 1e6, 1)
            if not args.fix:
                res = run_one(["check", str(path)])
                results.append({"file": name, "mb": size_mb, "run": "check", **res,
                                "within_bound": (res["peak_rss_mb"] or 1e9) <= CHECK_BOUND_MB})
                print(json.dumps(results[-1]), flush=True)
            if name == "tiny_lines_1m.jsonl":
                res = run_one(["check", str(path), "--fix", str(Path(d) / "clean.jsonl")])
                results.append({"file": name, "mb": size_mb, "run": "check --fix", **res,
                                "within_bound": (res["peak_rss_mb"] or 1e9) <= FIX_BOUND_MB})
                print(json.dumps(results[-1]), flush=True)
            path.unlink()
    ok = all(r["within_bound"] and not r["traceback"] for r in results)
    print(json.dumps({"all_within_bounds_and_no_traceback": ok}))


if __name__ == "__main__":
    main()
