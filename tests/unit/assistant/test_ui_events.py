"""Tables as the page shows them: long answers cut, runs without spaces wrapped by the stylesheet, Markdown kept
intact."""

from __future__ import annotations

from assistant.ui_events import CELL_CHARS, Table, table_markdown


def rows_of(markdown: str) -> list[list[str]]:
    body = markdown.split("\n")[4:]
    return [[c.strip() for c in line.strip("|").split(" | ")] for line in body]


def test_a_long_answer_is_cut_so_the_other_columns_stay_in_view() -> None:
    answer = "As a shopper I want to track my order " * 40
    md = table_markdown(Table(ui="table", title="Compare", columns=["Prompt", "Tuned", "Winner"],
                              rows=[["Write a story", answer, "tuned"]]))
    [[prompt, tuned, winner]] = rows_of(md)
    assert prompt == "Write a story"
    assert winner == "tuned"
    assert CELL_CHARS - 2 <= len(tuned) <= CELL_CHARS
    assert tuned.endswith("…")
    assert answer.startswith(tuned[:-1])


def test_a_run_without_spaces_is_kept_whole_and_the_served_stylesheet_wraps_it(tmp_path) -> None:
    from assistant.server import app_root

    md = table_markdown(Table(ui="table", title="T", columns=["Answer"], rows=[["x" * 200]]))
    [[cell]] = rows_of(md)
    assert cell == "x" * 200  # no characters inserted: a copied answer is the answer
    root = app_root(tmp_path, "127.0.0.1", 8000, 50)
    config = (root / ".chainlit" / "config.toml").read_text()
    assert 'custom_css = "/public/mtw.css"' in config
    assert "overflow-wrap: anywhere" in (root / "public" / "mtw.css").read_text()


def test_pipes_and_new_lines_do_not_break_the_table() -> None:
    md = table_markdown(Table(ui="table", title="T", columns=["A", "B"], rows=[["a | b\nc", "short"]]))
    assert md.splitlines()[:4] == ["**T**", "", "| A | B |", "|---|---|"]
    assert md.splitlines()[4] == "| a \\| b c | short |"
