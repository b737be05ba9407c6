"""gpu-only: every table on the training device; gather, train and scatter the updated rows
there. The reference the other modes must match bit for bit."""

from .base import Trainer


class GpuOnly(Trainer):
    name = "gpu-only"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.table = self.initial_table.to(self.device)

    def iteration(self, i):
        batch = self.batches[i]
        with self.timer.stage("train", i):
            self.train_rows(self.table, batch.rows_cpu.to(self.device), batch, i)

    def host_table(self):
        return self.table
