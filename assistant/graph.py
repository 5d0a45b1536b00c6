"""The wizard as a LangGraph: the conversation loop plus one module of nodes per journey stage.

Every stage node either asks (and the graph goes to `listen`, the only interrupt) or moves on with a `Command`.
`understand` reads each reply and `route_intent` sends it to the question's handler or to explain / steer.
Each node's destinations come from its `@routes` (assistant.nodes), so `builder.compile().get_graph()` draws every
route (docs/wizard-graph.md). Exports `builder` (for tests, with their own checkpointer) and `STAGES`.
"""

from __future__ import annotations

from typing import Any

from langgraph.graph import START, StateGraph

from assistant import conversation
from assistant.context import WizardContext
from assistant.nodes import ANSWER, ROUTES, Node
from assistant.stages import (
    author,
    brain,
    dataset,
    deploy,
    documents,
    evaluate,
    improve,
    interview,
    onboard,
    playground,
    prefer,
    recover,
    train,
)
from assistant.state import WizardState
from assistant.ui_events import STAGES

__all__ = ["STAGES", "builder"]

NODES: list[Any] = [
    conversation.listen, conversation.understand, conversation.explain, conversation.where_we_are,
    conversation.note_stale, conversation.not_understood, conversation.confirm_suggestion, conversation.navigate,
    conversation.change_setting,
    onboard.check_environment, onboard.pull_assistant_model,
    interview.ask_slot, interview.fill_slot, interview.confirm_spec, interview.on_confirm, interview.choose_edit,
    interview.on_edit, interview.save_project, interview.on_name_taken, interview.confirm_start_over,
    interview.on_start_over,
    dataset.choose_data, dataset.on_data_choice, dataset.ask_file, dataset.receive_file, dataset.use_sample,
    author.draft_batch, brain.on_weak_drafts, brain.switch_assistant_model, author.review_draft, author.on_review,
    author.edit_example, author.on_edit_example,
    author.after_drafts, author.on_after_drafts, author.show_dataset, author.on_table, author.on_open,
    documents.ask_document, documents.receive_document, documents.on_privacy, documents.draft_document,
    dataset.check_data, dataset.decide_after_check, dataset.on_checked, dataset.fix_data,
    train.configure_training, train.offer_base_download, train.on_base_offer, train.confirm_training,
    train.on_confirm_training, train.start_training, train.resume_training, train.watch_training,
    train.on_training_input, train.after_training, train.on_after_run,
    evaluate.choose_next, evaluate.on_next, evaluate.evaluate_model, evaluate.check_export, evaluate.score_answer,
    evaluate.on_score, evaluate.report_agreement, evaluate.list_models, evaluate.on_models, evaluate.pick_model,
    evaluate.on_pick_model, evaluate.on_delete, evaluate.show_comparison, evaluate.on_promote_choice,
    deploy.export_model, deploy.on_export_problem, deploy.quick_model, deploy.on_quick, deploy.ask_export_name,
    deploy.on_export_name, deploy.ask_quantize, deploy.on_quantize, deploy.compare_versions,
    playground.try_model, playground.on_try, improve.plan_improvement, improve.on_improve,
    prefer.ask_wanted, prefer.on_wanted, prefer.judge_answers, prefer.on_judge, prefer.improve_with_ratings,
    prefer.on_ratings_round, prefer.start_preference_round, prefer.compare_round_versions,
    recover.enter, recover.misplaced_file, recover.read_outcome,
]

ANSWERED: list[str] = sorted({
    *(str(to) for found in ROUTES.values() for to, label in found.items() if label == ANSWER),
    *map(str, conversation.STEER.values()),
    *map(str, (Node.after_training, Node.confirm_suggestion, Node.not_understood, Node.misplaced_file)),
})
"""Where `understand` can send a reply: every question's handler (the `asks` of the nodes), explain and the steering
nodes, `after_training` for a run's outcome, and `misplaced_file` for a file sent where none was asked for."""

builder = StateGraph(WizardState, context_schema=WizardContext)
for node in NODES:
    declared = ROUTES.get(Node(node.__name__), {})
    builder.add_node(node, destinations={str(to): label for to, label in declared.items()} or None)
builder.add_edge(START, Node.enter.value)
builder.add_edge(Node.listen.value, Node.understand.value)
builder.add_conditional_edges(Node.understand.value, conversation.route_intent, ANSWERED)


def drawing() -> str:
    """The wizard's graph as a Markdown page with a Mermaid diagram (docs/wizard-graph.md)."""
    mermaid = builder.compile().get_graph().draw_mermaid()
    return ("# The wizard's graph\n\n"
            "Every node of the chat and where it can go, drawn from the graph itself (`@routes` beside each node in\n"
            "`assistant/`). A question goes to `listen` and `understand`; a dotted edge labelled `answer` leads from\n"
            "the node that asks to the node that handles the answer. Regenerate with\n"
            "`.venv/bin/python -m assistant.graph > docs/wizard-graph.md` (a test checks it is current).\n\n"
            f"```mermaid\n{mermaid.rstrip()}\n```\n")


if __name__ == "__main__":
    print(drawing(), end="")
