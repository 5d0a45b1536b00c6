"""The wizard's state in sub-states: an update changes only the fields it names, and a misspelt one is caught."""

from __future__ import annotations

import pytest

from assistant.state import filed, flat, nest
from tests.unit.assistant.helpers import ScriptedLLM, Session


async def test_an_update_of_one_sub_state_field_keeps_the_others():
    s = Session(ScriptedLLM(ok=False))
    await s.graph.aupdate_state(s.cfg, {"train": {"run_dir": "/runs/pm-1", "train_model": "tiny-random"}})
    await s.graph.aupdate_state(s.cfg, {"train": {"events_since": 40}})
    values = (await s.graph.aget_state(s.cfg)).values
    assert values["train"] == {"run_dir": "/runs/pm-1", "train_model": "tiny-random", "events_since": 40}


def test_flat_fields_are_filed_under_their_stage_and_read_back_flat():
    update = nest({"run_dir": "/runs/pm-1", "data_path": "/p/data.jsonl", "train": {"events_since": 4}, "qid": 3})
    assert update == {"train": {"run_dir": "/runs/pm-1", "events_since": 4}, "dataset": {"data_path": "/p/data.jsonl"},
                      "qid": 3}
    assert flat(update) == {"run_dir": "/runs/pm-1", "events_since": 4, "data_path": "/p/data.jsonl", "qid": 3}


def test_an_update_naming_a_field_the_state_lacks_fails_loudly():
    with pytest.raises(KeyError, match="run_folder"):
        filed({"run_folder": "/runs/pm-1"})
