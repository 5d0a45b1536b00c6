"""Files attached to chat messages (charts, uploads) are kept in MTW_HOME so a reopened chat shows them."""

from __future__ import annotations

import pytest

from assistant.chat_store import FILES_ROUTE, LocalFiles, files_dir, stored_file


async def test_a_stored_file_comes_back_under_its_key_and_can_be_deleted():
    files = LocalFiles()
    key = "user-1/1b4e28ba-2fa1-11d2-883f-0016d3cca427/loss chart"
    stored = await files.upload_file(key, '{"data": []}', mime="application/json")
    url = f"{FILES_ROUTE}/user-1/1b4e28ba-2fa1-11d2-883f-0016d3cca427/loss%20chart"
    assert stored == {"object_key": key, "url": url}
    assert await files.get_read_url(key) == stored["url"]
    path = stored_file(key)
    assert path is not None
    assert path.read_text() == '{"data": []}'
    assert path.is_relative_to(files_dir())
    await files.upload_file(key, b"\x89PNG", overwrite=False)  # an existing file is kept when asked
    assert path.read_text() == '{"data": []}'
    assert await files.delete_file(key)
    assert stored_file(key) is None
    assert not await files.delete_file(key)


@pytest.mark.parametrize("key", ["../chat.db", "user/../../auth_secret", "/etc/passwd", "u/e/..", "u/e/../../x.jsonl",
                                 "u/e/a\x00b.jsonl"])
async def test_keys_cannot_reach_outside_the_files_folder(key):
    files_dir().mkdir(parents=True, exist_ok=True)
    (files_dir().parent / "auth_secret").write_text("secret")
    assert stored_file(key) is None
    stored = await LocalFiles().upload_file(key, b"x")
    path = stored_file(stored["object_key"])
    assert path is not None
    assert path.is_relative_to(files_dir())
    assert path.read_bytes() == b"x"
    assert (files_dir().parent / "auth_secret").read_text() == "secret"
    assert all(p.is_dir() for p in files_dir().rglob("*") if p != path)  # no file where a folder belongs


async def test_a_file_named_dot_dot_leaves_the_users_folder_usable():
    files = LocalFiles()
    await files.upload_file("user-1/el-1/..", b"oops")
    later = await files.upload_file("user-1/el-2/chart.json", b"{}")
    assert stored_file(later["object_key"]) is not None
