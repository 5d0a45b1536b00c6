"""Versioned storage: edits are journaled, versions are content-addressed and never rewritten, crashes lose nothing."""

from __future__ import annotations

import pytest

from tests.unit.dataset.conftest import story
from tools.dataset.readers import read_dataset
from tools.dataset.store import DatasetStore, content_hash, file_version
from tools.db import connect
from tools.errors import UsageError


def test_add_edit_delete_save_and_reopen():
    store = DatasetStore("PM user stories")
    a, b = store.add(story(1)), store.add(story(2))
    store.edit(a, story(3))
    store.delete(b)
    v1 = store.save("first round")
    assert [ex.messages for ex in store.examples()] == [story(3).messages]
    assert v1.examples == 1 and v1.path.is_file() and not store.dirty
    assert v1.version == content_hash(v1.path.read_text())
    again = DatasetStore("PM user stories")
    assert [ex.messages for ex in again.examples()] == [story(3).messages]
    assert again.head == v1.version and [v.version for v in again.versions()] == [v1.version]


def test_versions_are_named_by_content_and_never_rewritten():
    store = DatasetStore("p")
    store.add(story(1))
    v1 = store.save()
    mtime = v1.path.stat().st_mtime_ns
    same = store.save()  # unchanged content: the same version, the file untouched
    assert same.version == v1.version and v1.path.stat().st_mtime_ns == mtime
    store.add(story(2))
    v2 = store.save()
    assert v2.version != v1.version and len(store.versions()) == 2
    assert len(read_dataset(v2.path).examples) == 2


def test_restore_any_version():
    store = DatasetStore("p")
    store.add(story(1))
    v1 = store.save()
    store.add(story(2))
    store.save()
    rows = store.restore(v1.version[:6])
    assert [ex.messages for ex in rows] == [story(1).messages]
    reopened = DatasetStore("p")
    assert [ex.messages for ex in reopened.examples()] == [story(1).messages] and reopened.head == v1.version
    # after a restore, ids work for edits as usual
    (row_id, _), = reopened.items()
    reopened.edit(row_id, story(5))
    assert reopened.dirty


def test_unsaved_edits_survive_a_crash(mtw_home):
    store = DatasetStore("p")
    store.add(story(1))
    store.save()
    store.add(story(2))  # never saved: the process dies here
    journal = store.journal
    with open(journal, "a") as f:
        f.write('{"op": "add", "id": "x", "exa')  # a line cut off mid-append
    recovered = DatasetStore("p")
    assert len(recovered.examples()) == 2 and recovered.dirty


def test_unknown_ids_and_versions_are_plain_errors():
    store = DatasetStore("p")
    with pytest.raises(UsageError):
        store.delete("nope")
    with pytest.raises(UsageError):
        store.restore("abc")


def test_versions_are_recorded_in_the_workspace_db():
    store = DatasetStore("Comms")
    store.add(story(1))
    v = store.save("note")
    with connect() as db:
        row = db.execute("SELECT * FROM dataset_versions WHERE project = ?", ("comms",)).fetchone()
    assert row["version"] == v.version and row["examples"] == 1 and row["note"] == "note"


def test_file_version_matches_a_saved_version(tmp_path):
    store = DatasetStore("p")
    store.add(story(1))
    store.add(story(2))
    v = store.save()
    copy = tmp_path / "copy.jsonl"
    copy.write_text(v.path.read_text().replace("\n", "\r\n"))
    assert file_version(copy) == v.version
