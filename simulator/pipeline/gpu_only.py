"""gpu-only: every table in HBM; the speed limit. The GPU gathers the batch's rows, trains and
scatters the updated rows back; the only traffic is each batch's inputs (dense features,
labels, row ids), double-buffered."""

from .mode import INPUT_BUFFERS, Mode, issue


class GpuOnly(Mode):
    name = "gpu-only"
    tables_on_device = True

    def stage_ops(self, c):
        return {"input": c.inputs(), "train": c.train_on_rows()}

    def traffic(self, c):
        return c.input_dense_bytes + c.index_bytes, 0 * c.index_bytes

    def programs(self, n):
        return {"h2d": [("input", b) for b in range(n)],
                "cpu": [(issue("train"), b) for b in range(n)],
                "gpu": [("train", b) for b in range(n)]}

    def depends(self, stage, b):
        if stage == "input":
            return (("train", b - INPUT_BUFFERS),)
        return (("input", b),)
