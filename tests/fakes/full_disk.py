"""A disk that fills up under a running wizard (a test double: the real disk is fine).

`python -m tests.fakes.full_disk ui …` runs `mtw ui` in which every file opened for writing under MTW_HOME fails with
ENOSPC while the file named by MTW_FULL_DISK_FLAG exists — as when chainlit stores the Tasks panel on a nearly full
disk. SQLite and the wizard's own atomic writes (opened by descriptor) still get their few bytes.
"""

from __future__ import annotations

import builtins
import errno
import os
from pathlib import Path
from typing import Any

FLAG = "MTW_FULL_DISK_FLAG"


def install(home: Path, flag: Path) -> None:
    """Make builtins.open refuse writes under HOME while FLAG exists (before chainlit and aiofiles import it)."""
    real = builtins.open
    home = home.resolve()

    def refusing(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if (isinstance(file, str | os.PathLike) and set(mode) & set("wax+") and flag.exists()
                and Path(file).resolve().is_relative_to(home)):
            raise OSError(errno.ENOSPC, "No space left on device", str(file))
        return real(file, mode, *args, **kwargs)

    builtins.open = refusing


if __name__ == "__main__":
    install(Path(os.environ["MTW_HOME"]), Path(os.environ[FLAG]))
    from mtw.cli import main

    main()
