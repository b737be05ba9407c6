"""Every notebook runs from top to bottom (with small inputs)."""

from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
MOVIELENS = NOTEBOOKS.parents[1] / "shared/data/movielens-100k/ml-100k.inter"


@pytest.mark.parametrize("name", sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")))
def test_notebook_runs(name, tmp_path, monkeypatch):
    if name.startswith("03") and not MOVIELENS.is_file():
        pytest.skip(f"{MOVIELENS} is not here")
    # The kernel inherits the environment: small inputs, output in the test's directory.
    monkeypatch.setenv("SCRATCHSIM_NOTEBOOK_SMALL", "1")
    monkeypatch.setenv("SCRATCHSIM_NOTEBOOK_OUT", str(tmp_path))
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbclient.NotebookClient(nb, timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
