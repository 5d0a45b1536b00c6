"""The human view of a dataset report: summary first, then problems, warnings and notes, then the numbers."""

from __future__ import annotations

from collections import defaultdict

from rich.console import Console

from tools.dataset.coverage import category_name
from tools.dataset.model import DatasetReport, Issue, Severity

FORMAT_NAMES = {
    "messages": "OpenAI chat messages", "alpaca": "alpaca (instruction / input / output)",
    "sharegpt": "ShareGPT conversations", "prompt_completion": "prompt / completion",
    "classification": "classification (text + label)", "ner": "entity extraction (tokens + tags)",
    "unknown": "unknown", "empty": "empty file", "dolly": "Dolly (instruction / context / response)",
    "dpo": "preference data, DPO (chosen / rejected)", "kto": "preference data, KTO (desirable / undesirable)",
    "plain_text": "plain text (pre-training material)", "dataset_registry": "dataset registry (dataset_info.json)",
    "binary": "not a text file",
}
SHOWN_PER_CODE = 3
_HEADINGS: dict[Severity, tuple[str, str]] = {
    "error": ("Problems to fix", "red"), "warning": ("Worth a look", "yellow"), "info": ("Notes", "cyan"),
}


def render(report: DatasetReport, console: Console, *, source: str = "") -> None:
    """Print the report: one summary line, then each group of issues with their lines and fixes, then stats."""
    stats = report.stats
    where = f"{source} — " if source else ""
    container = f" ({stats.get('container', 'jsonl')}, {stats.get('encoding', 'utf-8')})" if stats else ""
    console.print(f"{where}format: [bold]{FORMAT_NAMES.get(report.format, report.format)}[/]{container}")
    colour = "green" if report.ok else "red"
    mark = "✔" if report.ok else "✘"
    console.print(f"[bold {colour}]{mark} {report.summary()}[/]")
    for severity in ("error", "warning", "info"):
        issues = [i for i in report.issues if i.severity == severity]
        if issues:
            heading, style = _HEADINGS[severity]  # type: ignore[index]
            console.print(f"\n[bold {style}]{heading}[/]")
            _render_group(issues, console, style)
    _render_stats(report, console)


def _render_group(issues: list[Issue], console: Console, style: str) -> None:
    by_code: dict[str, list[Issue]] = defaultdict(list)
    for issue in issues:
        by_code[issue.code].append(issue)
    for code, group in by_code.items():
        shown = group[:SHOWN_PER_CODE]
        # issues of one kind usually share their fix: say it once, so the report stays one screen
        shared = len({i.fix for i in shown}) == 1
        for issue in shown:
            console.print(f"  [{style}]•[/] {issue.message} [dim]({code})[/]", highlight=False)
            if not shared:
                console.print(f"    → {issue.fix}", highlight=False)
        if shared:
            console.print(f"    → {shown[0].fix}", highlight=False)
        if len(group) > SHOWN_PER_CODE:
            rest = len(group) - SHOWN_PER_CODE
            lines = [str(i.line) for i in group[SHOWN_PER_CODE:] if i.line is not None][:10]
            label = "line" if len(lines) == 1 and rest == 1 else "lines"
            more = f" ({label} {', '.join(lines)}{'…' if rest > len(lines) else ''})" if lines else ""
            console.print(f"    … and {rest} more like this{more}.", highlight=False)


def _render_stats(report: DatasetReport, console: Console) -> None:
    stats = report.stats
    if not stats or not report.examples:
        return
    tokens = stats.get("tokens", {})
    console.print("\n[bold]Numbers[/]")
    console.print(f"  Tokens per example ({stats.get('token_counting', 'estimate')}): min {tokens.get('min', 0):,}, "
                  f"median {tokens.get('median', 0):,}, 95% under {tokens.get('p95', 0):,}, "
                  f"max {tokens.get('max', 0):,} — context {stats.get('context', 0):,}", highlight=False)
    if stats.get("numbering") == "record":
        console.print("  The records share one line, so issues name record numbers.", highlight=False)
    if stats.get("roles"):
        roles = ", ".join(f"{k} {v}" for k, v in stats["roles"].items())
        console.print(f"  Turns by role: {roles}", highlight=False)
    if stats.get("labels"):
        labels = ", ".join(f"{k} {v}" for k, v in sorted(stats["labels"].items(), key=lambda kv: -kv[1]))
        console.print(f"  Labels: {labels}", highlight=False)
    if stats.get("validation_examples") is not None:
        console.print(f"  Validation: {stats['validation_examples']} examples in {stats.get('validation_file', '')}",
                      highlight=False)
    cov = stats.get("coverage")
    if cov:
        kinds = ", ".join(f"{category_name(key)} {n}{' (thin)' if key in cov['thin'] else ''}"
                          for key, n in sorted(cov["kinds"].items(), key=lambda kv: -kv[1]) if n)
        other = f"; other / not recognised {cov['unclassified']}" if cov.get("unclassified") else ""
        console.print(f"  PM task kinds covered: {kinds or 'none recognised'}{other}", highlight=False)
