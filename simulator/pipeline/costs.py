"""Per-batch work and what it costs: the ops of each stage (ops.py) priced with the hardware
profile, as the durations the training modes charge their stages with.

Work per batch b comes from the trace and the replay: samples S, lookups L, distinct rows U,
rows fetched (misses) M and rows evicted E. A row moved between host and device travels with
its optimizer state (row_state_bytes), since both are updated together.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..errors import OptionError
from ..hardware import HardwareProfile
from ..workload import ModelConfig
from ..workload.model import state_values
from . import ops
from .ops import FP32_BYTES, INDEX_BYTES, Op


@dataclass
class BatchWork:
    samples: np.ndarray
    lookups: np.ndarray
    unique: np.ndarray
    misses: np.ndarray
    evictions: np.ndarray

    def __len__(self) -> int:
        return len(self.samples)


class StageCosts:
    """The ops of every kind of stage and their seconds per batch, as numpy arrays."""

    def __init__(self, work: BatchWork, hardware: HardwareProfile, model: ModelConfig,
                 num_tables: int):
        self.work, self.hw, self.model = work, hardware, model
        self.num_tables = num_tables
        self.n = len(work)
        tables = range(num_tables)
        row_bytes = [model.row_bytes(t) for t in tables]
        # The backend stores every row padded to the widest table, its optimizer state beside
        # (none, one column, adagrad's one or adam's two per column of the widest table): a
        # moved row weighs the widest table's row and state.
        dim = max(model.dim(t) for t in tables)
        self.shape = ops.StepShape(
            dim=dim, width=dim + state_values(model.optimizer, dim), row_bytes=max(row_bytes),
            tables=num_tables,
            bottom=tuple(model.bottom_mlp), top=(model.top_mlp_input(num_tables),)
            + tuple(model.top_mlp), interaction=model.interaction, optimizer=model.optimizer,
            dcn_layers=model.dcn_layers or 0, dcn_rank=model.dcn_rank or 0,
            precision=model.mlp_precision, embedding_dtype=model.dtype)
        self.row_bytes = float(np.mean(row_bytes))
        self.row_state_bytes = float(max(model.row_bytes_with_state(t) for t in tables))
        w = work
        self.input_dense_bytes = w.samples * (model.bottom_mlp[0] + 1) * FP32_BYTES
        self.index_bytes = w.lookups * INDEX_BYTES
        self.pooled_bytes = w.samples * num_tables * self.row_bytes
        self.fetch_bytes = w.misses * self.row_state_bytes
        self.evict_bytes = w.evictions * self.row_state_bytes
        self.prices = ops.Costs(hardware, model.mlp_precision)
        if model.dense_step == "cuda-graph" and hardware.kind == "cpu":
            # No graphs on the CPU: refused rather than ignored, so no figure claims them.
            raise OptionError(f"model {model.name} issues its dense step as a CUDA graph but "
                              f"hardware {hardware.name} is kind cpu, which has none; set "
                              "dense_step = \"eager\" or choose a cuda profile")

    def time(self, stage_ops: list[Op]) -> np.ndarray:
        return self.prices.stage(stage_ops, self.n)

    # -- op lists the modes compose -------------------------------------------------------------
    def train_step(self, rows_on_host: bool = False) -> list[Op]:
        w = self.work
        step = ops.train_step(self.shape, w.samples, w.lookups, w.unique)
        if rows_on_host:
            step = ops.on_host(step, ops.ROW_OPS)
        if self.model.dense_step == "cuda-graph":
            step = ops.graph_dense(step)
        return step

    def train_on_rows(self) -> list[Op]:
        """backend Trainer.train_rows: the rows' ids (or slots) copied in, the batch's rows
        gathered, the train step, the updated rows scattered back."""
        w = self.work
        return (self.copies(w.unique * INDEX_BYTES, "h2d", pinned=False)
                + [self.gather_rows(w.unique), *self.train_step(), self.scatter_rows(w.unique)])

    def gather_rows(self, rows, on_host: bool = False, count=1) -> Op:
        """Rows (with their state) gathered by an index op, on the device or by the host."""
        op = ops.gather("index_select", rows, self.row_state_bytes, count)
        return replace(op, kind="host_gather") if on_host else op

    def scatter_rows(self, rows, on_host: bool = False, count=1) -> Op:
        op = ops.scatter("index_copy_", rows, self.row_state_bytes, count)
        return replace(op, kind="host_scatter") if on_host else op

    def copies(self, nbytes, direction: str, pinned: bool = True, count=1) -> list[Op]:
        """A copy between host and device (`.to(device)`): none on kind cpu, where the
        "device" is the host and `.to` returns the tensor itself, dispatching nothing."""
        if self.hw.kind == "cpu":
            return []
        return [Op("_to_copy", "copy", count, nbytes=nbytes, direction=direction,
                   pinned=pinned)]

    def inputs(self) -> list[Op]:
        """The batch's dense features, labels, lookup positions and bag offsets copied to the
        device, one `.to` each."""
        w = self.work
        return [op for nbytes in (w.samples * self.model.bottom_mlp[0] * FP32_BYTES,
                                  w.samples * FP32_BYTES, self.index_bytes,
                                  w.samples * self.num_tables * INDEX_BYTES)
                for op in self.copies(nbytes, "h2d", pinned=False)]

    def plan(self) -> Op:
        """The host planner (backend/planner.py): probe and touch the batch's distinct rows,
        choose a victim for each miss and remap it to its slot."""
        return Op("plan", "plan", rows=self.work.unique + self.work.misses)

    def any(self, rows) -> np.ndarray:
        """1 for the batches where rows > 0: ops that run only when there is work."""
        return (np.asarray(rows) > 0).astype(np.int64)
