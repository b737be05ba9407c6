import pandas as pd

from simulator.sweep import run_sweep


def test_local_pool_and_dask_give_identical_results(write_spec, tmp_path):
    spec = write_spec("""
        [axes]
        mode = ["hybrid", "scratchpipe"]
        capacity = ["60%"]
        pcie_scale = [0.5, 1.0]
    """)
    (tmp_path / "pool").mkdir()
    (tmp_path / "dask").mkdir()
    pool = run_sweep(spec, tmp_path / "pool" / "r.csv", workers=2, progress=False)
    dask = run_sweep(spec, tmp_path / "dask" / "r.csv", workers=2, dask="local", progress=False)
    assert len(pool) == 4 and pool["error"].isna().all()
    pd.testing.assert_frame_equal(pool, dask)
