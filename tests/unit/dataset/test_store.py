"""Versioned storage: edits are journaled, versions are content-addressed and never rewritten, crashes lose nothing."""

from __future__ import annotations

import json

import pytest

from tests.unit.dataset.conftest import story
from tools.dataset.readers import read_dataset
from tools.dataset.store import DatasetStore, content_hash, dataset_hash
from tools.db import connect
from tools.errors import UsageError


def test_add_edit_delete_save_and_reopen():
    store = DatasetStore("PM user stories")
    a, b = store.add(story(1)), store.add(story(2))
    store.edit(a, story(3))
    store.delete(b)
    v1 = store.save("first round")
    assert [ex.messages for ex in store.examples()] == [story(3).messages]
    assert v1.examples == 1
    assert v1.path.is_file()
    assert not store.dirty
    assert v1.version == content_hash(v1.path.read_bytes())
    again = DatasetStore("PM user stories")
    assert [ex.messages for ex in again.examples()] == [story(3).messages]
    assert again.head == v1.version
    assert [v.version for v in again.versions()] == [v1.version]


def test_versions_are_named_by_content_and_never_rewritten():
    store = DatasetStore("p")
    store.add(story(1))
    v1 = store.save()
    mtime = v1.path.stat().st_mtime_ns
    same = store.save()  # unchanged content: the same version, the file untouched
    assert same.version == v1.version
    assert v1.path.stat().st_mtime_ns == mtime
    store.add(story(2))
    v2 = store.save()
    assert v2.version != v1.version
    assert len(store.versions()) == 2
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
    assert [ex.messages for ex in reopened.examples()] == [story(1).messages]
    assert reopened.head == v1.version
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
    assert len(recovered.examples()) == 2
    assert recovered.dirty


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
    assert row["version"] == v.version
    assert row["examples"] == 1
    assert row["note"] == "note"


def test_a_saved_version_is_named_by_the_hash_training_records():
    store = DatasetStore("p")
    store.add(story(1))
    store.add(story(2))
    v = store.save()
    assert dataset_hash(v.path) == v.version


def _upload(folder, name, rows):
    """A file as the chat receives it: a temporary path, and the name the user gave it."""
    path = folder / "upload-tmp"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path, name


def test_uploads_with_the_same_name_keep_both(tmp_path):
    first, name = _upload(tmp_path, "data.jsonl", [{"text": "win a prize now", "label": "spam"}] * 1
                          + [{"text": f"see you at {i}", "label": "ham"} for i in range(12)])
    v1 = DatasetStore("p").import_file(first, name=name)
    second, _ = _upload(tmp_path, "data.jsonl", [{"text": f"lunch at {i}?", "label": "ham"} for i in range(15)])
    # another chat on the same project, the same file name, other rows
    v2 = DatasetStore("p").import_file(second, name=name)
    assert v1.version != v2.version
    assert v1.path.is_file()
    assert v2.path.is_file()
    assert len(read_dataset(v1.path).examples) == 13
    assert len(read_dataset(v2.path).examples) == 15
    reopened = DatasetStore("p")
    assert [v.version for v in reopened.versions()] == [v1.version, v2.version]
    assert reopened.current() == v2
    assert v2.source == "upload:data.jsonl"
    assert v2.examples == 15


def test_an_upload_keeps_its_bytes_and_file_type(tmp_path):
    src = tmp_path / "sms.csv"
    src.write_text("text,label\nhello there,ham\nwin cash,spam\n")
    v = DatasetStore("p").import_file(src)
    assert v.path.suffix == ".csv"
    assert v.path.read_bytes() == src.read_bytes()
    assert v.version == dataset_hash(src)


def test_a_fix_is_a_new_version_and_never_overwrites_an_earlier_one(tmp_path):
    store = DatasetStore("p")
    rows = [{"messages": [{"role": "user", "content": f"story {i % 12}"},
                          {"role": "assistant", "content": f"As a user I want {i % 12}"}]} for i in range(30)]
    src = tmp_path / "up.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    upload = store.import_file(src)
    fixed, result = store.fix(seed=1)
    first_bytes = fixed.path.read_bytes()
    again, _ = store.fix(upload.version, seed=2)  # another cleaning of the same upload: its own version
    assert fixed.version != again.version
    assert fixed.path.read_bytes() == first_bytes
    assert result.train_path == fixed.path
    assert result.validation_path is not None
    assert result.validation_path.is_file()
    assert fixed.source == f"fix:{upload.version}"
    # the version names the training and the validation file together: training reads both
    assert dataset_hash(fixed.path) == fixed.version
    assert store.current() == again
    assert upload.path.read_bytes() == src.read_bytes()


def test_the_check_report_is_cached_by_version(tmp_path, monkeypatch):
    import tools.dataset.checks as checks

    calls = []
    real = checks.check_file
    monkeypatch.setattr(checks, "check_file", lambda *a, **k: calls.append(a) or real(*a, **k))
    src = tmp_path / "up.jsonl"
    src.write_text("".join(json.dumps(story(i).model_dump(exclude_none=True)) + "\n" for i in range(12)))
    store = DatasetStore("p")
    v = store.import_file(src)
    assert store.report().examples == 12
    assert DatasetStore("p").report(v.version).examples == 12
    assert len(calls) == 1
    src.write_text(src.read_text() + json.dumps(story(40).model_dump(exclude_none=True)) + "\n")
    assert store.import_file(src).examples == 13
    assert len(calls) == 2
