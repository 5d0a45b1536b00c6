"""The wizard's choices must not depend on the machine the tests run on."""

from __future__ import annotations

import pytest

from tools.train import recommend


@pytest.fixture(autouse=True)
def two_core_laptop(monkeypatch: pytest.MonkeyPatch) -> None:
    """The base-model recommendation as for a 2-core CPU machine with 24 GB of RAM (no GPU)."""
    monkeypatch.setattr(recommend, "for_this_machine",
                        lambda task="generation": recommend.recommend_base(cuda=False, memory_mb=24 * 1024, cores=2,
                                                                           task=task))
