"""Progress bars on stderr, shown only when stderr is a terminal."""

import sys

from tqdm import tqdm


def progress(total=None, unit="it", desc=None, enabled=True):
    return tqdm(total=total, unit=unit, desc=desc, unit_scale=True, leave=False,
                disable=not (enabled and sys.stderr.isatty()), file=sys.stderr)
