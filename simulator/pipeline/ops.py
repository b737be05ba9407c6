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
plus the larger of its compute time and its memory time (a roofline). A model whose dense step
is a CUDA graph (ModelConfig.dense_step) replays its dense ops as one graph (graph_dense): the
host dispatches one launch (kind "graph", priced as one op's dispatch: a replay is one call
into cudaGraphLaunch, with no autograd or dispatcher behind it, so at most an op's cost) in
place of their dispatch, and each of their kernels costs the graph's per-kernel time
(gpu.graph_kernel_us) in place of an eager launch. Mixed precision (fp16 or bf16 MLPs) is
listed as torch.autocast runs it (train_step): each op with the bytes of the dtypes it runs in,
autocast's casts as ops of their own, and fp16's loss scaling; Costs prices its GEMMs at that
precision's peak and shape efficiency. The rules that list a
stage's ops live beside the mode (pipeline/<mode>.py) and the train step's below (train_step);
tests/pipeline/test_op_counts.py counts the backend's real ops per stage against them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from ..hardware import HardwareProfile
from ..hardware.profile import READ_MODIFY_WRITE

FP32_BYTES = 4
HALF_BYTES = 2
CAST_BYTES = FP32_BYTES + HALF_BYTES  # an autocast cast reads one and writes the other
INDEX_BYTES = 8      # int64 ids and offsets, as the embedding ops take them
# Kinds that run no device kernel.
HOST_ONLY = ("view", "plan", "host_gather", "host_scatter", "copy", "graph")
HALF_PRECISIONS = ("fp16", "bf16")


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
    graphed: bool = False         # replayed inside a CUDA graph: no dispatch of its own
    layout: str = "nn"            # gemm, batched: its operands (nn; nt, tn: one transposed)
    local: bool = False           # gather, scatter, segment: the rows are the batch's own
                                  # gathered ones (a small tensor), not a table's
    what: str = field(default="", compare=False)  # where in the model, for reading

    @property
    def is_batched(self) -> bool:
        """A batched GEMM (bmm): its products counted by `batched` (per batch)."""
        return self.kind == "gemm" and not (np.ndim(self.batched) == 0 and self.batched == 1)


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


def gemm(name: str, m, k, n, batched=1, what: str = "", elem=FP32_BYTES,
         layout: str = "nn") -> Op:
    """One (batched) product of (m x k) by (k x n): its flops and the bytes of its operands,
    `elem` bytes each (half under autocast: it casts every operand); a batched one's
    operands are laid out as `layout` says (hardware.profile.BMM_LAYOUTS)."""
    m, k, n = (np.asarray(x, dtype=np.float64) for x in (m, k, n))
    # A batch of small products runs like one product of the stacked rows, plus a fixed time
    # for each product.
    return Op(name, "gemm", flops=2 * m * k * n * batched, shape=(m * batched, k, n),
              batched=batched, nbytes=elem * (m * k + k * n + m * n) * batched, what=what,
              layout=layout)


class Costs:
    """Prices ops with a hardware profile: host dispatch and device time, in seconds per batch.

    precision: the MLPs' (ModelConfig.mlp_precision), the peak and shape efficiency their GEMMs
    run at; the op lists give each op's bytes in the dtypes it runs in (train_step)."""

    def __init__(self, hardware: HardwareProfile, precision: str = "fp32"):
        self.hw = hardware
        self.precision = precision

    def device(self, op: Op) -> np.ndarray:
        """Device time of all of op's instances in a batch (on kind "cpu", the host's cores)."""
        hw = self.hw
        if op.kind in HOST_ONLY or (op.on_host and hw.kind == "cuda"):
            return np.zeros(())
        nbytes = np.asarray(op.nbytes, float)
        if op.kind == "stream":
            work = hw.stream_time(nbytes)
        elif op.kind == "gemm" and op.is_batched and hw.batched_gemm_by_shape:
            # Measured by the products' own shape: small products run at speeds their
            # flops do not tell (a 64x9 by 9x9 product is slower than a 9x64
            # by 64x9 one of the same flops on a CPU, by two to four times).
            work = hw.batched_gemm_time(op.batched, op.shape[0] / op.batched, *op.shape[1:],
                                        op.layout)
        elif op.kind == "gemm":
            work = np.maximum(hw.compute_time(op.flops, *op.shape, self.precision),
                              hw.stream_time(nbytes))
            if op.is_batched:
                work = work + np.asarray(op.batched, float) * hw.gpu_batched_gemm_ns * 1e-9
        elif op.kind in ("gather", "scatter"):
            work = self.rows_time(op, op.rows, op.kind) + hw.stream_time(op.nbytes)
        elif op.kind == "segment":
            work = (hw.segment_time(op.rows) + self.rows_time(op, op.rows, "gather")
                    + self.rows_time(op, op.distinct, "scatter"))
        else:
            raise ValueError(f"unknown op kind {op.kind!r}")
        launch = hw.gpu_graph_kernel_us if op.graphed else hw.gpu_launch_us
        return np.asarray(op.count, float) * (launch * 1e-6 + work)

    def rows_time(self, op: Op, rows, kind: str) -> np.ndarray:
        """Device time of reading ("gather") or updating ("scatter") `rows` random rows of
        op.row_bytes: of a table, at the profile's gather or scatter efficiency of that row
        size; of the batch's own gathered rows (op.local), a tensor the last-level cache
        holds, as memory traffic at the elementwise rate (an update reads and writes)."""
        hw = self.hw
        if op.local:
            nbytes = np.asarray(rows, float) * op.row_bytes
            return hw.stream_time(nbytes if kind == "gather" else READ_MODIFY_WRITE * nbytes)
        rows_time = hw.gpu_gather_time if kind == "gather" else hw.gpu_scatter_time
        return rows_time(rows, op.row_bytes)

    def host(self, op: Op) -> np.ndarray:
        """Host time of all of op's instances in a batch: dispatch, and the host's own work."""
        hw = self.hw
        if op.kind == "plan":
            return hw.plan_time(op.rows)
        if op.graphed:  # the graph's launch dispatches it
            return np.zeros(())
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
    """Framework ops per batch of a stage (a graph's replay is not one: its ops are counted)."""
    return sum((np.broadcast_to(np.asarray(op.count), (n,)) for op in ops
                if op.kind not in ("plan", "graph")),
               np.zeros(n, dtype=np.int64)).astype(np.int64)


def on_host(step: list[Op], parts: tuple[str, ...]) -> list[Op]:
    """The step with the ops of these parts of the model (by `what`) run by the host."""
    return [replace(op, on_host=True) if op.what.startswith(parts) else op for op in step]


# The parts of the train step that touch the rows rather than the MLPs.
ROW_OPS = ("embedding", "update")
# What a CUDA graph of the dense step leaves eager: the ops on the batch's rows, whose shapes
# follow its ids (lookups, distinct rows), and the reads to the host (the loss's, and fp16's
# found_inf before the optimizer's step: synchronisations, which a graph cannot hold).
EAGER_PARTS = ROW_OPS + ("loss.item()", "loss scaling: found_inf.item()")


def graph_dense(step: list[Op]) -> list[Op]:
    """The train step with its dense ops (all but EAGER_PARTS: the MLPs, interaction, loss and
    dense optimizer, forward and backward) replayed as one CUDA graph: one launch, dispatched
    where the graph's first op was, and the ops marked graphed. As NVIDIA's DLRM and TorchRec's
    pipelines run it; torch's capturable optimizers keep the step count on the device."""
    out, launched = [], False
    for op in step:
        # Host work (plans, host rows, copies) stays eager; views are captured with their ops.
        if op.what.startswith(EAGER_PARTS) or (op.kind in HOST_ONLY and op.kind != "view"):
            out.append(op)
            continue
        if not launched:
            out.append(Op("graph_launch", "graph", what="dense step"))
            launched = True
        out.append(replace(op, graphed=True))
    return out


# -- the train step (backend/base.py's Trainer.train_step and update_rows) ----------------------
def cast(elements, what: str, count=1) -> Op:
    """One of autocast's casts (a _to_copy kernel) of `elements` values between fp32 and half,
    either way: 4 bytes read and 2 written per value, or 2 and 4."""
    return stream("_to_copy", CAST_BYTES * elements, count, what=f"{what} autocast cast")


def linear_forward(m, fan_in, fan_out, relu: bool, what: str, half: bool = False,
                   cast_input: bool = False) -> list[Op]:
    """half: under autocast, which casts the fp32 weight and bias to half (every step: its
    cache of casts lives as long as the autocast region) and the input too when it is fp32
    (cast_input), and runs the product and the ReLU in half."""
    e = HALF_BYTES if half else FP32_BYTES
    ops = [cast(fan_out * fan_in, what), cast(fan_out, what)] if half else []
    if half and cast_input:
        ops.append(cast(m * fan_in, what))
    ops += [view("t", what=what), gemm("addmm", m, fan_in, fan_out, what=what, elem=e)]
    if relu:  # autograd keeps the ReLU's output for its backward: a detach
        ops += [stream("relu", 2 * e * m * fan_out, what=what),
                view("detach", what=what)]
    return ops


def linear_backward(m, fan_in, fan_out, relu: bool, input_grad: bool, what: str,
                    half: bool = False, cast_input: bool = False) -> list[Op]:
    """ReLU's backward (if any), the input's gradient (unless it is the data), the weight's
    and the bias's, and AccumulateGrad of both (a detach each). half: all of it in half, and
    the casts' backwards: the weight's and the bias's gradients cast to fp32 for their fp32
    parameters, and the input's when the forward cast an fp32 input (cast_input)."""
    e = HALF_BYTES if half else FP32_BYTES
    ops = []
    if relu:
        ops += [view("detach", what=what),
                stream("threshold_backward", 3 * e * m * fan_out, what=what)]
    if input_grad:
        ops += [view("t", what=what), gemm("mm", m, fan_out, fan_in, what=what, elem=e)]
    ops += [view("t", what=what), gemm("mm", fan_in, m, fan_out, what=what, elem=e),
            view("t", what=what), stream("sum", e * m * fan_out, what=what),
            view("view", what=what), view("detach", what=what), view("t", what=what),
            view("detach", what=what)]
    if half:
        ops += [cast(fan_in * fan_out, what), cast(fan_out, what)]
    if half and cast_input and input_grad:
        ops.append(cast(m * fan_in, what))
    return ops


def cross_forward(m, width, rank, what: str, half: bool = False) -> list[Op]:
    """A low-rank cross layer (backend/base.py's LowRankCrossNet) on m samples:
    x0 * (W (V x) + b) + x, two products without bias and three elementwise ops. half: the
    products under autocast (V, x and W cast to half); the fp32 bias promotes the rest to
    fp32, its add reading the half product."""
    e = HALF_BYTES if half else FP32_BYTES
    big = 3 * FP32_BYTES * m * width
    v_casts = [cast(rank * width, what), cast(m * width, what)] if half else []
    w_casts = [cast(width * rank, what)] if half else []
    return [*v_casts, view("t", what=what), gemm("mm", m, width, rank, what=what, elem=e),
            *w_casts, view("t", what=what), gemm("mm", m, rank, width, what=what, elem=e),
            stream("add", (e + FP32_BYTES) * m * width + FP32_BYTES * width, what=what),
            stream("mul", big, what=what), stream("add", big, what=what)]


def cross_backward(m, width, rank, what: str, half: bool = False) -> list[Op]:
    """Its backward: the product x0 * (...) gives two gradients (a mul each), the bias's
    is a sum, each of W and V takes its weight's gradient and its input's (a mm each,
    transposes around them) and AccumulateGrad (a detach). Two adds per layer sum the
    gradients that meet: x_l's (the skip and the product) and x0's (one from every layer's
    product and, through x_0 = x0, the first layer's skip and product, less the first to
    arrive). half: the products' gradient cast to half, W's and V's to fp32, and x_l's
    (the half product V x_l's input gradient) back to fp32."""
    e = HALF_BYTES if half else FP32_BYTES
    big = 3 * FP32_BYTES * m * width
    ops = [stream("mul", big, count=2, what=what), *([cast(m * width, what)] if half else []),
           stream("sum", FP32_BYTES * (m * width + width), what=what),
           view("view", what=what), view("detach", what=what)]
    for a, b in ((width, rank), (rank, width)):  # W (its output is width wide), then V
        ops += [view("t", what=what), gemm("mm", a, m, b, what=what, elem=e),
                view("t", count=2, what=what), gemm("mm", m, a, b, what=what, elem=e),
                view("t", what=what), view("detach", what=what)]
        if half:
            ops.append(cast(a * b, what))
    if half:
        ops.append(cast(m * width, what))
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
    optimizer: str           # the rows': sgd, rowwise-adagrad, adagrad or adam (the MLPs then
                             # take torch.optim.Adagrad, per element, for either Adagrad, and
                             # torch.optim.Adam for adam)
    dcn_layers: int = 0      # dcn: the cross layers and their rank
    dcn_rank: int = 0
    precision: str = "fp32"  # the MLPs' (ModelConfig.mlp_precision): fp16, bf16 under autocast
    embedding_dtype: str = "fp32"  # the tables' (ModelConfig.dtype): the pooled rows'


def train_step(shape: StepShape, samples, lookups, unique) -> list[Op]:
    """The ops of one training step on a batch's gathered rows: pool, MLPs forward, loss,
    backward, the dense optimizer, the loss read, and the rows' update. Per-batch arrays are
    a run's batches from its first, whose step also creates torch.optim.Adam's state (adam);
    scalars describe a step of the steady state.

    Half MLPs (precision fp16 or bf16) train under torch.autocast, as the backend's
    Trainer.train_step runs bf16 (tests/pipeline/test_autocast_ops.py counts it):
      linear layers   the fp32 weight and bias cast to half every step, and the input when it
                      is fp32 (bottom.0's dense features; top.0's under cat and dcn, whose
                      outputs are fp32); the product, ReLU and their backwards in half; the
                      weight's and bias's gradients cast back for their fp32 parameters'
                      AccumulateGrad, and the input's when it was cast
      interaction     autocast promotes mixed inputs (cat, add, mul) to the wider type: the
                      pooled fp32 rows (tables in fp32 or the other half type) take the half
                      bottom output cast to fp32 and the fp32 result is cast to half for each
                      product that takes it (dot's bmm: both operands; dcn's V x), each cast's
                      gradient cast back; dot's pairs and its output's cat run in half. With
                      tables in the MLPs' half type dot and cat run wholly in half; dcn's
                      fp32 bias promotes its layers to fp32 either way, so it is listed as
                      with fp32 tables (not counted: the backend's tables are fp32)
      loss            on autocast's fp32 list: the logits cast to fp32, its gradient to half
      fp16            GradScaler's loss scaling besides (loss_scaling); bf16 needs none
    The embedding ops, the dense optimizer (fp32 parameters and gradients) and the rows'
    update run as listed for fp32."""
    s, d, t, w = samples, shape.dim, shape.tables, shape.width
    row = shape.row_bytes
    half = shape.precision in HALF_PRECISIONS
    e = HALF_BYTES if half else FP32_BYTES  # the MLPs' activations and every GEMM operand
    # fp32 features in the interaction under half MLPs: their casts (see above).
    wide = half and (shape.embedding_dtype != shape.precision or shape.interaction == "dcn")
    x = HALF_BYTES if half and not wide else FP32_BYTES  # the interaction's features

    def casts(elements, what, count=1) -> list[Op]:
        return [cast(elements, what, count)] if wide else []
    ops = [view("alias" if w == d else "slice", what="embedding"),
           view("detach", what="embedding"),
           # Every lookup's row read (of the batch's gathered rows), every bag's sum written.
           Op("_embedding_bag", "gather", rows=lookups, row_bytes=row,
              nbytes=FP32_BYTES * s * t * d, local=True, what="embedding forward"),
           view("view", what="embedding")]
    bottom = mlp_layers(shape.bottom, relu_last=True)
    top = mlp_layers(shape.top, relu_last=False)
    for i, (a, b, relu) in enumerate(bottom):  # bottom.0's input: the fp32 dense features
        ops += linear_forward(s, a, b, relu, f"bottom.{i}", half, cast_input=i == 0)
    n = t + 1
    pairs = n * (n - 1) // 2
    if shape.interaction == "dot":
        ops += [view("unsqueeze", what="dot"), *casts(s * d, "dot"),
                stream("cat", 2 * x * s * n * d, what="dot"),
                view("transpose", what="dot"), *casts(s * n * d, "dot", count=2),
                # features by their transposed view: the second operand transposed
                gemm("bmm", n, d, n, batched=s, what="dot", elem=e, layout="nt"),
                view("view", what="dot"),
                stream("index", e * s * (n * n + pairs), what="dot: pairs"),
                stream("cat", 2 * e * s * (d + pairs), what="dot")]
    elif shape.interaction == "dcn":  # x0: the bottom output and the pooled rows, flattened
        ops += [view("unsqueeze", what="dcn"), *casts(s * d, "dcn"),
                stream("cat", 2 * x * s * n * d, what="dcn"), view("view", what="dcn")]
        for layer in range(shape.dcn_layers):
            ops += cross_forward(s, n * d, shape.dcn_rank, f"cross.{layer}", half)
    else:
        ops += [view("select", count=t, what="cat"), *casts(s * d, "cat"),
                stream("cat", 2 * x * s * (d + t * d), what="cat")]
    cast_top = wide and shape.interaction != "dot"  # dot's output cat is half
    for i, (a, b, relu) in enumerate(top):
        ops += linear_forward(s, a, b, relu, f"top.{i}", half, cast_input=cast_top and i == 0)
    scaled = shape.precision == "fp16"
    ops += [view("squeeze", what="loss"), *([cast(s, "loss")] if half else []),
            stream("binary_cross_entropy_with_logits", 3 * FP32_BYTES * s, what="loss"),
            *loss_scaling(first_batch(samples), "forward", scaled),
            view("_record_function", count=2, what="zero_grad")]
    # Backward, from the loss to the rows.
    ops += [stream("ones_like", FP32_BYTES, what="loss backward"),
            *loss_scaling(0, "backward", scaled),
            stream("sigmoid sub mul div_", 3 * FP32_BYTES * s, count=4, what="loss backward"),
            *([cast(s, "loss backward")] if half else []),
            view("unsqueeze", what="loss backward")]
    for i, (a, b, relu) in reversed(list(enumerate(top))):
        ops += linear_backward(s, a, b, relu, True, f"top.{i} backward", half,
                               cast_input=cast_top and i == 0)
    if shape.interaction == "dot":
        ops += [view("slice", count=2, what="dot backward"),
                stream("new_zeros", e * s * n * n, what="dot backward"),
                stream("index_put", 2 * e * s * pairs, what="dot backward"),
                view("view transpose", count=2, what="dot backward"),
                # BmmBackward: the first factor's gradient, grad (n x n) by the features
                # (n x d), then the second's, the features' transposed view (d x n) by grad
                # (n x n): the same flops in products of another shape and layout, and so of
                # another speed.
                gemm("bmm", n, n, d, batched=s, what="dot backward", elem=e),
                view("transpose", what="dot backward"),
                gemm("bmm", d, n, n, batched=s, what="dot backward", elem=e, layout="tn"),
                *casts(s * n * d, "dot backward", count=2),
                view("transpose", what="dot backward"),
                stream("add", 3 * x * s * n * d, what="dot backward"),
                view("slice squeeze", count=3, what="dot backward"),
                *casts(s * d, "dot backward"),
                stream("add", 3 * e * s * d, what="dot backward")]
    elif shape.interaction == "dcn":
        for layer in reversed(range(shape.dcn_layers)):
            ops += cross_backward(s, n * d, shape.dcn_rank, f"cross.{layer} backward", half)
        ops += [view("view", what="dcn backward"), view("slice", count=2, what="dcn backward"),
                *casts(s * d, "dcn backward"), view("squeeze", what="dcn backward")]
    else:
        ops += [view("slice", count=t + 1, what="cat backward"),
                stream("select_backward", 2 * x * s * t * d, count=t,
                       what="cat backward"),
                stream("add", 3 * x * s * t * d, count=t - 1, what="cat backward"),
                *casts(s * d, "cat backward")]
    for i, (a, b, relu) in reversed(list(enumerate(bottom))):
        ops += linear_backward(s, a, b, relu, i > 0, f"bottom.{i} backward", half,
                               cast_input=i == 0)
    if shape.interaction in ("dot", "dcn"):  # the pooled gradient is a strided slice: copied
        ops += [stream("clone", 2 * FP32_BYTES * s * t * d, what="embedding backward"),
                view("_unsafe_view", what="embedding backward")]
    else:
        ops.append(view("view", what="embedding backward"))
    # The lookups' ids sorted, each one's bag gradient read, summed per distinct row.
    ops += [Op("_embedding_bag_backward", "segment", rows=lookups, row_bytes=row,
               distinct=unique, local=True, what="embedding backward"),
            view("detach", what="embedding backward")]
    params = [FP32_BYTES * (a * b) for a, b, _ in bottom + top] + \
             [FP32_BYTES * b for _, b, _ in bottom + top] + \
             [FP32_BYTES * size for size in (n * d * shape.dcn_rank, shape.dcn_rank * n * d,
                                             n * d) for _ in range(shape.dcn_layers)]
    ops += loss_scaling(0, "unscale", scaled, gradient_bytes=sum(params))
    ops.append(view("_record_function", count=2, what="optimizer"))
    if shape.optimizer == "sgd":
        ops += [stream("add_", 3 * p, what="optimizer") for p in params]
    elif shape.optimizer == "adam":
        ops += dense_adam(params, first_batch(samples))
    else:  # torch.optim.Adagrad, per parameter: step, its read, the sum, the step itself
        for p in params:
            ops += [stream("add_", FP32_BYTES, what="optimizer: step count"),
                    view("_local_scalar_dense", what="optimizer"),
                    stream("addcmul_", 4 * p, what="optimizer"),
                    stream("sqrt", 2 * p, what="optimizer"),
                    stream("add_", 3 * p, what="optimizer"),
                    stream("addcdiv_", 4 * p, what="optimizer")]
    ops += loss_scaling(0, "update", scaled)
    ops.append(view("_local_scalar_dense", what="loss.item()"))
    ops += update_rows(shape, unique)
    return ops


def loss_scaling(first, part: str, scaled: bool, gradient_bytes=0) -> list[Op]:
    """torch.amp.GradScaler's ops in an fp16 step (none unless `scaled`), read from
    torch/amp/grad_scaler.py (torch 2.x) and counted on the CPU, where this torch runs
    GradScaler("cpu") too (tests/pipeline/test_autocast_ops.py); on CUDA the same calls
    dispatch the same ops. Scalars but for the unscale:
      forward   scale(loss): on the first step _lazy_init_scale_growth_tracker's two
                torch.full (the scale and its growth tracker; `first` is 1 there), then
                loss * scale, a mul
      backward  that mul's backward: the loss's gradient times the scale, a mul
      unscale   step() unscales first: inv_scale = scale.double().reciprocal().float() (a
                _to_copy, reciprocal, _to_copy), found_inf = torch.full(...), the two copies
                its _MultiDeviceReplicator makes for the gradients' device (.to(copy=True)),
                one _amp_foreach_non_finite_check_and_unscale_ per device and dtype of the
                optimizer's gradients (here one: the MLPs' fp32 gradients on the training
                device; each read and written once) and _maybe_opt_step's found_inf.item(),
                a read to the host (a sync) before the optimizer's step
      update    update(): one _amp_update_scale_ (one device: nothing to sum)
    The rows' gradient is not the dense optimizer's, so GradScaler leaves it alone: a program
    that trains fp16 rows of its own must unscale them itself (not listed)."""
    if not scaled:
        return []
    what = "loss scaling"
    scalar = 3 * FP32_BYTES  # two scalars read, one written
    if part == "forward":
        return [stream("full", FP32_BYTES, count=2 * np.asarray(first), what=what),
                stream("mul", scalar, what=what)]
    if part == "backward":
        return [stream("mul", scalar, what=what)]
    if part == "unscale":
        return [stream("_to_copy", FP32_BYTES + 8, count=2, what=what),
                stream("reciprocal", 2 * 8, what=what),
                stream("full", FP32_BYTES, what=what),
                stream("_to_copy", 2 * FP32_BYTES, count=2, what=what),
                stream("_amp_foreach_non_finite_check_and_unscale_", 2 * gradient_bytes,
                       what=what),
                view("_local_scalar_dense", what="loss scaling: found_inf.item()")]
    return [stream("_amp_update_scale_", 4 * FP32_BYTES, what=what)]


def first_batch(samples) -> object:
    """1 for a run's first batch, 0 for the others (a scalar: a step of the steady state)."""
    first = np.zeros(np.shape(samples), dtype=np.int64)
    if first.ndim:
        first[0] = 1
    return first


def dense_adam(params: list, first) -> list[Op]:
    """torch.optim.Adam's single-tensor step (the one it takes on the CPU) on parameters of
    `params` bytes: on the first step (`first`: 1 there) each parameter's state created (its
    step, a lifted scalar, and two zeroed moments); then per parameter the step counted up,
    exp_avg.lerp_(grad), exp_avg_sq.mul_(beta2).addcmul_(grad, grad), the step read back for
    the bias corrections, denom = (exp_avg_sq.sqrt() / c).add_(eps), and the parameter's
    addcdiv_(exp_avg, denom)."""
    ops = []
    for p in params:
        ops += [view("lift_fresh", count=first, what="optimizer: state"),
                stream("zeros_like", p, count=2 * first, what="optimizer: state")]
    for p in params:
        ops += [stream("add_", FP32_BYTES, what="optimizer: step count"),
                stream("lerp_", 3 * p, what="optimizer"),
                stream("mul_", 2 * p, what="optimizer"),
                stream("addcmul_", 4 * p, what="optimizer"),
                view("_local_scalar_dense", what="optimizer"),
                stream("sqrt", 2 * p, what="optimizer"),
                stream("div", 2 * p, what="optimizer"),
                stream("add_", 2 * p, what="optimizer"),
                stream("addcdiv_", 4 * p, what="optimizer")]
    return ops


def update_rows(shape: StepShape, unique) -> list[Op]:
    """backend/base.py's update_rows on the [unique, width] rows: SGD, row-wise Adagrad,
    Adagrad with its state in the dim columns after the row, or Adam with its two moments in
    the 2 * dim columns after it."""
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
    if shape.optimizer == "adam":  # in place on the clone's columns, as torch.optim.Adam
        return [stream("clone", 2 * rows, what="update"),
                view("slice", count=2, what="update"),          # exp_avg, exp_avg_sq
                stream("lerp_", 3 * emb, what="update"),        # exp_avg, grad -> exp_avg
                stream("mul_", 2 * emb, what="update"),
                stream("addcmul_", 4 * emb, what="update"),     # exp_avg_sq, grad, grad
                stream("sqrt", 2 * emb, what="update"), stream("div", 2 * emb, what="update"),
                stream("add_", 2 * emb, what="update"),         # denom
                view("slice", what="update"),
                stream("addcdiv_", 4 * emb, what="update")]     # row, exp_avg, denom -> row
    return [stream("clone", 2 * rows, what="update"), view("select", what="update"),
            stream("mul", 3 * emb, what="update"), stream("sum", emb + col, what="update"),
            stream("div add", 3 * col, count=2, what="update"), view("select", what="update"),
            stream("copy_", 2 * col, what="update"), view("slice", what="update"),
            stream("mul", 2 * emb, what="update"),
            stream("sqrt add", 2 * col, count=2, what="update"),
            view("unsqueeze", what="update"), stream("div sub", 3 * emb, count=2, what="update"),
            view("slice", what="update"), stream("copy_", 2 * emb, what="update")]
