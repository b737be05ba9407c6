"""hybrid: tables in CPU DRAM, MLPs on the GPU. Per iteration, in order: the CPU gathers and
pools every lookup, the pooled vectors go H2D, the GPU runs the MLPs forward and backward,
the gradients of the pooled vectors come back D2H, and the CPU updates every row it used.
The next gather must read the updated rows, so iterations do not overlap."""

from .mode import INPUT_BUFFERS, Mode


class Hybrid(Mode):
    name = "hybrid"

    def stages(self, c):
        return {"input": ("h2d", c.h2d(c.input_dense_bytes)),
                "gather": ("cpu", c.cpu_gather_all()),
                "h2d": ("h2d", c.h2d(c.pooled_bytes)),
                "train": ("gpu", c.train_mlp_only()),
                "d2h": ("d2h", c.d2h(c.pooled_bytes)),
                "update": ("cpu", c.cpu_update_all())}

    def traffic(self, c):
        return c.input_dense_bytes + c.pooled_bytes, c.pooled_bytes

    def programs(self, n):
        return {"cpu": [s for b in range(n) for s in (("gather", b), ("update", b))],
                "h2d": [s for b in range(n) for s in (("input", b), ("h2d", b))],
                "gpu": [("train", b) for b in range(n)],
                "d2h": [("d2h", b) for b in range(n)]}

    def depends(self, stage, b):
        return {"input": (("train", b - INPUT_BUFFERS),),
                "h2d": (("gather", b),),
                "train": (("input", b), ("h2d", b)),
                "d2h": (("train", b),),
                "update": (("d2h", b),)}.get(stage, ())
