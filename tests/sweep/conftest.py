import textwrap

import pytest

# A trace small enough that a point takes a fraction of a second.
SMALL_TRACE = """
[trace]
generator = "zipf"
table_rows = [3000, 800, 100]
batch_size = 64
batches = 30
seed = 7
alpha = 1.05
"""


@pytest.fixture
def small_trace():
    return SMALL_TRACE


@pytest.fixture
def write_spec(tmp_path):
    def write(body: str, trace: str = SMALL_TRACE, name: str = "spec.toml"):
        path = tmp_path / name
        path.write_text(textwrap.dedent(trace) + textwrap.dedent(body))
        return path
    return write
