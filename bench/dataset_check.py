"""Benchmark `mtw check` on N generated examples of realistic length, with planted duplicates and near-duplicates.

Two shapes: `chat` (PM conversations averaging ~3 KB, lognormal spread, default 100k rows) and `alpaca`
(instruction / input / output rows shaped like the 52k alpaca file: many short answers, a long tail). Times the
full check (read + every check) in wall-clock and CPU seconds, its peak memory, how many planted copies it
found and how many lines the plain report takes; in the same run, the baselines: a naive all-pairs
near-duplicate scan on a subset (extrapolated to N), and datasketch's own `MinHash` against the vectorised
signatures `mtw check` computes (CPU time on the same texts). The load average is printed too: on a shared
machine wall time tracks it.

    .venv/bin/python bench/dataset_check.py --n 100000
    .venv/bin/python bench/dataset_check.py --shape alpaca --n 52000
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import re
import resource
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tools.dataset.checks import NEAR_DUP_THRESHOLD, check_file  # noqa: E402
from tools.dataset.readers import iter_examples  # noqa: E402

KINDS = ["user story", "PRD", "status update", "OKRs", "competitive analysis", "roadmap", "meeting notes",
         "stakeholder email", "release notes", "interview guide"]
FEATURES = ["password reset", "CSV export", "dark mode", "SSO", "bulk import", "usage billing", "audit log",
            "push notifications", "workspaces", "saved filters", "two-factor login", "rate limits", "search",
            "calendar view", "Slack integration", "offline mode", "invoices", "permissions", "dashboards"]
WORDS = ("customer team release metric goal risk scope sprint budget design launch feedback churn retention "
         "activation pricing onboarding backlog estimate deadline owner review quality latency support adoption "
         "dependency milestone experiment cohort funnel segment revenue renewal contract integration").split()


FUNCTION_WORDS = "the a of to and in for is on that with we it this as be by our will are from at".split()
SYLLABLES = "ka lo mi ne su ta ri po de va lu ma ko si be ra no te pi gu fe do ha ji".split()


def _vocabulary(size: int = 4000, seed: int = 7) -> tuple[list[str], list[float]]:
    """Words with Zipf-like frequencies (rank r drawn ∝ 1/r), as in real text: function words first, then the PM
    words, then made-up words; without the long tail, unrelated short rows share most of their words."""
    rng = random.Random(seed)
    words = FUNCTION_WORDS + WORDS
    seen = set(words)
    while len(words) < size:
        word = "".join(rng.choices(SYLLABLES, k=rng.randint(2, 4)))
        if word not in seen:
            seen.add(word)
            words.append(word)
    return words, list(itertools.accumulate(1 / (r + 1) for r in range(len(words))))


VOCAB, CUM_WEIGHTS = _vocabulary()


def text(rng: random.Random, n: int) -> str:
    return " ".join(rng.choices(VOCAB, cum_weights=CUM_WEIGHTS, k=n))


def make_row(rng: random.Random, i: int) -> dict:
    kind, feature = rng.choice(KINDS), rng.choice(FEATURES)
    # lognormal body: median ~420 words, mean ~500 (~3 KB of text), a long tail up to 4,000 words
    n = min(4000, max(20, int(rng.lognormvariate(6.05, 0.6))))
    body = text(rng, n)
    return {"messages": [
        {"role": "user", "content": f"Write a {kind} about {feature} for team {i % 97} (ticket {i})."},
        {"role": "assistant", "content": f"{kind.title()} for {feature}.\n\n{body}"},
    ]}


def make_alpaca_row(rng: random.Random, i: int) -> dict:
    """Shaped like the alpaca file: a one-line instruction, an input 40 % of the time, answers from one word to
    a few hundred (median ~25 words)."""
    kind, feature = rng.choice(KINDS), rng.choice(FEATURES)
    answer = text(rng, min(900, max(1, int(rng.lognormvariate(3.2, 1.1)))))
    given = text(rng, rng.randint(5, 80)) if rng.random() < 0.4 else ""
    return {"instruction": f"Give a {kind} about {feature} for case {i}.", "input": given, "output": answer}


def near_copy(rng: random.Random, row: dict) -> dict:
    if "output" in row:
        words = f"{row['input']} {row['output']}".split(" ")
        # short rows: one word in ~25 changed (a near-copy as people make them)
        for _ in range(max(1, len(words) // 25)):
            words[rng.randrange(len(words))] = rng.choice(WORDS)
        cut = len(row["input"].split(" ")) if row["input"] else 0
        return {**row, "input": " ".join(words[:cut]), "output": " ".join(words[cut:]) or "ok"}
    words = row["messages"][1]["content"].split(" ")
    j = rng.randrange(2, len(words))
    words[j] = rng.choice(WORDS)  # one word changed: a near-duplicate, not an exact one
    return {"messages": [row["messages"][0], {"role": "assistant", "content": " ".join(words)}]}


def generate(n: int, path: Path, dup_share: float = 0.02, near_share: float = 0.02, seed: int = 0,
             shape: str = "chat") -> tuple[int, int]:
    """Write n rows, streaming; copies and near-copies are planted from a bounded pool of earlier rows."""
    rng = random.Random(seed)
    make = make_alpaca_row if shape == "alpaca" else make_row
    pool: list[dict] = []
    n_dup = n_near = 0
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            roll = rng.random()
            if pool and roll < dup_share:
                row, n_dup = rng.choice(pool), n_dup + 1
            elif pool and roll < dup_share + near_share:
                row, n_near = near_copy(rng, rng.choice(pool)), n_near + 1
            else:
                row = make(rng, i)
                if len(pool) < 5000:
                    pool.append(row)
                else:
                    pool[rng.randrange(len(pool))] = row
            f.write(json.dumps(row) + "\n")
    return n_dup, n_near


def shingles(text: str) -> set[str]:
    words = re.findall(r"\w+", text.lower())
    return {" ".join(words[i:i + 3]) for i in range(max(1, len(words) - 2))}


def naive_pairs(texts: list[str]) -> tuple[int, float]:
    """All-pairs Jaccard on word 3-grams: the O(n²) way near-duplicates are often found."""
    sets = [shingles(t) for t in texts]
    start = time.perf_counter()
    found = 0
    for i in range(len(sets)):
        a = sets[i]
        for j in range(i):
            b = sets[j]
            inter = len(a & b)
            if inter and inter / (len(a) + len(b) - inter) >= NEAR_DUP_THRESHOLD:
                found += 1
                break
    return found, time.perf_counter() - start


def minhash_baseline(texts: list[str]) -> dict:
    """CPU seconds for datasketch's own MinHash (one update_batch of word 3-grams per text) and for the vectorised
    signatures mtw check computes, on the same texts."""
    from datasketch import MinHash

    from tools.dataset.duplicates import NUM_PERM, signatures

    c0 = time.process_time()
    for i in range(0, len(texts), 512):
        signatures(texts[i:i + 512])
    ours = time.process_time() - c0
    c0 = time.process_time()
    for text in texts:
        words = text.lower().split()
        mh = MinHash(num_perm=NUM_PERM)
        mh.update_batch([" ".join(words[k:k + 3]).encode() for k in range(max(1, len(words) - 2))])
    theirs = time.process_time() - c0
    return {"minhash_subset": len(texts), "signatures_cpu_s": round(ours, 2),
            "datasketch_minhash_cpu_s": round(theirs, 2), "datasketch_over_ours": round(theirs / max(ours, 1e-9), 1)}


def datasketch_lsh(sigs, sets) -> int:
    """Rows datasketch's MinHashLSH finds a near-copy for (insert each row, query the ones before it), with the
    same rule as mtw check: short texts by their words, others by the estimate."""
    from datasketch import MinHash, MinHashLSH

    from tools.dataset.duplicates import NEAR_DUP_THRESHOLD, NUM_PERM, SHORT_THRESHOLD, _jaccard, _permutations

    def alike(a: int, b: int) -> bool:
        if sets[a] is not None and sets[b] is not None:
            return _jaccard(sets[a], sets[b]) >= SHORT_THRESHOLD
        return float((sigs[a] == sigs[b]).mean()) >= NEAR_DUP_THRESHOLD

    lsh = MinHashLSH(threshold=SHORT_THRESHOLD, num_perm=NUM_PERM, weights=(0.2, 0.8))
    found = 0
    for idx, sig in enumerate(sigs):
        mh = MinHash(num_perm=NUM_PERM, hashvalues=sig, permutations=_permutations(), scheme="affine32")
        found += any(alike(idx, c) for c in lsh.query(mh))
        lsh.insert(idx, mh, check_duplication=False)
    return found


def lsh_baseline(texts: list[str], templated: int) -> dict:
    """CPU seconds of datasketch's MinHashLSH and of the banding mtw check runs, on the same signatures: the
    benchmark's rows, `templated` short rows that differ only in a number (as generated data often does: all
    near-copies), and as many tiny rows (`msg 17` + a label: half their words shared, none near-copies)."""
    from tools.dataset.duplicates import near_pairs, signatures, word_sets

    out = {}
    for name, rows in (("rows", texts), ("templated", [f"Reset the password for user {i} today" for i in
                                                        range(templated)]),
                       ("tiny", [f"msg {i}\n{'ab'[i % 2]}" for i in range(templated)])):
        sigs, sets = signatures(rows), word_sets(rows)
        c0 = time.process_time()
        theirs = datasketch_lsh(sigs, sets)
        mid = time.process_time()
        ours = len(near_pairs(sigs, sets))
        end = time.process_time()
        out[f"lsh_{name}"] = {"n": len(rows), "datasketch_cpu_s": round(mid - c0, 2), "ours_cpu_s": round(end - mid, 3),
                              "datasketch_found": theirs, "ours_found": ours}
    return out


def report_lines(report, source: str) -> int:
    """How many lines the plain report prints at 100 columns."""
    import io

    from rich.console import Console

    from tools.dataset.report import render

    out = io.StringIO()
    render(report, Console(file=out, width=100, color_system=None), source=source)
    return out.getvalue().count("\n")


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=["chat", "alpaca"], default="chat", help="kind of rows to generate")
    parser.add_argument("--n", type=int, default=None, help="examples to generate (100k chat, 52k alpaca)")
    parser.add_argument("--naive-subset", type=int, default=3000, help="rows for the all-pairs baseline")
    parser.add_argument("--minhash-subset", type=int, default=3000, help="rows for the datasketch MinHash and LSH "
                                                                         "baselines")
    parser.add_argument("--templated", type=int, default=3000, help="templated rows for the LSH baseline")
    args = parser.parse_args()
    n = args.n or (52_000 if args.shape == "alpaca" else 100_000)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / f"bench.{args.shape}.jsonl"
        t0 = time.perf_counter()
        n_dup, n_near = generate(n, path, shape=args.shape)
        gen_s = time.perf_counter() - t0
        size_mb = path.stat().st_size / 1e6
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        load_before = os.getloadavg()[0]
        t0, c0, w0 = time.perf_counter(), time.process_time(), _children_cpu()
        report = check_file(path)
        check_s, check_cpu_s = time.perf_counter() - t0, time.process_time() - c0
        # a large file's per-row checks run in a worker process: its CPU time counts too
        worker_cpu_s = _children_cpu() - w0
        rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        worker_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        lines = report_lines(report, str(path))
        subset = max(args.naive_subset, args.minhash_subset)
        texts = [ex.all_text() for ex in itertools.islice(iter_examples(path), subset)]
    found_dup = sum(1 for i in report.issues if i.code == "duplicate")
    found_near = sum(1 for i in report.issues if i.code == "near_duplicate")
    outliers = sum(1 for i in report.issues if i.code == "length_outlier")
    naive_found, naive_s = naive_pairs(texts[: args.naive_subset])
    m = min(len(texts), args.naive_subset)
    results = {
        "shape": args.shape, "examples": n, "file_mb": round(size_mb, 1),
        "mean_bytes_per_example": round(size_mb * 1e6 / n), "generate_s": round(gen_s, 1),
        "check_s": round(check_s, 2), "check_cpu_s": round(check_cpu_s + worker_cpu_s, 2),
        "check_worker_cpu_s": round(worker_cpu_s, 2), "examples_per_s": round(n / check_s),
        "load_avg_before": round(load_before, 1), "cpus": os.cpu_count(),
        "peak_rss_mb": round(rss_after / 1024), "rss_growth_mb": round((rss_after - rss_before) / 1024),
        "worker_peak_rss_mb": round(worker_rss / 1024),
        "planted_duplicates": n_dup, "found_duplicates": found_dup,
        "planted_near_duplicates": n_near, "found_near_duplicates": found_near,
        "length_outliers": outliers, "report_lines": lines,
        "naive_subset": m, "naive_subset_s": round(naive_s, 2), "naive_found_in_subset": naive_found,
        "naive_extrapolated_full_s": round(naive_s * (n / m) ** 2),
        **minhash_baseline(texts[: args.minhash_subset]),
        **lsh_baseline(texts[: args.minhash_subset], args.templated),
        "target_s": 30, "meets_target": check_s <= 30,
    }
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
