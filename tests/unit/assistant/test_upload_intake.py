"""A dataset sent in the chat: taken in once, parsed once, and the chat's copy found by its version, not searched."""

import json
from pathlib import Path

from tests.unit.assistant.helpers import ScriptedLLM, Session
from tests.unit.assistant.test_conversation import to_data_choice


def _rows(start: int, n: int = 12) -> str:
    return "".join(json.dumps({"messages": [{"role": "user", "content": f"Write user story number {i}"},
                                            {"role": "assistant", "content": f"As a PM I want feature {i} shipped."}]})
                   + "\n" for i in range(start, start + n))


async def test_an_upload_is_parsed_once_from_taking_it_in_to_its_coverage(tmp_path, monkeypatch):
    import tools.dataset.readers as readers

    parses: list[str] = []
    real = readers.iter_records
    monkeypatch.setattr(readers, "iter_records", lambda path, **kw: parses.append(Path(path).name) or real(path, **kw))
    first, more = tmp_path / "a" / "mine.jsonl", tmp_path / "b" / "more.jsonl"
    for path, start in ((first, 0), (more, 100)):
        path.parent.mkdir()
        path.write_text(_rows(start))
    s = Session(ScriptedLLM(ok=False))
    await to_data_choice(s)
    await s.send("upload")
    q = await s.send({"path": str(first), "name": "mine.jsonl"})
    assert any(t.startswith("**12 examples**") for t in s.said)
    assert len(parses) == 1, parses  # checked on the way in; the report and the coverage reuse that reading
    assert q["then"] == "on_checked"
    kept_first = parses.pop()
    await s.click("upload_more")
    await s.send({"path": str(more), "name": "more.jsonl"})
    assert any("Added 12 new examples from **more.jsonl**" in t for t in s.said)
    assert any(t.startswith("**24 examples**") for t in s.said)
    # the new upload once, and the joined version once (a file of its own); the first upload not again
    assert len(set(parses)) == len(parses) == 2, parses
    assert kept_first not in parses


async def test_the_chats_copy_of_an_upload_is_found_without_hashing_the_project(tmp_path, monkeypatch):
    import tools.dataset.intake as intake

    upload = tmp_path / "chat" / "mine.jsonl"
    upload.parent.mkdir()
    upload.write_text(_rows(0))
    s = Session(ScriptedLLM(ok=False))
    await to_data_choice(s)
    await s.send("upload")
    await s.send({"path": str(upload), "name": "mine.jsonl"})
    data_path = Path((await s.state())["data_path"])

    def no_hashing(path: Path) -> str:
        raise AssertionError(f"hashed {path}")

    monkeypatch.setattr(intake, "_digest", no_hashing)
    assert intake.kept_copy("User stories from ideas", upload) == data_path
    assert data_path.read_bytes() == upload.read_bytes()
