"""Modelfile rendering (golden files per family), escaping, and the parser round trip."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit.export.modelfile_reader import parse_modelfile
from tools.errors import UsageError
from tools.export.modelfile import ModelfileSpec, clean_text, render_modelfile
from tools.export.templates import FAMILIES, TEMPLATES, stops_for, template_for

GOLDEN = Path(__file__).with_name("golden")

SYSTEM = 'You write user stories for the "Payments" team.\nUse """As a / I want / So that""" and keep it short.'


def family_spec(family: str) -> ModelfileSpec:
    return ModelfileSpec(
        from_={"phi3": "phi4-mini", "llama3": "llama3.2:1b", "chatml": "./merged", "gemma": "./model.gguf"}[family],
        parameters=[("temperature", 0.7), ("top_p", 0.9), ("num_ctx", 4096)]
        + [("stop", s) for s in stops_for(family)],
        system=SYSTEM,
        template=template_for(family),
        messages=[("user", "Write a user story for password reset."),
                  ("assistant", 'As a user, I want to reset my password so that I can "get back in".')],
        license="Apache-2.0",
    )


@pytest.mark.parametrize("family", FAMILIES)
def test_rendering_matches_the_reviewed_golden_file(family: str) -> None:
    text = render_modelfile(family_spec(family))
    golden = GOLDEN / f"Modelfile.{family}"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(text, encoding="utf-8")
    assert text == golden.read_text(encoding="utf-8")


@pytest.mark.parametrize("family", FAMILIES)
def test_golden_file_reads_back_as_the_same_spec(family: str) -> None:
    spec = family_spec(family)
    back = parse_modelfile((GOLDEN / f"Modelfile.{family}").read_text(encoding="utf-8"))
    assert back.template == spec.template
    assert back.system == clean_text(SYSTEM)
    assert back.parameters == spec.parameters
    assert back.messages == spec.messages
    assert back.license == "Apache-2.0"


@pytest.mark.parametrize("family", FAMILIES)
def test_each_stop_token_gets_its_own_line(family: str) -> None:
    text = render_modelfile(family_spec(family))
    stop_lines = [line for line in text.splitlines() if line.startswith("PARAMETER stop ")]
    assert stop_lines == [f'PARAMETER stop "{s}"' for s in stops_for(family)]


@pytest.mark.parametrize("family", FAMILIES)
def test_templates_are_balanced_go_templates_with_both_branches(family: str) -> None:
    tpl = TEMPLATES[family]
    actions = re.findall(r"\{\{-?\s*(\w+)", tpl)
    opened = sum(a in ("if", "range", "with") for a in actions)
    assert opened == actions.count("end")
    assert ".Messages" in tpl
    assert ".Prompt" in tpl
    assert ".System" in tpl


def test_triple_quotes_in_user_text_cannot_end_the_value_early() -> None:
    spec = ModelfileSpec(from_="phi4-mini", system='Quote like this:\n"""\nthen stop.')
    back = parse_modelfile(render_modelfile(spec))
    assert back.system == "Quote like this:\n'''\nthen stop."
    # written naively, Ollama would end SYSTEM at the inner quotes and choke on the rest
    with pytest.raises(UsageError, match="line 4"):
        parse_modelfile('FROM phi4-mini\nSYSTEM """Quote like this:\n"""\nthen stop."""\n')


def test_unknown_family_and_bad_role_are_explained() -> None:
    with pytest.raises(UsageError, match="mistral"):
        template_for("mistral")
    with pytest.raises(UsageError, match="tool"):
        render_modelfile(ModelfileSpec(from_="x", messages=[("tool", "hi")]))


def test_unclosed_quote_and_missing_from_are_reported() -> None:
    with pytest.raises(UsageError, match="never closed"):
        parse_modelfile('FROM x\nSYSTEM """open\n')
    with pytest.raises(UsageError, match="FROM"):
        parse_modelfile("SYSTEM hi\n")


texts = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=200)


@settings(max_examples=200, deadline=None)
@given(system=texts, user=texts, answer=texts, stop=st.text(alphabet="<|>_abc \"'", min_size=1, max_size=12))
def test_any_text_round_trips_through_render_and_parse(system: str, user: str, answer: str, stop: str) -> None:
    spec = ModelfileSpec(from_="phi4-mini", system=system or None, parameters=[("stop", stop), ("num_ctx", 4096)],
                         messages=[("user", user), ("assistant", answer)])
    back = parse_modelfile(render_modelfile(spec))
    assert back.system == (clean_text(system) if system else None)
    assert back.messages == [("user", clean_text(user)), ("assistant", clean_text(answer))]
    assert back.parameters == [("stop", clean_text(stop)), ("num_ctx", 4096)]


@pytest.mark.parametrize("path", sorted((Path(__file__).parents[3] / "examples").glob("Modelfile.*")), ids=str)
def test_sample_modelfiles_read_back(path: Path) -> None:
    spec = parse_modelfile(path.read_text(encoding="utf-8"))
    assert spec.from_
    assert spec.template in TEMPLATES.values()
    assert any(k == "stop" for k, _ in spec.parameters)
