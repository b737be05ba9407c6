"""Where numba caches the compiled kernels: a folder named after a hash of this package's code.

numba checks a cached kernel against the source file that defines it, not against the files
of the kernels it calls and inlines (caches/base.py's record_batch inside every policy, for
example): after a change to one of those, it would run the old machine code. A cache folder
per version of the whole package makes every change start a fresh cache.
"""

import hashlib
import os
import tempfile
from pathlib import Path

PACKAGE = Path(__file__).parent


def configure() -> None:
    if "NUMBA_CACHE_DIR" in os.environ:  # the user chose
        return
    digest = hashlib.sha1()
    for source in sorted(PACKAGE.rglob("*.py")):
        digest.update(source.read_bytes())
    name = f"numba-{digest.hexdigest()[:16]}"
    folder = PACKAGE / "__pycache__" / name
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:  # an installed package may be read-only
        folder = Path(tempfile.gettempdir()) / "scratchsim" / name
        folder.mkdir(parents=True, exist_ok=True)
    os.environ["NUMBA_CACHE_DIR"] = str(folder)
    import numba  # noqa: E402  (already imported elsewhere: set its live setting too)

    numba.config.CACHE_DIR = str(folder)
