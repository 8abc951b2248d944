"""Writing a file whole or not at all: `write_atomic(path, write)`.

The run log's summary, the budget's calibration cache and the experiments' padded data set are
each rewritten while other processes may read them, and two processes may write the same file
at once (two experiments started side by side). Each writer writes a temporary file of its own
next to `path` and renames it into place, so a reader sees the old file or the new one, never
a part, and no writer takes another's temporary file. (Snapshots, which must also be synced
and kept in pairs, have their own protocol in solver/state.py.)
"""
import os
import tempfile


def write_atomic(path, write, binary=False):
    """Call `write(f)` on a new temporary file in `path`'s folder (created if missing), opened
    for text or bytes, then rename it to `path`. On any error the temporary file is removed and
    the error raised; `path` is then as it was."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb" if binary else "w") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
