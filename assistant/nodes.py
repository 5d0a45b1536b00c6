"""The wizard's node names (one enum) and where each node may go, declared beside the node with `@routes`.

A node moves on with `go(Node.x)` or asks with `ask(..., then=Node.y)`: the question goes to `listen`, and
`understand` sends the answer to `y`. `@routes(Node.x, asks=(Node.y,))` above the node says so; assistant.graph hands
the declarations to LangGraph, so `builder.compile().get_graph()` draws the whole wizard (docs/wizard-graph.md), and
`go` / `ask` check each move against them: a move the node did not declare is logged, and raises where
MTW_STRICT_ROUTES is set (the tests set it).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from enum import StrEnum, auto
from typing import TypeVar

from langgraph.config import get_config

log = logging.getLogger("mtw.graph")

F = TypeVar("F", bound=Callable[..., object])


class Node(StrEnum):
    """Every node of the wizard's graph, in the order of the journey (the value is the node's function name)."""

    # the conversation loop
    listen = auto()
    understand = auto()
    explain = auto()
    where_we_are = auto()
    note_stale = auto()
    not_understood = auto()
    confirm_suggestion = auto()
    navigate = auto()
    change_setting = auto()
    # onboarding
    check_environment = auto()
    pull_assistant_model = auto()
    # interview
    ask_slot = auto()
    fill_slot = auto()
    confirm_spec = auto()
    on_confirm = auto()
    choose_edit = auto()
    on_edit = auto()
    save_project = auto()
    on_name_taken = auto()
    confirm_start_over = auto()
    on_start_over = auto()
    # the dataset: choose, upload, draft and review, documents, check
    choose_data = auto()
    on_data_choice = auto()
    ask_file = auto()
    receive_file = auto()
    use_sample = auto()
    draft_batch = auto()
    on_weak_drafts = auto()
    switch_assistant_model = auto()
    review_draft = auto()
    on_review = auto()
    edit_example = auto()
    on_edit_example = auto()
    after_drafts = auto()
    on_after_drafts = auto()
    show_dataset = auto()
    on_table = auto()
    on_open = auto()
    ask_document = auto()
    receive_document = auto()
    on_privacy = auto()
    draft_document = auto()
    check_data = auto()
    decide_after_check = auto()
    on_checked = auto()
    fix_data = auto()
    # the training plan and the run
    configure_training = auto()
    offer_base_download = auto()
    on_base_offer = auto()
    confirm_training = auto()
    on_confirm_training = auto()
    start_training = auto()
    resume_training = auto()
    watch_training = auto()
    on_training_input = auto()
    after_training = auto()
    on_after_run = auto()
    # evaluation and the models
    choose_next = auto()
    on_next = auto()
    evaluate_model = auto()
    check_export = auto()
    score_answer = auto()
    on_score = auto()
    report_agreement = auto()
    list_models = auto()
    on_models = auto()
    pick_model = auto()
    on_pick_model = auto()
    on_delete = auto()
    show_comparison = auto()
    on_promote_choice = auto()
    # export to Ollama
    export_model = auto()
    on_export_problem = auto()
    quick_model = auto()
    on_quick = auto()
    ask_export_name = auto()
    on_export_name = auto()
    ask_quantize = auto()
    on_quantize = auto()
    compare_versions = auto()
    # trying the model
    try_model = auto()
    on_try = auto()
    # the next round
    plan_improvement = auto()
    on_improve = auto()
    # preference rounds
    ask_wanted = auto()
    on_wanted = auto()
    judge_answers = auto()
    on_judge = auto()
    improve_with_ratings = auto()
    on_ratings_round = auto()
    start_preference_round = auto()
    compare_round_versions = auto()
    # input outside a question's own answers: a turn begun with none open, a misplaced file, a run's end
    enter = auto()
    misplaced_file = auto()
    read_outcome = auto()


TABLE_BACK = (Node.review_draft, Node.after_drafts, Node.choose_data)
"""Where "Go on" at the dataset table can return (the state's `table_back`, set where the table is opened)."""

TRY_BACK = (Node.choose_next, Node.choose_data)
"""Where "Done trying" can return (the state's `try_back`, set where trying starts)."""

ANSWER = "answer"
"""The label of an edge from a node to the handler of its question (reached through `listen` and `understand`)."""

ROUTES: dict[Node, dict[Node, str]] = {}
"""Each node's declared destinations, with the edge's label: the node's own name for a move, ANSWER for a handler."""


def routes(*goes: Node, asks: Iterable[Node] = ()) -> Callable[[F], F]:
    """Declare where the decorated node goes: `goes` with go(...), and the handlers (`then=`) of the questions it
    asks (asking goes to `listen`). The node is returned as it is."""
    answers = tuple(asks)

    def declare(fn: F) -> F:
        node = Node(getattr(fn, "__name__", ""))  # a ValueError names a node missing from the enum
        found: dict[Node, str] = {d: str(d) for d in goes}
        if answers:
            found.setdefault(Node.listen, str(Node.listen))
        found |= {d: ANSWER for d in answers if d not in found}
        ROUTES[node] = found
        return fn

    return declare


class UndeclaredRoute(RuntimeError):
    """A node moved somewhere its `@routes` does not name (a bug in the declaration, raised in tests)."""


def check_route(target: str) -> None:
    """Check a move of the running node against its declaration; outside a graph run there is nothing to check."""
    try:
        here = str(get_config().get("metadata", {}).get("langgraph_node"))
    except RuntimeError:
        return
    declared = ROUTES.get(Node(here)) if here in Node.__members__ else None
    if declared is None or target in declared:
        return
    message = f"The node {here} went to {target}, which its @routes does not declare; add it there."
    if os.environ.get("MTW_STRICT_ROUTES"):
        raise UndeclaredRoute(message)
    log.warning(message)
