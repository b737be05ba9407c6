"""Writing a file whole: the one place that knows how.

Every output file is written under a temporary name beside its target (same directory, so
the rename is atomic on one file system) and renamed onto the target only when it is
complete. On any exception, KeyboardInterrupt included, the temporary file is removed and
the target is left as it was: a reader sees the old file or the new one, never half of one.

    with atomic_path(path) as tmp:      # for writers that want a path (savefig, np.savez)
        fig.savefig(tmp, format="png")

    with atomic_open(path, "w") as f:   # for writers that want a file object
        f.write(text)
"""

from __future__ import annotations

import itertools
import os
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator

from .errors import OptionError

_counter = itertools.count()


def output_path(path) -> Path:
    """path, whose directory must exist already (OptionError saying so otherwise)."""
    path = Path(path)
    if not path.parent.is_dir():
        raise OptionError(f"directory {path.parent} does not exist; create it first")
    return path


@contextmanager
def atomic_path(path) -> Iterator[Path]:
    """Yield a temporary path beside `path` (not yet created) for the caller to write; on a
    clean exit rename it onto `path`, on an exception remove it."""
    path = Path(path)
    # A hidden name that no other writer (process or thread) uses now.
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{threading.get_ident()}-"
                         f"{next(_counter)}")
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"nothing was written to {tmp} for {path}")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextmanager
def atomic_open(path, mode: str = "w", *, fsync: bool = False, **open_kwargs) -> Iterator[IO]:
    """open() a temporary file beside `path` for writing; renamed onto `path` when the block
    ends cleanly (flushed and fsynced first if asked), removed when it raises."""
    if not any(c in mode for c in "wx"):
        raise ValueError(f"atomic_open writes a new file; mode {mode!r} does not")
    with atomic_path(path) as tmp:
        with open(tmp, mode, **open_kwargs) as f:
            yield f
            if fsync:
                f.flush()
                os.fsync(f.fileno())
