"""gpu-only: every table in HBM; the speed limit. The GPU gathers, trains and updates; the only
traffic is each batch's inputs (dense features, labels, row ids), double-buffered."""

from .mode import INPUT_BUFFERS, Mode


class GpuOnly(Mode):
    name = "gpu-only"

    def stages(self, c):
        return {"input": ("h2d", c.h2d(c.input_dense_bytes + c.index_bytes)),
                "train": ("gpu", c.train_on_gpu_tables())}

    def traffic(self, c):
        return c.input_dense_bytes + c.index_bytes, 0 * c.index_bytes

    def programs(self, n):
        return {"h2d": [("input", b) for b in range(n)],
                "gpu": [("train", b) for b in range(n)]}

    def depends(self, stage, b):
        if stage == "input":
            return (("train", b - INPUT_BUFFERS),)
        return (("input", b),)
