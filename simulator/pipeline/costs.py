"""Per-batch work and what it costs: the durations the training modes charge their stages with.

Work per batch b comes from the trace and the replay: samples S, lookups L, distinct rows U,
rows fetched (misses) M and rows evicted E. Prices come from the hardware profile and the
model. A row moved between host and GPU travels with its optimizer state (row_state_bytes),
since both are updated together.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..hardware import HardwareProfile
from ..workload import ModelConfig

INDEX_BYTES = 8      # int64 row ids, as the embedding kernels take them
TAG_BYTES = 16       # one cache or scratchpad probe: the row id and the slot it maps to
FP32_BYTES = 4       # dense features and labels arrive as fp32


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
    """Seconds per batch of every kind of stage, as numpy arrays."""

    def __init__(self, work: BatchWork, hardware: HardwareProfile, model: ModelConfig,
                 num_tables: int):
        self.work, self.hw, self.model = work, hardware, model
        self.num_tables = num_tables
        # One row size for all tables: the mean over tables when their dims differ.
        self.row_bytes = float(np.mean([model.row_bytes(t) for t in range(num_tables)]))
        self.row_state_bytes = float(np.mean([model.row_bytes_with_state(t)
                                              for t in range(num_tables)]))
        dense_features = model.bottom_mlp[0]
        w = work
        self.input_dense_bytes = w.samples * (dense_features + 1) * FP32_BYTES
        self.index_bytes = w.lookups * INDEX_BYTES
        self.pooled_bytes = w.samples * num_tables * self.row_bytes
        self.fetch_bytes = w.misses * self.row_state_bytes
        self.evict_bytes = w.evictions * self.row_state_bytes
        # MLP work scales linearly with the samples of a batch.
        per_sample = model.mlp_flops(1, num_tables)
        self.mlp = hardware.compute_time(w.samples * per_sample, model.mlp_precision)

    # -- GPU ------------------------------------------------------------------------------------
    def train_on_gpu_tables(self) -> np.ndarray:
        """Forward gather of every lookup, MLPs forward and backward, and the update of every
        distinct row (read-modify-write of the row and its optimizer state), all in HBM."""
        w, hw = self.work, self.hw
        return (hw.gpu_gather_time(w.lookups, self.row_bytes) + self.mlp
                + hw.gpu_scatter_time(w.unique, self.row_state_bytes))

    def train_mlp_only(self) -> np.ndarray:
        return self.mlp

    def gpu_probe(self) -> np.ndarray:
        return self.hw.gpu_gather_time(self.work.unique, TAG_BYTES)

    def gpu_evict(self) -> np.ndarray:
        """Gather the victims (rows and state) into a staging buffer for the D2H copy."""
        return self.hw.gpu_gather_time(self.work.evictions, self.row_state_bytes)

    def gpu_insert(self) -> np.ndarray:
        return self.hw.gpu_scatter_time(self.work.misses, self.row_state_bytes)

    # -- CPU ------------------------------------------------------------------------------------
    def cpu_probe(self) -> np.ndarray:
        return self.hw.cpu_gather_time(self.work.unique, TAG_BYTES)

    def cpu_collect(self) -> np.ndarray:
        return self.hw.cpu_gather_time(self.work.misses, self.row_state_bytes)

    def cpu_writeback(self) -> np.ndarray:
        return self.hw.cpu_scatter_time(self.work.evictions, self.row_state_bytes)

    def cpu_gather_all(self) -> np.ndarray:
        """Hybrid: gather and pool every lookup from DRAM."""
        return self.hw.cpu_gather_time(self.work.lookups, self.row_bytes)

    def cpu_update_all(self) -> np.ndarray:
        """Hybrid: apply the optimizer to every distinct row in DRAM."""
        return self.hw.cpu_scatter_time(self.work.unique, self.row_state_bytes)

    # -- links ----------------------------------------------------------------------------------
    def h2d(self, nbytes) -> np.ndarray:
        return self.hw.transfer_time(np.asarray(nbytes, dtype=float), "h2d")

    def d2h(self, nbytes) -> np.ndarray:
        return self.hw.transfer_time(np.asarray(nbytes, dtype=float), "d2h")
