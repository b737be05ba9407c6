"""What a stage does, op by op: the framework ops (kernels on CUDA, dispatched ops on the CPU)
that the backend runs, each with its work, and what they cost on a hardware profile.

An Op is a group of identical ops of one stage: how many run per batch (an array, since some
run only when a batch has misses or evictions) and the work of each, per batch. Kinds:

    view     no kernel, no work: views, detach, autograd bookkeeping, a scalar read
    stream   an elementwise kernel: bytes read and written
    gemm     a matrix product of shape (m, k, n), `batched` times (bmm): flops and bytes
    gather   a device kernel reading `rows` random rows of `row_bytes` and writing `nbytes`
    scatter  a device kernel writing `rows` rows in place (read-modify-write)
    segment  the embedding backward: its bookkeeping for `rows` lookups (sort the ids, find
             bags and runs), each lookup's gradient row read, and the sum of each run written
             to one of the `distinct` rows
    host_gather, host_scatter   the host's threads moving rows (DRAM, not the device)
    copy     a copy over the host link: `nbytes`, `direction`, `pinned`
    plan     the host planner's numba kernels: not a framework op; `rows` probed or placed,
             priced by HardwareProfile.plan_time

An op costs its dispatch on the host (every op), and on the device its launch (kernels only)
plus the larger of its compute time and its memory time (a roofline). The rules that list a
stage's ops live beside the mode (pipeline/<mode>.py) and the train step's below (train_step);
tests/pipeline/test_op_counts.py counts the backend's real ops per stage against them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from ..hardware import HardwareProfile

FP32_BYTES = 4
INDEX_BYTES = 8      # int64 ids and offsets, as the embedding ops take them
# Kinds that run no device kernel.
HOST_ONLY = ("view", "plan", "host_gather", "host_scatter", "copy")


@dataclass(frozen=True)
class Op:
    name: str                     # the framework op, e.g. "addmm"
    kind: str
    count: object = 1             # ops per batch: a number or an array over batches
    nbytes: object = 0            # stream, gemm, copy: bytes read and written by one op;
                                  # gather, scatter: bytes written densely besides the rows
    flops: object = 0             # gemm
    shape: tuple = (1, 1, 1)      # gemm: (m, k, n) of each product
    rows: object = 0              # gather, scatter, host_*, plan
    row_bytes: float = 0.0
    batched: int = 1              # gemm: products in one batched op (bmm)
    distinct: object = 0          # segment: the rows the lookups sum into
    direction: str = "h2d"        # copy
    pinned: bool = True           # copy
    on_host: bool = False         # a device kind of op run by the host on host memory
    what: str = field(default="", compare=False)  # where in the model, for reading


def view(name: str, count=1, what: str = "") -> Op:
    return Op(name, "view", count, what=what)


def stream(name: str, nbytes, count=1, what: str = "") -> Op:
    return Op(name, "stream", count, nbytes=nbytes, what=what)


def gather(name: str, rows, row_bytes, count=1, what: str = "") -> Op:
    """An index_select: `rows` random rows read and written densely."""
    return Op(name, "gather", count, rows=rows, row_bytes=row_bytes,
              nbytes=np.asarray(rows, float) * row_bytes, what=what)


def scatter(name: str, rows, row_bytes, count=1, what: str = "") -> Op:
    """An index_copy_: `rows` rows read densely and written in place."""
    return replace(gather(name, rows, row_bytes, count, what), kind="scatter")


def gemm(name: str, m, k, n, batched=1, what: str = "") -> Op:
    """One (batched) product of (m x k) by (k x n): its flops and the bytes of its operands."""
    m, k, n = (np.asarray(x, dtype=np.float64) for x in (m, k, n))
    # A batch of small products runs like one product of the stacked rows, plus a fixed time
    # for each product.
    return Op(name, "gemm", flops=2 * m * k * n * batched, shape=(m * batched, k, n),
              batched=batched, nbytes=FP32_BYTES * (m * k + k * n + m * n) * batched, what=what)


class Costs:
    """Prices ops with a hardware profile: host dispatch and device time, in seconds per batch."""

    def __init__(self, hardware: HardwareProfile, precision: str = "fp32"):
        self.hw = hardware
        self.precision = precision

    def device(self, op: Op) -> np.ndarray:
        """Device time of all of op's instances in a batch (on kind "cpu", the host's cores)."""
        hw = self.hw
        if op.kind in HOST_ONLY or (op.on_host and hw.kind == "cuda"):
            return np.zeros(())
        if op.kind == "stream":
            work = hw.stream_time(op.nbytes)
        elif op.kind == "gemm":
            work = (np.maximum(hw.compute_time(op.flops, *op.shape, self.precision),
                               hw.stream_time(op.nbytes))
                    + (op.batched > 1) * op.batched * hw.gpu_batched_gemm_ns * 1e-9)
        elif op.kind in ("gather", "scatter"):
            rows = hw.gpu_gather_time if op.kind == "gather" else hw.gpu_scatter_time
            work = rows(op.rows, op.row_bytes) + hw.stream_time(op.nbytes)
        elif op.kind == "segment":
            work = (hw.segment_time(op.rows) + hw.gpu_gather_time(op.rows, op.row_bytes)
                    + hw.gpu_scatter_time(op.distinct, op.row_bytes))
        else:
            raise ValueError(f"unknown op kind {op.kind!r}")
        return np.asarray(op.count, float) * (hw.gpu_launch_us * 1e-6 + work)

    def host(self, op: Op) -> np.ndarray:
        """Host time of all of op's instances in a batch: dispatch, and the host's own work."""
        hw = self.hw
        if op.kind == "plan":
            return hw.plan_time(op.rows)
        if op.kind in ("host_gather", "host_scatter") and hw.kind == "cpu":
            # The host is the device: its own measured gathers and scatters.
            work = self.device(replace(op, kind=op.kind[5:], count=1))
        elif op.kind == "host_gather":
            work = hw.cpu_gather_time(op.rows, op.row_bytes)
        elif op.kind == "host_scatter":
            work = hw.cpu_scatter_time(op.rows, op.row_bytes)
        elif op.on_host and hw.kind == "cuda":
            # The host's cores do a device op's work at its DRAM's pace.
            rows = {"gather": hw.cpu_gather_time(op.rows, op.row_bytes),
                    "segment": hw.cpu_gather_time(op.rows, op.row_bytes)
                    + hw.cpu_scatter_time(op.distinct, op.row_bytes)}.get(op.kind, 0.0)
            work = rows + np.asarray(op.nbytes, float) / (hw.cpu_dram_gb_per_s * 1e9)
        else:
            work = 0.0
        count = np.asarray(op.count, float)
        return count * hw.cpu_dispatch_us * 1e-6 + count * work

    def link(self, op: Op) -> np.ndarray:
        """Link time of a copy op (zero for the others)."""
        if op.kind != "copy":
            return 0.0
        return np.asarray(op.count, float) * self.hw.transfer_time(op.nbytes, op.direction,
                                                                   op.pinned)

    def stage(self, ops: list[Op], n: int) -> np.ndarray:
        """Seconds per batch of a stage whose ops are `ops`, on its resource.

        kind "cpu": one resource runs every op in order, each paying its dispatch and its
        work. kind "cuda": a device stage runs no faster than the host dispatches it, so
        max(device time, dispatch time); a host or link stage is its host or link time."""
        host = sum((self.host(op) for op in ops), np.zeros(n))
        device = sum((self.device(op) for op in ops), np.zeros(n))
        link = sum((self.link(op) for op in ops), np.zeros(n))
        if self.hw.kind == "cpu" or any(op.on_host for op in ops):
            # In order: one resource, or a stage that hands its work between host and device.
            return host + device + link
        return np.maximum(device, host) + link


def count(ops: list[Op], n: int) -> np.ndarray:
    """Framework ops per batch of a stage."""
    return sum((np.broadcast_to(np.asarray(op.count), (n,)) for op in ops if op.kind != "plan"),
               np.zeros(n, dtype=np.int64)).astype(np.int64)


def on_host(step: list[Op], parts: tuple[str, ...]) -> list[Op]:
    """The step with the ops of these parts of the model (by `what`) run by the host."""
    return [replace(op, on_host=True) if op.what.startswith(parts) else op for op in step]


# The parts of the train step that touch the rows rather than the MLPs.
ROW_OPS = ("embedding", "update")


# -- the train step (backend/base.py's Trainer.train_step and update_rows) ----------------------
def linear_forward(m, fan_in, fan_out, relu: bool, what: str) -> list[Op]:
    ops = [view("t", what=what), gemm("addmm", m, fan_in, fan_out, what=what)]
    if relu:  # autograd keeps the ReLU's output for its backward: a detach
        ops += [stream("relu", 2 * FP32_BYTES * m * fan_out, what=what),
                view("detach", what=what)]
    return ops


def linear_backward(m, fan_in, fan_out, relu: bool, input_grad: bool, what: str) -> list[Op]:
    """ReLU's backward (if any), the input's gradient (unless it is the data), the weight's
    and the bias's, and AccumulateGrad of both (a detach each)."""
    ops = []
    if relu:
        ops += [view("detach", what=what),
                stream("threshold_backward", 3 * FP32_BYTES * m * fan_out, what=what)]
    if input_grad:
        ops += [view("t", what=what), gemm("mm", m, fan_out, fan_in, what=what)]
    ops += [view("t", what=what), gemm("mm", fan_in, m, fan_out, what=what),
            view("t", what=what), stream("sum", FP32_BYTES * m * fan_out, what=what),
            view("view", what=what), view("detach", what=what), view("t", what=what),
            view("detach", what=what)]
    return ops


def cross_forward(m, width, rank, what: str) -> list[Op]:
    """A low-rank cross layer (backend/base.py's LowRankCrossNet) on m samples:
    x0 * (W (V x) + b) + x, two products without bias and three elementwise ops."""
    big = 3 * FP32_BYTES * m * width
    return [view("t", what=what), gemm("mm", m, width, rank, what=what),
            view("t", what=what), gemm("mm", m, rank, width, what=what),
            stream("add", FP32_BYTES * (2 * m * width + width), what=what),
            stream("mul", big, what=what), stream("add", big, what=what)]


def cross_backward(m, width, rank, what: str) -> list[Op]:
    """Its backward: the product x0 * (...) gives two gradients (a mul each), the bias's
    is a sum, each of W and V takes its weight's gradient and its input's (a mm each,
    transposes around them) and AccumulateGrad (a detach). Two adds per layer sum the
    gradients that meet: x_l's (the skip and the product) and x0's (one from every layer's
    product and, through x_0 = x0, the first layer's skip and product, less the first to
    arrive)."""
    big = 3 * FP32_BYTES * m * width
    ops = [stream("mul", big, count=2, what=what),
           stream("sum", FP32_BYTES * (m * width + width), what=what),
           view("view", what=what), view("detach", what=what)]
    for a, b in ((width, rank), (rank, width)):  # W (its output is width wide), then V
        ops += [view("t", what=what), gemm("mm", a, m, b, what=what),
                view("t", count=2, what=what), gemm("mm", m, a, b, what=what),
                view("t", what=what), view("detach", what=what)]
    return ops + [stream("add", big, count=2, what=what)]


def mlp_layers(widths, relu_last: bool):
    """(fan_in, fan_out, relu) of each layer of an MLP as backend/base.py's mlp() builds it."""
    pairs = list(zip(widths[:-1], widths[1:]))
    return [(a, b, relu_last or k < len(pairs) - 1) for k, (a, b) in enumerate(pairs)]


@dataclass(frozen=True)
class StepShape:
    """The sizes the train step's ops depend on."""

    dim: int                 # the embedding width the step pools (the largest table dim)
    width: int               # a stored row: dim plus the optimizer state's columns
    row_bytes: int           # one embedding row of the widest table (dim x its dtype)
    tables: int
    bottom: tuple            # bottom MLP widths, dense features first
    top: tuple               # top MLP widths, its input first
    interaction: str
    optimizer: str           # the rows': sgd, rowwise-adagrad or adagrad (the MLPs then take
                             # torch.optim.Adagrad, per element, for either Adagrad)
    dcn_layers: int = 0      # dcn: the cross layers and their rank
    dcn_rank: int = 0


def train_step(shape: StepShape, samples, lookups, unique) -> list[Op]:
    """The ops of one training step on a batch's gathered rows: pool, MLPs forward, loss,
    backward, the dense optimizer, the loss read, and the rows' update."""
    s, d, t, w = samples, shape.dim, shape.tables, shape.width
    row = shape.row_bytes
    ops = [view("alias" if w == d else "slice", what="embedding"),
           view("detach", what="embedding"),
           # Every lookup's row read, every bag's sum written.
           Op("_embedding_bag", "gather", rows=lookups, row_bytes=row,
              nbytes=FP32_BYTES * s * t * d, what="embedding forward"),
           view("view", what="embedding")]
    bottom = mlp_layers(shape.bottom, relu_last=True)
    top = mlp_layers(shape.top, relu_last=False)
    for i, (a, b, relu) in enumerate(bottom):
        ops += linear_forward(s, a, b, relu, f"bottom.{i}")
    n = t + 1
    pairs = n * (n - 1) // 2
    if shape.interaction == "dot":
        ops += [view("unsqueeze", what="dot"),
                stream("cat", 2 * FP32_BYTES * s * n * d, what="dot"),
                view("transpose", what="dot"), gemm("bmm", n, d, n, batched=s, what="dot"),
                view("view", what="dot"),
                stream("index", FP32_BYTES * s * (n * n + pairs), what="dot: pairs"),
                stream("cat", 2 * FP32_BYTES * s * (d + pairs), what="dot")]
    elif shape.interaction == "dcn":  # x0: the bottom output and the pooled rows, flattened
        ops += [view("unsqueeze", what="dcn"),
                stream("cat", 2 * FP32_BYTES * s * n * d, what="dcn"), view("view", what="dcn")]
        for layer in range(shape.dcn_layers):
            ops += cross_forward(s, n * d, shape.dcn_rank, f"cross.{layer}")
    else:
        ops += [view("select", count=t, what="cat"),
                stream("cat", 2 * FP32_BYTES * s * (d + t * d), what="cat")]
    for i, (a, b, relu) in enumerate(top):
        ops += linear_forward(s, a, b, relu, f"top.{i}")
    ops += [view("squeeze", what="loss"),
            stream("binary_cross_entropy_with_logits", 3 * FP32_BYTES * s, what="loss"),
            view("_record_function", count=2, what="zero_grad")]
    # Backward, from the loss to the rows.
    ops += [stream("ones_like", FP32_BYTES, what="loss backward"),
            stream("sigmoid sub mul div_", 3 * FP32_BYTES * s, count=4, what="loss backward"),
            view("unsqueeze", what="loss backward")]
    for i, (a, b, relu) in reversed(list(enumerate(top))):
        ops += linear_backward(s, a, b, relu, True, f"top.{i} backward")
    if shape.interaction == "dot":
        ops += [view("slice", count=2, what="dot backward"),
                stream("new_zeros", FP32_BYTES * s * n * n, what="dot backward"),
                stream("index_put", 2 * FP32_BYTES * s * pairs, what="dot backward"),
                view("view transpose", count=2, what="dot backward"),
                gemm("bmm", n, n, d, batched=s, what="dot backward"),
                view("transpose", what="dot backward"),
                gemm("bmm", n, n, d, batched=s, what="dot backward"),
                view("transpose", what="dot backward"),
                stream("add", 3 * FP32_BYTES * s * n * d, what="dot backward"),
                view("slice squeeze", count=3, what="dot backward"),
                stream("add", 3 * FP32_BYTES * s * d, what="dot backward")]
    elif shape.interaction == "dcn":
        for layer in reversed(range(shape.dcn_layers)):
            ops += cross_backward(s, n * d, shape.dcn_rank, f"cross.{layer} backward")
        ops += [view("view", what="dcn backward"), view("slice", count=2, what="dcn backward"),
                view("squeeze", what="dcn backward")]
    else:
        ops += [view("slice", count=t + 1, what="cat backward"),
                stream("select_backward", 2 * FP32_BYTES * s * t * d, count=t,
                       what="cat backward"),
                stream("add", 3 * FP32_BYTES * s * t * d, count=t - 1, what="cat backward")]
    for i, (a, b, relu) in reversed(list(enumerate(bottom))):
        ops += linear_backward(s, a, b, relu, i > 0, f"bottom.{i} backward")
    if shape.interaction in ("dot", "dcn"):  # the pooled gradient is a strided slice: copied
        ops += [stream("clone", 2 * FP32_BYTES * s * t * d, what="embedding backward"),
                view("_unsafe_view", what="embedding backward")]
    else:
        ops.append(view("view", what="embedding backward"))
    # The lookups' ids sorted, each one's bag gradient read, summed per distinct row.
    ops += [Op("_embedding_bag_backward", "segment", rows=lookups, row_bytes=row,
               distinct=unique, what="embedding backward"),
            view("detach", what="embedding backward")]
    params = [FP32_BYTES * (a * b) for a, b, _ in bottom + top] + \
             [FP32_BYTES * b for _, b, _ in bottom + top] + \
             [FP32_BYTES * size for size in (n * d * shape.dcn_rank, shape.dcn_rank * n * d,
                                             n * d) for _ in range(shape.dcn_layers)]
    ops.append(view("_record_function", count=2, what="optimizer"))
    if shape.optimizer == "sgd":
        ops += [stream("add_", 3 * p, what="optimizer") for p in params]
    else:  # torch.optim.Adagrad, per parameter: step, its read, the sum, the step itself
        for p in params:
            ops += [stream("add_", FP32_BYTES, what="optimizer: step count"),
                    view("_local_scalar_dense", what="optimizer"),
                    stream("addcmul_", 4 * p, what="optimizer"),
                    stream("sqrt", 2 * p, what="optimizer"),
                    stream("add_", 3 * p, what="optimizer"),
                    stream("addcdiv_", 4 * p, what="optimizer")]
    ops.append(view("_local_scalar_dense", what="loss.item()"))
    ops += update_rows(shape, unique)
    return ops


def update_rows(shape: StepShape, unique) -> list[Op]:
    """backend/base.py's update_rows on the [unique, width] rows: SGD, row-wise Adagrad, or
    Adagrad with its state in the dim columns after the row."""
    u, d, w = np.asarray(unique, float), shape.dim, shape.width
    rows = FP32_BYTES * u * w
    emb = FP32_BYTES * u * d
    col = FP32_BYTES * u
    if shape.optimizer == "sgd":
        return [stream("clone", 2 * rows, what="update"),
                view("alias" if w == d else "slice", what="update"),
                stream("mul", 2 * emb, what="update"), stream("sub", 3 * emb, what="update"),
                stream("copy_", 2 * emb, what="update")]
    if shape.optimizer == "adagrad":  # the state block's sums, written; then the step
        return [stream("clone", 2 * rows, what="update"), view("slice", what="update"),
                stream("addcmul", 4 * emb, what="update"),
                view("slice", what="update"), stream("copy_", 2 * emb, what="update"),
                view("slice", what="update"),
                stream("sqrt add_", 2 * emb, count=2, what="update"),
                stream("addcdiv", 4 * emb, what="update"),
                view("slice", what="update"), stream("copy_", 2 * emb, what="update")]
    return [stream("clone", 2 * rows, what="update"), view("select", what="update"),
            stream("mul", 3 * emb, what="update"), stream("sum", emb + col, what="update"),
            stream("div add", 3 * col, count=2, what="update"), view("select", what="update"),
            stream("copy_", 2 * col, what="update"), view("slice", what="update"),
            stream("mul", 2 * emb, what="update"),
            stream("sqrt add", 2 * col, count=2, what="update"),
            view("unsqueeze", what="update"), stream("div sub", 3 * emb, count=2, what="update"),
            view("slice", what="update"), stream("copy_", 2 * emb, what="update")]
