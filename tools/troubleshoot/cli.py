"""`mtw explain "QUESTION"`: a troubleshooting answer from the knowledge base."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.markdown import Markdown


def explain(question: str = typer.Argument(..., help="Your question, in quotes: \"why is my loss flat?\"")) -> None:
    """Answer a question from the troubleshooting knowledge base."""
    from tools.troubleshoot.answer import explain_question

    console = Console()
    if not question.strip():
        typer.echo('Ask a question, e.g. mtw explain "why is my loss flat?"', err=True)
        raise typer.Exit(2)
    ex = explain_question(question)
    if not ex.entries:
        console.print(ex.note + ' Try other words, e.g. "out of memory", "loss flat", "never stops".')
        raise typer.Exit(1)
    if ex.answer:
        console.print(Markdown(ex.answer))
        console.print(f"\n[dim]Answered by {ex.model} from the knowledge base:[/] "
                      + ", ".join(f"[bold]{e.id}[/] ({e.title})" for e in ex.entries))
        return
    if ex.note:
        console.print(f"[yellow]{ex.note}[/]\nThe closest entries in the knowledge base:\n")
    best, *others = ex.entries
    console.print(Markdown(best.markdown()))
    console.print(f"[dim]({best.id})[/]")
    if others:
        console.print("\nAlso see: " + "; ".join(f"{e.title} [dim]({e.id})[/]" for e in others))
