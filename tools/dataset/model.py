"""The canonical dataset rows every reader produces, and the report `mtw check --json` prints."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Role = Literal["system", "user", "assistant", "tool"]
ROLES: tuple[Role, ...] = ("system", "user", "assistant", "tool")
Severity = Literal["error", "warning", "info"]


class ToolCall(BaseModel):
    """A function call the assistant makes: the tool's name and its arguments as JSON text."""

    model_config = ConfigDict(extra="forbid")

    name: str
    arguments: str
    """The arguments exactly as written (JSON text); the checks say when they do not parse."""
    id: str | None = None


class Message(BaseModel):
    """One turn of a conversation."""

    model_config = ConfigDict(extra="forbid")

    role: Role
    content: str
    tool_calls: list[ToolCall] | None = None
    """Calls an assistant turn makes (its content is often empty then)."""
    tool_call_id: str | None = None
    """Which call a tool turn answers."""
    weight: float | None = None
    """0 = the turn is shown to the model but not taught (OpenAI `weight`, LLaMA-Factory `loss_weight`)."""

    def openai(self) -> dict[str, Any]:
        """The turn in OpenAI's chat shape (content null beside tool calls), for writing JSONL."""
        out: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.tool_calls:
            out["content"] = self.content or None
            out["tool_calls"] = [{"id": c.id or f"call_{i}", "type": "function",
                                  "function": {"name": c.name, "arguments": c.arguments}}
                                 for i, c in enumerate(self.tool_calls)]
        if self.tool_call_id is not None:
            out["tool_call_id"] = self.tool_call_id
        if self.weight is not None:
            out["weight"] = self.weight
        return out

    def taught(self) -> bool:
        """Whether training puts this turn in the loss (assistant turns not weighted 0)."""
        return self.role == "assistant" and self.weight != 0


class Example(BaseModel):
    """One training row, whatever file format it came from.

    Chat rows fill `messages`. Classification rows hold the text as a single user message and the
    class in `label`. Entity-extraction rows hold `tokens` and their BIO `tags`.
    """

    model_config = ConfigDict(extra="forbid")

    messages: list[Message] = Field(default_factory=list)
    label: str | None = None
    tokens: list[str] | None = None
    tags: list[str] | None = None
    tools: list[dict[str, Any]] | None = None
    """Function definitions the conversation may call (OpenAI `tools` shape)."""
    desirable: bool | None = None
    """KTO-style preference label: False marks an answer that must never be taught."""
    rejected: list[Message] | None = None
    """A DPO pair's losing answer (the turns after the prompt); `messages` hold the prompt and the chosen one."""
    models: dict[str, str] | None = None
    """Who wrote a judgement's answers ({"chosen": …, "rejected": …} or {"answer": …}), for judgements given in
    the chat."""
    line: int | None = None
    """Line of the source file the row started on (1-based); None for rows made in memory."""

    @property
    def kind(self) -> Literal["chat", "classification", "ner"]:
        """What the row teaches: a conversation, a class label, or entity tags."""
        if self.tokens is not None:
            return "ner"
        if self.label is not None:
            return "classification"
        return "chat"

    @property
    def text(self) -> str:
        """The classification text (the first user turn), or the tokens joined by spaces."""
        if self.tokens is not None:
            return " ".join(self.tokens)
        return next((m.content for m in self.messages if m.role == "user"), "")

    def prompt(self) -> str:
        """Everything the model reads before its last answer (system + user turns, joined)."""
        last = max((i for i, m in enumerate(self.messages) if m.role == "assistant"), default=len(self.messages))
        return "\n".join(m.content for m in self.messages[:last] if m.role != "assistant") or self.text

    def answer(self) -> str:
        """The last assistant turn (empty when there is none)."""
        return next((m.content for m in reversed(self.messages) if m.role == "assistant"), "")

    def all_text(self) -> str:
        """Every piece of text in the row, for duplicate and PII scans."""
        turns = self.messages + (self.rejected or [])
        parts = [m.content for m in turns]
        parts += [c.arguments for m in turns for c in m.tool_calls or ()]
        if self.tokens is not None:
            parts.append(" ".join(self.tokens))
        if self.label is not None:
            parts.append(self.label)
        return "\n".join(parts)

    def preference(self) -> Preference | None:
        """The judgement this row holds (a DPO pair or a KTO-rated answer); None for an ordinary example."""
        if self.rejected is None and self.desirable is None:
            return None
        cut = len(self.messages)
        while cut > 0 and self.messages[cut - 1].role == "assistant":
            cut -= 1
        prompt, answer = self.messages[:cut], self.messages[cut:]
        if self.rejected is not None:
            return Preference(prompt=prompt, chosen=answer, rejected=self.rejected, line=self.line)
        return Preference(prompt=prompt, chosen=answer if self.desirable else [],
                          rejected=[] if self.desirable else answer, line=self.line)

    @classmethod
    def chat(cls, *turns: tuple[Role, str], line: int | None = None) -> Example:
        """Build a chat row from (role, content) pairs."""
        return cls(messages=[Message(role=r, content=c) for r, c in turns], line=line)

    @classmethod
    def classified(cls, text: str, label: str, line: int | None = None) -> Example:
        """Build a classification row."""
        return cls(messages=[Message(role="user", content=text)], label=label, line=line)


class Preference(BaseModel):
    """One judgement, whichever file or click it came from: a prompt and the answer(s) judged.

    A pair (DPO, a LLaMA-Factory ranking row, "which is better?") has both answers; a single rated answer (KTO,
    a thumbs up or down) has only the chosen or only the rejected one.
    """

    model_config = ConfigDict(extra="forbid")

    prompt: list[Message]
    """The conversation before the answer (system and user turns, earlier exchanges)."""
    chosen: list[Message] = Field(default_factory=list)
    """The better answer's turns (empty for a single answer rated bad)."""
    rejected: list[Message] = Field(default_factory=list)
    """The worse answer's turns (empty for a single answer rated good)."""
    line: int | None = None

    @property
    def paired(self) -> bool:
        """Both answers are there: a pair DPO can learn from."""
        return bool(self.chosen) and bool(self.rejected)

    def unpaired(self) -> list[tuple[list[Message], bool]]:
        """Each judged answer with whether it is the good one: what KTO learns from (a pair gives two)."""
        return [(turns, good) for turns, good in ((self.chosen, True), (self.rejected, False)) if turns]


class Issue(BaseModel):
    """One problem found in a dataset: where, what, and how to fix it, in plain words."""

    code: str
    severity: Severity
    line: int | None = None
    message: str
    fix: str


class DatasetReport(BaseModel):
    """The result of checking a dataset; `.model_dump()` is the `mtw check --json` document."""

    format: str
    examples: int
    ok: bool
    issues: list[Issue] = Field(default_factory=list)
    stats: dict[str, Any] = Field(default_factory=dict)

    def count(self, severity: Severity) -> int:
        """How many issues of one severity."""
        return sum(1 for i in self.issues if i.severity == severity)

    def codes(self) -> set[str]:
        """The distinct issue codes in the report."""
        return {i.code for i in self.issues}

    def summary(self) -> str:
        """One line a person reads first: '42 examples, 3 problems to fix, 2 warnings, 1 note'."""
        errors, warnings, notes = self.count("error"), self.count("warning"), self.count("info")
        parts = [f"{self.examples} example{'s' * (self.examples != 1)}"]
        parts.append(f"{errors} problem{'s' * (errors != 1)} to fix" if errors else "no problems to fix")
        if warnings:
            parts.append(f"{warnings} warning{'s' * (warnings != 1)}")
        if notes:
            parts.append(f"{notes} note{'s' * (notes != 1)}")
        return ", ".join(parts)
