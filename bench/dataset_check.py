"""Benchmark `mtw check` on N generated PM examples with planted duplicates and near-duplicates.

Times the full check (read + every check, MinHash/LSH near-duplicates) in wall-clock and CPU seconds, its
peak memory, how many planted copies it found, and a naive all-pairs near-duplicate scan on a subset as the
baseline (extrapolated to N). The load average is printed too: on a shared machine wall time tracks it.

    .venv/bin/python bench/dataset_check.py --n 100000
"""

from __future__ import annotations

import argparse
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
from tools.dataset.readers import read_dataset  # noqa: E402

KINDS = ["user story", "PRD", "status update", "OKRs", "competitive analysis", "roadmap", "meeting notes",
         "stakeholder email", "release notes", "interview guide"]
FEATURES = ["password reset", "CSV export", "dark mode", "SSO", "bulk import", "usage billing", "audit log",
            "push notifications", "workspaces", "saved filters", "two-factor login", "rate limits", "search",
            "calendar view", "Slack integration", "offline mode", "invoices", "permissions", "dashboards"]
WORDS = ("customer team release metric goal risk scope sprint budget design launch feedback churn retention "
         "activation pricing onboarding backlog estimate deadline owner review quality latency support adoption "
         "dependency milestone experiment cohort funnel segment revenue renewal contract integration").split()


def make_row(rng: random.Random, i: int) -> dict:
    kind, feature = rng.choice(KINDS), rng.choice(FEATURES)
    body = " ".join(rng.choice(WORDS) for _ in range(rng.randint(60, 220)))
    return {"messages": [
        {"role": "user", "content": f"Write a {kind} about {feature} for team {i % 97} (ticket {i})."},
        {"role": "assistant", "content": f"{kind.title()} for {feature}.\n\n{body}"},
    ]}


def near_copy(rng: random.Random, row: dict) -> dict:
    words = row["messages"][1]["content"].split(" ")
    j = rng.randrange(2, len(words))
    words[j] = rng.choice(WORDS)  # one word changed: a near-duplicate, not an exact one
    return {"messages": [row["messages"][0], {"role": "assistant", "content": " ".join(words)}]}


def generate(n: int, path: Path, dup_share: float = 0.02, near_share: float = 0.02, seed: int = 0) -> tuple[int, int]:
    """Write n rows, streaming; copies and near-copies are planted from a bounded pool of earlier rows."""
    rng = random.Random(seed)
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
                row = make_row(rng, i)
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="examples to generate")
    parser.add_argument("--naive-subset", type=int, default=3000, help="rows for the all-pairs baseline")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "bench.jsonl"
        t0 = time.perf_counter()
        n_dup, n_near = generate(args.n, path)
        gen_s = time.perf_counter() - t0
        size_mb = path.stat().st_size / 1e6
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        load_before = os.getloadavg()[0]
        t0, c0 = time.perf_counter(), time.process_time()
        report = check_file(path)
        check_s, check_cpu_s = time.perf_counter() - t0, time.process_time() - c0
        rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        texts = [ex.all_text() for ex in read_dataset(path).examples[: args.naive_subset]]
    found_dup = sum(1 for i in report.issues if i.code == "duplicate")
    found_near = sum(1 for i in report.issues if i.code == "near_duplicate")
    naive_found, naive_s = naive_pairs(texts)
    m = len(texts)
    naive_full_s = naive_s * (args.n / m) ** 2
    results = {
        "examples": args.n, "file_mb": round(size_mb, 1), "generate_s": round(gen_s, 1),
        "check_s": round(check_s, 2), "check_cpu_s": round(check_cpu_s, 2), "examples_per_s": round(args.n / check_s),
        "load_avg_before": round(load_before, 1), "cpus": os.cpu_count(),
        "peak_rss_mb": round(rss_after / 1024), "rss_growth_mb": round((rss_after - rss_before) / 1024),
        "planted_duplicates": n_dup, "found_duplicates": found_dup,
        "planted_near_duplicates": n_near, "found_near_duplicates": found_near,
        "naive_subset": m, "naive_subset_s": round(naive_s, 2), "naive_found_in_subset": naive_found,
        "naive_extrapolated_full_s": round(naive_full_s), "target_s": 30, "meets_target": check_s <= 30,
    }
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
