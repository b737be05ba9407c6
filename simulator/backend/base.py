"""What every training mode of the backend shares: the batches, the DLRM-like model, the one
training step, the embedding update and the timers.

Exactness is the point of the backend: every mode gathers a batch's unique rows (in
first-occurrence order) into one dense [unique, width] tensor wherever they live, and hands
it to the same train_step, which pools with the same op on local indices, computes the row
gradients with the same op and updates with the same arithmetic. The modes differ only in
where the rows come from and where the updated rows go, so after N iterations every mode's
weights are bitwise equal to gpu-only's: the proof that no stale row was ever read.

An embedding row is stored with its optimizer state: width = largest dim + state columns
(sgd: none; rowwise-adagrad: one accumulator, FBGEMM's exact row-wise Adagrad; adagrad: one
accumulator per element, torch.optim.Adagrad's arithmetic; adam: two moments per element,
torch.optim.Adam's arithmetic), so a row and its state move together between host and device.
Tables narrower than the widest keep zeros in their padding columns, which no gradient ever
touches.

Adam's bias correction takes the iteration number, not a count per row: a row is updated only
by the batches that look it up (lazily, as FBGEMM's ADAM for TBE, whose kernel reads one `iter`
that the module counts up once per forward), so its moments have decayed once per batch that
used it while 1 - beta^t counts every batch trained so far. A row that every batch looks up
takes torch.optim.Adam's steps bit for bit; one that some batches skip does not (its step t
is larger than the gradients its moments have seen), as in FBGEMM and torch.optim.SparseAdam.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field

import numpy as np

from ..errors import OptionError
from ..workload.model import OPTIMIZER_STATE, state_values

# The embedding rows' optimizers are the model's (OPTIMIZER_STATE); the MLPs take
# torch.optim.SGD, torch.optim.Adagrad with either Adagrad, or torch.optim.Adam.
DEVICES = ("cpu", "cuda")
ADAGRAD_EPS = 1e-8
# torch.optim.Adam's defaults (FBGEMM's ADAM takes the same), for the rows and the MLPs alike;
# no weight decay, no amsgrad.
ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8
# A row's recency key: (batch << POSITION_BITS) | position of its first occurrence in the
# batch, the order in which both LRU and the scratchpad's FIFO age rows of one batch.
POSITION_BITS = 32


def import_torch():
    """torch is optional for the rest of the package: only the backend needs it."""
    try:
        import torch
    except ImportError:
        raise OptionError("the backend needs PyTorch: pip install torch") from None
    return torch


torch = import_torch()
nn = torch.nn
F = torch.nn.functional


def check_device(device: str) -> None:
    if device not in DEVICES:
        raise OptionError(f"device {device!r}: choose one of {', '.join(DEVICES)}")
    if device == "cuda" and not torch.cuda.is_available():
        raise OptionError("no CUDA device is available to this PyTorch; use --device cpu")


@dataclass(frozen=True)
class TrainConfig:
    """Options of one training run (see train() in backend/__init__.py)."""

    mode: str
    device: str = "cpu"
    iterations: int | None = None  # None: every batch of the trace
    capacity: int | None = None  # rows of the device cache or scratchpad
    options: dict = field(default_factory=dict)  # the mode's (pipeline Mode.options)
    optimizer: str = "sgd"
    lr: float = 0.05
    seed: int = 0
    overlap: bool = False  # scratchpipe, cache-prefetch: transfers beside training


# -- batches ------------------------------------------------------------------------------------
@dataclass
class Batch:
    """One mini-batch, prepared once on the host and shared by every mode.

    rows: its unique global row ids in first-occurrence order (numpy int64 and a CPU tensor);
    local: every lookup as a position in rows; offsets: the first lookup of each (sample,
    table) bag, sample-major; row_dims: the embedding dim of each unique row's table."""

    index: int
    rows: np.ndarray
    rows_cpu: "torch.Tensor"
    local: "torch.Tensor"
    offsets: "torch.Tensor"
    row_dims: "torch.Tensor"
    dense: "torch.Tensor"
    labels: "torch.Tensor"
    samples: int


def unique_first_occurrence(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(unique ids in first-occurrence order, position of each id in them)."""
    uniq, first, inverse = np.unique(ids, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return uniq[order], rank[inverse]


def prepare_batches(trace, iterations: int, dims: np.ndarray, dense_features: int,
                    seed: int) -> list[Batch]:
    """The first `iterations` batches. Labels and dense features come from the trace when it
    has them, else from a generator seeded by (seed, batch), so every mode sees the same."""
    dim_of_table = dims.astype(np.float32)
    batches = []
    for b in range(iterations):
        chunk = trace.batch(b, labels=True)
        rows, local = unique_first_occurrence(chunk.ids)
        lengths = chunk.lengths.astype(np.int64).ravel()
        offsets = np.concatenate(([0], np.cumsum(lengths)[:-1])).astype(np.int64)
        samples = chunk.lengths.shape[0]
        rng = np.random.default_rng([seed, b])
        if chunk.dense is not None:
            # Criteo's counts span orders of magnitude: log1p as in facebookresearch/dlrm.
            dense = np.log1p(np.maximum(np.asarray(chunk.dense, dtype=np.float32), 0))
        else:
            dense = rng.standard_normal((samples, dense_features), dtype=np.float32)
        labels = (np.asarray(chunk.labels, dtype=np.float32) if chunk.labels is not None
                  else (rng.random(samples) < 0.5).astype(np.float32))
        batches.append(Batch(
            index=b, rows=rows, rows_cpu=torch.from_numpy(rows),
            local=torch.from_numpy(local.astype(np.int64)), offsets=torch.from_numpy(offsets),
            row_dims=torch.from_numpy(dim_of_table[trace.table_of(rows)]),
            dense=torch.from_numpy(np.ascontiguousarray(dense)),
            labels=torch.from_numpy(labels), samples=samples))
    return batches


# -- the model ----------------------------------------------------------------------------------
def mlp(widths, relu_last: bool) -> "nn.Sequential":
    layers = []
    for k, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(nn.Linear(a, b))
        if relu_last or k < len(widths) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class LowRankCrossNet(nn.Module):
    """DCNv2's low-rank cross layers, as TorchRec's LowRankCrossNet (its DLRM_DCN's
    interaction): x_{l+1} = x0 * (W_l (V_l x_l) + b_l) + x_l, with V_l [rank, width] and
    W_l [width, rank] without bias, xavier-normal, and the bias b_l [width] zero, drawn in
    TorchRec's order (every W, then every V)."""

    def __init__(self, width: int, layers: int, rank: int):
        super().__init__()
        self.W_kernels = nn.ParameterList(
            [nn.Parameter(nn.init.xavier_normal_(torch.empty(width, rank)))
             for _ in range(layers)])
        self.V_kernels = nn.ParameterList(
            [nn.Parameter(nn.init.xavier_normal_(torch.empty(rank, width)))
             for _ in range(layers)])
        self.bias = nn.ParameterList(
            [nn.Parameter(torch.zeros(width)) for _ in range(layers)])

    def forward(self, x0):
        x = x0
        for w, v, b in zip(self.W_kernels, self.V_kernels, self.bias):
            x = x0 * (F.linear(F.linear(x, v), w) + b) + x
        return x


class DenseModel(nn.Module):
    """The MLPs and the interaction of DLRM; the embeddings live outside, in each mode's
    store. Dot interaction: the pairwise dot products (without self-interaction) of the
    bottom output and the pooled embeddings, with the bottom output; cat: concatenation;
    dcn: the bottom output and the pooled embeddings concatenated through the low-rank cross
    layers (LowRankCrossNet)."""

    def __init__(self, model, dims: np.ndarray, dense_features: int):
        super().__init__()
        self.dims = [int(d) for d in dims]
        self.interaction = model.interaction
        bottom = (dense_features,) + tuple(model.bottom_mlp[1:])
        n = len(self.dims) + 1
        top_in = (bottom[-1] + n * (n - 1) // 2 if self.interaction == "dot"
                  else bottom[-1] + sum(self.dims))
        self.bottom = mlp(bottom, relu_last=True)
        if self.interaction == "dcn":
            self.cross = LowRankCrossNet(top_in, model.dcn_layers, model.dcn_rank)
        self.top = mlp((top_in,) + tuple(model.top_mlp), relu_last=False)
        rows, cols = torch.tril_indices(n, n, offset=-1)
        self.register_buffer("pairs", rows * n + cols, persistent=False)

    def forward(self, dense, pooled):
        """pooled: [samples, tables, largest dim]; returns one logit per sample."""
        x = self.bottom(dense)
        if self.interaction == "dot":
            features = torch.cat([x.unsqueeze(1), pooled], dim=1)
            products = torch.bmm(features, features.transpose(1, 2)).flatten(1)
            z = torch.cat([x, products[:, self.pairs]], dim=1)
        elif self.interaction == "dcn":
            z = self.cross(torch.cat([x.unsqueeze(1), pooled], dim=1).flatten(1))
        else:
            z = torch.cat([x] + [pooled[:, t, :d] for t, d in enumerate(self.dims)], dim=1)
        return self.top(z).squeeze(1)


def update_rows(rows, grad, row_dims, optimizer: str, lr: float, dim: int, step: int = 1):
    """The optimizer step for a batch's rows: rows [unique, width] holding the embedding in
    columns :dim (zero padded) and the optimizer state after it: rowwise-adagrad's
    accumulator (the mean squared gradient of the row summed) in column dim, adagrad's
    per-element squared-gradient sums in columns dim:2*dim (torch.optim.Adagrad's steps),
    adam's first moment (exp_avg) in columns dim:2*dim and second (exp_avg_sq) in 2*dim:3*dim.
    step: the iteration number, from 1, which adam's bias correction takes for every row (see
    the module docstring)."""
    new = rows.clone()
    if optimizer == "sgd":
        new[:, :dim] = rows[:, :dim] - lr * grad
    elif optimizer == "rowwise-adagrad":
        state = rows[:, dim] + (grad * grad).sum(dim=1) / row_dims
        new[:, dim] = state
        new[:, :dim] = rows[:, :dim] - lr * grad / (state.sqrt() + ADAGRAD_EPS).unsqueeze(1)
    elif optimizer == "adagrad":  # torch.optim.Adagrad's own ops: its steps bit for bit
        state = torch.addcmul(rows[:, dim:], grad, grad)
        new[:, dim:] = state
        new[:, :dim] = torch.addcdiv(rows[:, :dim], grad, state.sqrt().add_(ADAGRAD_EPS),
                                     value=-lr)
    else:  # adam: torch.optim.Adam's own ops (single tensor), in place on the clone's columns
        beta1, beta2 = ADAM_BETAS
        exp_avg, exp_avg_sq = new[:, dim:2 * dim], new[:, 2 * dim:]
        exp_avg.lerp_(grad, 1 - beta1)
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        step_size = lr / (1 - beta1 ** step)
        denom = (exp_avg_sq.sqrt() / (1 - beta2 ** step) ** 0.5).add_(ADAM_EPS)
        new[:, :dim].addcdiv_(exp_avg, denom, value=-step_size)
    return new


# -- timing -------------------------------------------------------------------------------------
class StageTimer:
    """Per-iteration time of each stage: perf_counter for host work and on the CPU; on CUDA,
    device work is timed by events recorded on the current stream and read once at the end
    (reading them earlier would synchronize). Safe to use from the host worker thread."""

    def __init__(self, device, iterations: int):
        self.cuda = device.type == "cuda"
        self.iterations = iterations
        self._spans: dict[str, list] = {}

    def _now(self, host: bool):
        if self.cuda and not host:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            return event
        return time.perf_counter()

    @contextmanager
    def stage(self, name: str, iteration: int, host: bool = False):
        start = self._now(host)
        yield
        self._spans.setdefault(name, []).append((iteration, start, self._now(host)))

    def seconds(self) -> dict[str, np.ndarray]:
        if self.cuda:
            torch.cuda.synchronize()
        out = {}
        for name, spans in self._spans.items():
            column = np.zeros(self.iterations)
            for i, start, end in spans:
                column[i] += (end - start if isinstance(start, float)
                              else start.elapsed_time(end) / 1e3)
            out[name] = column
        return out


# -- the trainer --------------------------------------------------------------------------------
@dataclass
class TrainResult:
    """What a run measured: per-iteration time and loss, per-stage times, and per batch the
    rows fetched into and evicted from the device (cache modes)."""

    mode: str
    device: str
    config: dict
    iteration_seconds: np.ndarray
    stage_seconds: dict[str, np.ndarray]
    losses: np.ndarray
    fetched: np.ndarray
    evicted: np.ndarray
    weights: dict[str, np.ndarray] = field(repr=False)

    def to_dict(self) -> dict:
        steady = self.iteration_seconds[min(len(self.iteration_seconds) - 1, 2):]
        return {"mode": self.mode, "device": self.device, "config": self.config,
                "iterations": len(self.iteration_seconds),
                "mean_iteration_s": float(steady.mean()),
                "stage_mean_s": {k: float(v[min(len(v) - 1, 2):].mean())
                                 for k, v in self.stage_seconds.items()},
                "final_loss": float(self.losses[-1]),
                "rows_fetched": int(self.fetched.sum()), "rows_evicted": int(self.evicted.sum()),
                "per_iteration": {"seconds": self.iteration_seconds.tolist(),
                                  "loss": self.losses.tolist(), "fetched": self.fetched.tolist(),
                                  "evicted": self.evicted.tolist(),
                                  **{f"{k}_seconds": v.tolist()
                                     for k, v in self.stage_seconds.items()}}}

    def format(self) -> str:
        d = self.to_dict()
        lines = [f"{self.mode} on {self.device}: {d['iterations']} iterations, "
                 f"{d['mean_iteration_s'] * 1e3:.3f} ms per iteration (after 2 warm-up), "
                 f"final loss {d['final_loss']:.4f}",
                 f"rows fetched {d['rows_fetched']:,}, evicted {d['rows_evicted']:,}"]
        lines += [f"  {name:<10} {seconds * 1e3:10.3f} ms" for name, seconds
                  in d["stage_mean_s"].items()]
        return "\n".join(lines)


class Trainer(ABC):
    """One training mode. A subclass keeps the embedding rows somewhere and implements
    iteration(i): bring batch i's rows together, call train_step, put the new rows back;
    host_table() returns every row, up to date, at the end."""

    name: str = ""

    def __init__(self, config: TrainConfig, trace, model, batches: list[Batch],
                 dims: np.ndarray, dense_features: int):
        if config.optimizer not in OPTIMIZER_STATE:
            raise OptionError(f"optimizer {config.optimizer!r}: choose one of "
                              f"{', '.join(OPTIMIZER_STATE)}")
        self.config = config
        self.trace = trace
        self.batches = batches
        self.dims = dims
        self.dim = int(dims.max())
        self.width = self.dim + state_values(config.optimizer, self.dim)
        self.device = torch.device(config.device)
        self.timer = StageTimer(self.device, len(batches))
        self.fetched = np.zeros(len(batches), dtype=np.int64)
        self.evicted = np.zeros(len(batches), dtype=np.int64)
        self.losses = np.zeros(len(batches))
        torch.manual_seed(config.seed)
        # bf16 MLPs train under torch.autocast, as pipeline/ops.py's train_step lists them (bf16
        # needs no loss scaler); fp16's GradScaler is not run here, so fp16 MLPs train in fp32.
        self.autocast = model.mlp_precision == "bf16"
        self.dense_model = DenseModel(model, dims, dense_features).to(self.device)
        params, lr = self.dense_model.parameters(), config.lr
        if config.optimizer == "sgd":
            self.dense_optimizer = torch.optim.SGD(params, lr=lr)
        elif config.optimizer == "adam":
            self.dense_optimizer = torch.optim.Adam(params, lr=lr, betas=ADAM_BETAS,
                                                    eps=ADAM_EPS)
        else:  # either Adagrad: the MLPs' parameters are dense, per element
            self.dense_optimizer = torch.optim.Adagrad(params, lr=lr)
        self.initial_table = initial_table(trace, dims, self.width, config.seed)

    @abstractmethod
    def iteration(self, i: int) -> None:
        """Train batch i."""

    @abstractmethod
    def host_table(self):
        """Every row with its latest value, as one [rows, width] host tensor."""

    def close(self) -> None:
        """Release what the mode started (threads, streams)."""

    def train_step(self, rows, batch: Batch, i: int):
        """Forward, backward and update for one batch whose unique rows are `rows` (on any
        device: the pooling runs where the rows are, the MLPs on the training device), under
        bf16 autocast when the model's MLPs are bf16. Returns the updated rows, where `rows`
        were."""
        emb = rows[:, :self.dim].detach().requires_grad_()
        where = rows.device
        with (torch.autocast(self.device.type, dtype=torch.bfloat16) if self.autocast
              else nullcontext()):  # the forward and the loss, as torch.autocast's docs run it
            pooled = F.embedding_bag(batch.local.to(where), emb, batch.offsets.to(where),
                                     mode="sum")
            pooled = pooled.view(batch.samples, len(self.dims), self.dim).to(self.device)
            logits = self.dense_model(batch.dense.to(self.device), pooled)
            loss = F.binary_cross_entropy_with_logits(logits, batch.labels.to(self.device))
        self.dense_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.dense_optimizer.step()
        self.losses[i] = loss.item()
        return update_rows(rows, emb.grad, batch.row_dims.to(where), self.config.optimizer,
                           self.config.lr, self.dim, step=i + 1)

    def train_rows(self, store, index, batch: Batch, i: int) -> None:
        """Gather the batch's rows from `store` at `index`, train on them and scatter them
        back: one index_select and one index_copy_ (advanced indexing, store[index], runs
        several times slower on the CPU)."""
        store.index_copy_(0, index, self.train_step(torch.index_select(store, 0, index),
                                                    batch, i))

    def run(self) -> TrainResult:
        try:
            for i in range(len(self.batches)):
                with self.timer.stage("iteration", i):
                    self.iteration(i)
            weights = self.weights()
        finally:
            self.close()
        stages = self.timer.seconds()
        return TrainResult(self.name, str(self.device), self.describe(),
                           stages.pop("iteration"), stages, self.losses, self.fetched,
                           self.evicted, weights)

    def describe(self) -> dict:
        c = self.config
        return {"mode": self.name, "device": c.device, "iterations": len(self.batches),
                "optimizer": c.optimizer, "lr": c.lr, "seed": c.seed}

    def weights(self) -> dict[str, np.ndarray]:
        """Every weight under a stable name: table.<i> (and table.<i>.state: [rows] for
        rowwise-adagrad, [rows, dim_i] for adagrad, [rows, 2, dim_i] for adam: exp_avg then
        exp_avg_sq, torch.optim.Adam's names), bottom.<layer>.weight/bias,
        top.<layer>.weight/bias (layer: index in the MLP) and for dcn
        cross.W_kernels/V_kernels/bias.<layer>."""
        table = self.host_table().cpu().numpy()
        out = {}
        for t, tab in enumerate(self.trace.tables):
            block = table[tab.offset:tab.offset + tab.rows]
            out[f"table.{t}"] = block[:, :int(self.dims[t])].copy()
            if self.config.optimizer == "rowwise-adagrad":
                out[f"table.{t}.state"] = block[:, self.dim].copy()
            elif self.config.optimizer == "adagrad":
                out[f"table.{t}.state"] = block[:, self.dim:self.dim + int(self.dims[t])].copy()
            elif self.config.optimizer == "adam":
                moments = block[:, self.dim:].reshape(len(block), 2, self.dim)
                out[f"table.{t}.state"] = moments[:, :, :int(self.dims[t])].copy()
        for name, p in self.dense_model.state_dict().items():
            out[name] = p.detach().cpu().numpy().copy()
        return out


def initial_table(trace, dims: np.ndarray, width: int, seed: int):
    """Every row, on the host: table t uniform in +-sqrt(1/rows) as facebookresearch/dlrm,
    padding and optimizer state zero."""
    table = torch.zeros(trace.total_rows, width)
    generator = torch.Generator().manual_seed(seed)
    for t, tab in enumerate(trace.tables):
        bound = float(np.sqrt(1.0 / tab.rows))
        values = torch.rand(tab.rows, int(dims[t]), generator=generator) * (2 * bound) - bound
        table[tab.offset:tab.offset + tab.rows, :int(dims[t])] = values
    return table
