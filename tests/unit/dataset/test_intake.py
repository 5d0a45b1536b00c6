"""Taking an upload in: refused in words when it cannot hold examples, its own version, joined when it adds."""

from __future__ import annotations

import json

import pytest

from tests.unit.dataset.conftest import story
from tools.dataset.intake import UploadRefused, take_upload
from tools.dataset.store import DatasetStore
from tools.errors import UsageError


def _write(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r.model_dump(exclude_none=True)) + "\n" for r in rows))
    return path


@pytest.mark.parametrize(("data", "words"), [
    (b"", "**e.jsonl** is empty (0 bytes). Attach the file that has your examples in it."),
    (b"\x89PNG\r\n\x1a\n" + b"\0" * 32, "**e.jsonl** looks like an image or a PDF, not a file of examples."),
    (b"%PDF-1.7\n", "**e.jsonl** looks like an image or a PDF"),
    (b"RIFF\x10\0\0\0WAVEfmt ", "**e.jsonl** looks like an image or a PDF"),
])
def test_a_file_that_cannot_hold_examples_is_refused_and_nothing_is_kept(tmp_path, data, words):
    path = tmp_path / "e.jsonl"
    path.write_bytes(data)
    with pytest.raises(UploadRefused) as refused:
        take_upload("p", path, "e.jsonl")
    assert refused.value.words("**e.jsonl**").startswith(words)
    assert "**" not in refused.value.message  # the plain sentence, for anything but the chat
    assert DatasetStore("p").versions() == []


def test_a_dataset_of_an_unknown_type_is_refused_by_its_name(tmp_path):
    path = _write(tmp_path / "rows.parquet", [story(1)])
    with pytest.raises(UsageError, match="'rows.parquet' is not a dataset file"):
        take_upload("p", path, "rows.parquet")


def test_an_upload_is_its_own_version_and_one_that_adds_joins_the_dataset(tmp_path):
    first = _write(tmp_path / "a" / "mine.jsonl", [story(i) for i in range(12)])
    more = _write(tmp_path / "b" / "mine.jsonl", [story(i) for i in range(8, 16)])
    own = take_upload("p", first, "mine.jsonl")
    assert own.added is None
    assert own.version == own.upload
    assert own.version.path.read_bytes() == first.read_bytes()
    joined = take_upload("p", more, "mine.jsonl", "add", own.version.path)
    assert (joined.added, joined.already) == (4, 4)
    assert joined.upload.path.read_bytes() == more.read_bytes()  # same name, kept as sent
    assert joined.version.examples == 16
    again = take_upload("p", more, "mine.jsonl", "add", joined.version.path)
    assert (again.added, again.already) == (0, 8)
    assert DatasetStore("p").current() == again.version


def test_an_upload_after_drafting_joins_the_drafts_even_when_it_does_not_say_add(tmp_path):
    store = DatasetStore("p")
    store.add(story(100))
    taken = take_upload("p", _write(tmp_path / "mine.jsonl", [story(i) for i in range(3)]), "mine.jsonl")
    assert (taken.added, taken.already) == (3, 0)
    assert taken.version.examples == 4
