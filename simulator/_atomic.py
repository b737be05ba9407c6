"""Writing a file whole: the one place that knows how.

Every output file is written under a temporary name beside its target (same directory, so
the rename is atomic on one file system) and renamed onto the target only when it is
complete. On any exception, KeyboardInterrupt included, the temporary file is removed and
the target is left as it was: a reader sees the old file or the new one, never half of one.

    with atomic_path(path) as tmp:      # for writers that want a path (savefig, np.savez)
        fig.savefig(tmp, format="png")

    with atomic_open(path, "w") as f:   # for writers that want a file object
        f.write(text)

A directory output (a trace, a validation run) is filled in a hidden temporary directory
beside it (temporary_dir) and moved into place whole by replace_dir, which replaces an
existing directory only when it holds a previous output of the same command.

    with atomic_dir(path, replaceable) as tmp:
        (tmp / "summary.json").write_text(text)
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Callable, Iterator

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


def check_replaceable(dest: Path, replaceable: Callable[[Path], bool]) -> None:
    """OptionError unless dest is absent, an empty directory, or a directory that
    replaceable(dest) says holds a previous output of this command."""
    if dest.exists() and not (dest.is_dir() and (replaceable(dest) or not any(dest.iterdir()))):
        raise OptionError(f"{dest} exists and is not a previous output of this command; "
                          "choose another output path or remove it")


def temporary_dir(dest: Path) -> Path:
    """A new hidden directory beside dest (same file system), for a writer to fill before
    replace_dir moves it into place."""
    return Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))


def replace_dir(tmp: Path, dest: Path, replaceable: Callable[[Path], bool]) -> None:
    """Move the finished directory tmp to dest; an existing dest must pass
    check_replaceable. The old one is renamed aside first, so dest is never half of either."""
    check_replaceable(dest, replaceable)
    if dest.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{dest.name}.old-", dir=dest.parent))
        os.replace(dest, old)  # onto the empty directory just made: same file system
        os.rename(tmp, dest)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(tmp, dest)


@contextmanager
def atomic_dir(dest, replaceable: Callable[[Path], bool]) -> Iterator[Path]:
    """Yield a temporary directory beside dest for the caller to fill; on a clean exit move
    it onto dest (replace_dir), on an exception remove it. dest is checked before the block
    runs, so a refusal comes before the work rather than after it."""
    dest = Path(dest)
    check_replaceable(dest, replaceable)
    tmp = temporary_dir(dest)
    try:
        yield tmp
        replace_dir(tmp, dest, replaceable)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
