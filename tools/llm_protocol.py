"""The small LLM interface the engine needs (the assistant's Ollama layer satisfies it), and how long an answer to a
schema may be."""

from __future__ import annotations

from typing import Any, Protocol, TypeVar

from pydantic import BaseModel

T = TypeVar("T", bound=BaseModel)

CHARS_PER_TOKEN = 3
"""A cautious rate for English text in the tokenizers of small models (about 4 on average, 3 for JSON-ish text)."""
DEFAULT_STRING_CHARS = 240
"""A string field without a max_length: a sentence or two."""
DEFAULT_ITEMS = 8
"""An array without max_items."""
MAX_BUDGET = 4096


class StructuredLLM(Protocol):
    """Anything that can answer a prompt with a validated pydantic object."""

    def structured(self, prompt: str, schema: type[T], *, system: str | None = None) -> T:
        """Answer `prompt` as an instance of `schema`; raise StructuredOutputError when it cannot.

        The answer is bounded (`token_budget` of the schema) and checked for sense: a looping or cut-off reply
        raises too, so a caller never stores or shows one.
        """
        ...


def token_budget(schema: type[BaseModel] | dict[str, Any]) -> int:
    """Tokens a complete answer to `schema` can need: its strings at their max_length (or a sentence or two), its
    arrays at max_items, the keys and JSON punctuation — the `num_predict` that stops a looping model early
    without cutting off an honest answer."""
    root = schema if isinstance(schema, dict) else schema.model_json_schema()
    defs = root.get("$defs", {})

    def size(node: dict[str, Any], depth: int = 0) -> int:
        if depth > 8:
            return 16
        if "$ref" in node:
            return size(defs.get(node["$ref"].rsplit("/", 1)[-1], {}), depth + 1)
        for key in ("anyOf", "oneOf"):
            if key in node:
                return max(size(n, depth + 1) for n in node[key])
        if "enum" in node or "const" in node:
            values = node.get("enum") or [node.get("const")]
            return 2 + max(len(str(v)) for v in values) // CHARS_PER_TOKEN
        kind = node.get("type")
        if kind == "string":
            return 2 + int(node.get("maxLength", DEFAULT_STRING_CHARS)) // CHARS_PER_TOKEN
        if kind == "array":
            return 2 + int(node.get("maxItems", DEFAULT_ITEMS)) * (1 + size(node.get("items", {}), depth + 1))
        if kind == "object":
            props = node.get("properties", {})
            return 2 + sum(4 + len(k) // CHARS_PER_TOKEN + size(v, depth + 1) for k, v in props.items())
        return 6  # numbers, booleans, null

    return min(MAX_BUDGET, 16 + size(root))
