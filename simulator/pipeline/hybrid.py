"""hybrid: tables in CPU DRAM, MLPs on the GPU. Per iteration, in order: the host gathers the
batch's rows (collect); the train step pools them on the host, sends the pooled vectors H2D,
runs the MLPs forward and backward on the GPU, brings the pooled gradients back D2H and
computes the rows' gradients and updates on the host (train); the host scatters the updated
rows into the tables (writeback). The next gather must read the updated rows, so iterations
do not overlap."""

from .mode import INPUT_BUFFERS, Mode, issue


class Hybrid(Mode):
    name = "hybrid"

    def stage_ops(self, c):
        w = c.work
        return {"input": c.inputs(),
                "collect": [c.gather_rows(w.unique, on_host=True)],
                "train": (c.train_step(rows_on_host=True)
                          + c.copies(c.pooled_bytes, "h2d", pinned=False)
                          + c.copies(c.pooled_bytes, "d2h", pinned=False)),
                "writeback": [c.scatter_rows(w.unique, on_host=True)]}

    def traffic(self, c):
        return c.input_dense_bytes + c.pooled_bytes, c.pooled_bytes

    def programs(self, n):
        return {"cpu": [s for b in range(n)
                        for s in (("collect", b), (issue("train"), b), ("writeback", b))],
                "h2d": [("input", b) for b in range(n)],
                "gpu": [("train", b) for b in range(n)]}

    def depends(self, stage, b):
        return {"input": (("train", b - INPUT_BUFFERS),),
                "train": (("input", b), ("collect", b)),
                "writeback": (("train", b),)}.get(stage, ())
