import itertools
import json
import threading

import pytest
from pydantic import BaseModel, Field

from assistant.llm import LLM
from tools.errors import (
    LLMCancelled,
    LLMDropped,
    LLMNonsense,
    LLMTimeout,
    ModelNotPulled,
    OllamaUnavailable,
    StructuredOutputError,
)
from tools.llm_protocol import token_budget


class Audience(BaseModel):
    audience: str
    formal: bool


def test_structured_sends_the_schema_and_validates(ollama):
    ollama.enqueue(json.dumps({"audience": "engineers", "formal": True}))
    out = LLM().structured("who reads it?", Audience, system="fill the slots")
    assert out == Audience(audience="engineers", formal=True)
    body = ollama.requests_to("/api/chat")[0].body
    assert body["format"]["properties"].keys() == {"audience", "formal"}
    assert body["messages"][0] == {"role": "system", "content": "fill the slots"}


def test_structured_reasks_once_after_invalid_json(ollama):
    ollama.enqueue("not json at all", json.dumps({"audience": "execs", "formal": False}))
    assert LLM().structured("q", Audience).audience == "execs"
    second = ollama.requests_to("/api/chat")[1].body["messages"]
    assert second[-1]["role"] == "user"
    assert "did not match" in second[-1]["content"]


def test_structured_gives_a_typed_failure_after_two_bad_answers(ollama):
    ollama.enqueue('{"audience": 3}', "{broken")
    with pytest.raises(StructuredOutputError) as exc:
        LLM().structured("q", Audience)
    # the fix is a way on for the user, never an environment variable
    assert "MTW_" not in exc.value.fix
    assert len(ollama.requests_to("/api/chat")) == 2


async def test_server_down_is_one_plain_sentence():
    llm = LLM()
    with pytest.raises(OllamaUnavailable) as exc:
        llm.structured("q", Audience)
    assert "Ollama is not running" in exc.value.message
    assert "ollama serve" in exc.value.fix
    ok, why, missing = await llm.status()
    assert not ok
    assert "ollama serve" in why
    assert not missing


async def test_model_not_pulled_offers_the_pull(ollama):
    ollama.models = ["llama3.2:3b"]
    llm = LLM()
    ok, why, missing = await llm.status()
    assert not ok
    assert "ollama pull phi4-mini" in why
    assert missing
    with pytest.raises(ModelNotPulled):
        llm.structured("q", Audience)
    seen: list[tuple[str, int, int]] = []
    await llm.pull(lambda s, c, t: seen.append((s, c, t)))
    assert seen[-1][0] == "success"
    assert any(t == 100 for _, _, t in seen)
    assert (await llm.status())[0] is True


async def test_connection_dropped_mid_stream_is_plain(ollama):
    ollama.enqueue("one two three four five six")
    ollama.fail_after_chunks = 2
    # reached, then cut off: not the same as "Ollama is not running"
    with pytest.raises(LLMDropped, match="dropped in the middle"):
        LLM().structured("q", Audience)


class Purpose(BaseModel):
    purpose: str = Field(max_length=300)


def test_every_structured_answer_is_bounded_by_its_schema_and_streamed(ollama):
    ollama.enqueue(json.dumps({"purpose": "user stories"}))
    LLM().structured("what is it for?", Purpose)
    body = ollama.requests_to("/api/chat")[0].body
    assert body["stream"] is True
    assert body["options"]["num_predict"] == token_budget(Purpose)
    assert 100 < token_budget(Purpose) < 200
    # the schema sent allows no field beyond its own
    assert body["format"]["additionalProperties"] is False


def test_a_looping_answer_is_stopped_while_it_streams_and_is_not_reasked(ollama):
    ollama.enqueue(json.dumps({"purpose": "stories " * 400}))
    with pytest.raises(LLMNonsense, match="repeating itself") as exc:
        LLM().structured("what is it for?", Purpose)
    assert "MTW_" not in exc.value.fix
    assert len(ollama.requests_to("/api/chat")) == 1


def test_an_answer_cut_off_by_its_budget_is_nonsense_in_plain_words(ollama):
    ollama.enqueue({"content": '{"purpose": "Write user stories for', "done_reason": "length"})
    with pytest.raises(LLMNonsense) as exc:
        LLM().structured("what is it for?", Purpose)
    assert "done_reason" not in str(exc.value)
    assert "length" in exc.value.message


def test_a_slow_answer_gives_up_at_the_time_limit_without_waiting_for_it(ollama):
    ollama.enqueue(json.dumps({"purpose": "user stories for our team, written the way we write them"}))
    ticks = itertools.count(step=100.0)  # every look at the clock is 100 s later: the first piece is already late
    with pytest.raises(LLMTimeout, match="longer than 45 s"):
        LLM(clock=lambda: next(ticks)).structured("what is it for?", Purpose)


def test_a_new_message_cancels_the_answer_being_waited_for(ollama):
    ollama.enqueue(json.dumps({"purpose": "user stories"}))
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(LLMCancelled):
        LLM(cancel=cancel).structured("what is it for?", Purpose)


async def test_the_async_answer_is_bounded_in_time_too(ollama):
    ollama.enqueue(json.dumps({"purpose": "user stories for our team, written the way we write them"}))
    ollama.chunk_delay = 0.5
    llm = LLM(time_limit_s=0.1)
    with pytest.raises(LLMTimeout):
        await llm.astructured("what is it for?", Purpose)
    assert llm.busy == 0
