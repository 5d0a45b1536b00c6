"""The wizard's SQLite checkpointer, which reads conversations saved before the stage sub-states as they are now.

Those checkpoints hold every field flat (`run_dir`, `data_path` … beside `question`); read as they are, the graph
would see only the fields it still has at the top and lose the run, the dataset and the rest. `upgrade` files each
stage field under its sub-state (assistant.state.nest) when a checkpoint is read, so the conversation goes on where
it stopped; the next checkpoint is written in the new shape.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from langgraph.checkpoint.base import CheckpointTuple
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

from assistant.state import STAGE_OF, nest


def upgrade(found: CheckpointTuple | None) -> CheckpointTuple | None:
    """A checkpoint with its flat stage fields (values, versions and pending writes) filed under their sub-states;
    one already in the new shape is returned as it is."""
    if found is None:
        return None
    checkpoint = found.checkpoint
    values = checkpoint.get("channel_values", {})
    writes = list(found.pending_writes or [])
    if not any(key in STAGE_OF for key in values) and not any(channel in STAGE_OF for _, channel, _ in writes):
        return found
    versions = dict(checkpoint.get("channel_versions", {}))
    for key in [key for key in versions if key in STAGE_OF]:
        old = versions.pop(key)
        sub = STAGE_OF[key]
        versions[sub] = max(versions[sub], old) if sub in versions else old
    upgraded: Any = {**checkpoint, "channel_values": nest(values), "channel_versions": versions}
    if checkpoint.get("updated_channels") is not None:
        upgraded["updated_channels"] = sorted({STAGE_OF.get(c, c) for c in checkpoint["updated_channels"] or []})
    # a node that finished before a crash left its writes per field: each becomes a partial update of its sub-state
    pending = [(task, STAGE_OF[channel], {channel: value}) if channel in STAGE_OF else (task, channel, value)
               for task, channel, value in writes]
    return found._replace(checkpoint=upgraded, pending_writes=pending)


class UpgradingSqliteSaver(AsyncSqliteSaver):
    """LangGraph's async SQLite checkpointer, reading checkpoints of older versions in the current state's shape
    (its synchronous reads go through these too)."""

    async def aget_tuple(self, config: Any) -> CheckpointTuple | None:
        """The checkpoint asked for (the newest of the thread by default), upgraded."""
        return upgrade(await super().aget_tuple(config))

    async def alist(self, config: Any, *, filter: dict[str, Any] | None = None, before: Any = None,
                    limit: int | None = None) -> AsyncIterator[CheckpointTuple]:
        """The thread's checkpoints, newest first, each upgraded (the conversation's history)."""
        async for found in super().alist(config, filter=filter, before=before, limit=limit):
            upgraded = upgrade(found)
            assert upgraded is not None
            yield upgraded
