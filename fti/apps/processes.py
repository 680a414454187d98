"""Process helpers of the applications that watch another process (``--watch PID``)."""

from __future__ import annotations

import os


def alive(pid: int) -> bool:
    """Whether process ``pid`` still exists (one owned by another user counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
