"""hybrid: the tables stay in host memory. The host gathers and pools a batch's rows, the
pooled vectors go to the device for the MLPs, their gradients come back, and the host
computes the row gradients and applies the sparse update (autograd carries the pooled
tensor across the devices)."""

from .base import Trainer, torch


class Hybrid(Trainer):
    name = "hybrid"

    def iteration(self, i):
        batch = self.batches[i]
        table = self.initial_table  # updated in place: the host's copy is the only one
        with self.timer.stage("collect", i):
            rows = torch.index_select(table, 0, batch.rows_cpu)
        with self.timer.stage("train", i):
            new_rows = self.train_step(rows, batch, i)
        with self.timer.stage("writeback", i):
            table.index_copy_(0, batch.rows_cpu, new_rows)

    def host_table(self):
        return self.initial_table
