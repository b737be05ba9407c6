"""Model configurations: the embedding tables, MLPs and optimizer of a DLRM-style model, read
from TOML, with the sizes and work the timing pipeline needs.

A model file is flat (so `trace generate --like FILE` finds `table_rows` at the top):

    name = "dlrm-kaggle"              # optional, defaults to the file name
    description = "..."               # optional
    embedding_dim = 16                # one dim for all tables, or a list with one per table
    bottom_mlp = [13, 512, 256, 64, 16]   # dense features, then each layer's width
    top_mlp = [512, 256, 1]           # each layer's width; the input width follows from the
                                      # interaction, as in facebookresearch/dlrm
    interaction = "dot"               # 'dot' (pairwise dot products), 'cat' (concatenation)
                                      # or 'dcn' (DCNv2 low-rank cross network)
    dcn_layers = 3                    # optional, dcn only: cross layers (default 3)
    dcn_rank = 512                    # optional, dcn only: their low rank (default 512)
    batch_size = 4096                 # samples per iteration, for traces made --like this model
    dtype = "fp32"                    # embedding storage: fp32, fp16 or bf16
    optimizer = "sgd"                 # sgd, adagrad, rowwise-adagrad or adam (see
                                      # OPTIMIZER_STATE)
    mlp_precision = "fp32"            # optional (default: dtype): fp32, tf32, fp16 or bf16
    dense_step = "eager"              # optional: how the dense step is issued (DENSE_STEPS)
    pooling = 1                       # optional: bag sizes of traces made --like this model:
                                      # P, "LO-HI" (drawn per bag), or a list with one per table
    multi_hot = "independent"         # optional: how a bag's ids are drawn (trace.MULTI_HOT)
    table_rows = [1460, 583, ...]     # optional: the full tables

Models describe architectures; traces give rows. A generator makes ids over table_rows; an
imported trace (often a sample of a dataset) fits the model when it has as many tables and
every id lies inside the model's table, and then the model's table sizes decide what fits in
memory (see check_trace and table_sizes).

Dot interaction (DLRM without self-interaction): the bottom MLP's output and the T pooled
embeddings are n = T + 1 vectors; their n(n-1)/2 pairwise dot products, with the bottom output,
feed the top MLP. This needs every embedding dim equal to the bottom MLP's output width.
Cat interaction concatenates the bottom output and all pooled embeddings.
DCN interaction (TorchRec's DLRM_DCN, MLPerf DLRM-DCNv2): the bottom output and the T pooled
embeddings, every one of dim D (as for dot), concatenated into x0 of width N = (T+1)*D, go
through dcn_layers low-rank cross layers (TorchRec's LowRankCrossNet)
x_{l+1} = x0 * (W_l (V_l x_l) + b_l) + x_l, with V_l (rank x N) and W_l (N x rank) without
bias and b_l (N); the top MLP takes the last x_l, of width N.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .._presets import load_preset, preset_names
from ..errors import OptionError
from ..hardware.profile import PRECISIONS
from ..trace import open_trace
from ..trace.generators import DEFAULT_BAGS, MULTI_HOT, parse_pooling

PRESET_DIR = Path(__file__).parent / "presets"
DTYPE_BYTES = {"fp32": 4, "fp16": 2, "bf16": 2}
INTERACTIONS = ("dot", "cat", "dcn")
# TorchRec DLRM_DCN's defaults, as MLPerf DLRM-DCNv2 trains it.
DCN_DEFAULTS = {"dcn_layers": 3, "dcn_rank": 512}
# Optimizer state kept per row, in fp32 values whatever the embedding dtype:
#   sgd: none. adagrad: one squared-gradient sum per element (torch.optim.Adagrad).
#   rowwise-adagrad: one sum per row (FBGEMM's EXACT_ROWWISE_ADAGRAD, TorchRec's default for
#   large tables), which makes the state negligible next to the row.
#   adam: two moments per element, the gradient's running mean and its square's (FBGEMM's
#   ADAM keeps them as momentum1 and momentum2, torch.optim.Adam as exp_avg and exp_avg_sq).
OPTIMIZER_STATE = {"sgd": "none", "adagrad": "per element", "rowwise-adagrad": "per row",
                   "adam": "two per element"}
STATE_VALUE_BYTES = DTYPE_BYTES["fp32"]
# How the training program issues its dense step (the MLPs, interaction, loss and dense
# optimizer, whose shapes never change from batch to batch) on CUDA:
#   eager: op by op from Python, each paying its dispatch (what the backend runs).
#   cuda-graph: captured once and replayed as one CUDA graph (torch.cuda.graphs), as NVIDIA's
#   DLRM and TorchRec's pipelines do; the embedding ops, whose shapes follow the batch's ids,
#   stay eager. It is a property of the training program, not of the machine, so it lives in
#   the model (and `--set dense_step=cuda-graph` reaches it); a kind = "cpu" profile refuses it,
#   since the CPU has no graphs (pipeline/costs.py).
DENSE_STEPS = ("eager", "cuda-graph")


def state_values(optimizer: str, dim: int) -> int:
    """Values of optimizer state kept beside a row of `dim` values (OPTIMIZER_STATE)."""
    return {"sgd": 0, "adagrad": dim, "rowwise-adagrad": 1, "adam": 2 * dim}[optimizer]


# The backward pass of a layer computes the gradient of its input and of its weights, each as
# much work as the forward pass: training costs about 3x the forward flops.
TRAIN_FLOPS_PER_FORWARD_FLOP = 3

_REQUIRED = ("embedding_dim", "bottom_mlp", "top_mlp", "interaction", "batch_size", "dtype",
             "optimizer")
_OPTIONAL = ("name", "description", "source", "mlp_precision", "dense_step", "pooling",
             "multi_hot", "table_rows") + tuple(DCN_DEFAULTS)


@dataclass(frozen=True)
class ModelConfig:
    """A DLRM-style model; the keys are those of the TOML file (see the module docstring)."""

    name: str
    description: str
    source: str
    embedding_dim: int | tuple[int, ...]
    bottom_mlp: tuple[int, ...]
    top_mlp: tuple[int, ...]
    interaction: str
    dcn_layers: int | None   # dcn only (None for the other interactions)
    dcn_rank: int | None
    batch_size: int
    dtype: str
    optimizer: str
    mlp_precision: str
    dense_step: str
    pooling: int | str | tuple | None
    multi_hot: str
    table_rows: tuple[int, ...] | None

    @classmethod
    def from_dict(cls, data: dict, source: str | None = None) -> "ModelConfig":
        """Build and validate a model from the TOML layout, as load_model reads it and
        to_dict writes it."""
        if not isinstance(data, dict):
            raise OptionError(f"{source or '<dict>'}: a model is a table of keys")
        source = source or str(data.get("source", "<dict>"))
        for key in data:
            if key not in _REQUIRED + _OPTIONAL:
                raise OptionError(f"{source}: unknown key {key!r}; known keys: "
                                  f"{', '.join(_REQUIRED + _OPTIONAL)}")
        for key in _REQUIRED:
            if key not in data:
                raise OptionError(f"{source}: missing key {key}")

        def where(key):
            return f"{source}: {key}"

        dim = data["embedding_dim"]
        dim = (_positive_int(dim, where("embedding_dim")) if not isinstance(dim, list)
               else _positive_ints(dim, where("embedding_dim"), at_least=1))
        bottom = _positive_ints(data["bottom_mlp"], where("bottom_mlp"), at_least=2)
        top = _positive_ints(data["top_mlp"], where("top_mlp"), at_least=1)
        rows = data.get("table_rows")
        rows = None if rows is None else _positive_ints(rows, where("table_rows"), at_least=1)
        pooling = data.get("pooling")
        if pooling is not None:
            try:
                parse_pooling(pooling, None if rows is None else len(rows))
            except OptionError as e:
                raise OptionError(f"{where('pooling')}: {e}") from None
            pooling = tuple(pooling) if isinstance(pooling, list) else pooling
        dtype = _choice(data["dtype"], DTYPE_BYTES, where("dtype"))
        interaction = _choice(data["interaction"], INTERACTIONS, where("interaction"))
        dcn = {}
        for key, default in DCN_DEFAULTS.items():
            if interaction == "dcn":
                dcn[key] = _positive_int(data.get(key, default), where(key))
            elif key in data:
                raise OptionError(f"{where(key)} is for interaction = \"dcn\", not "
                                  f"{interaction!r}; drop it or use the dcn interaction")
            else:
                dcn[key] = None
        model = cls(
            name=str(data.get("name", Path(source).stem)),
            description=str(data.get("description", "")),
            source=source,
            embedding_dim=dim,
            bottom_mlp=bottom,
            top_mlp=top,
            interaction=interaction,
            **dcn,
            batch_size=_positive_int(data["batch_size"], where("batch_size")),
            dtype=dtype,
            optimizer=_choice(data["optimizer"], OPTIMIZER_STATE, where("optimizer")),
            mlp_precision=_choice(data.get("mlp_precision", dtype), PRECISIONS,
                                  where("mlp_precision")),
            dense_step=_choice(data.get("dense_step", "eager"), DENSE_STEPS, where("dense_step")),
            pooling=pooling,
            multi_hot=_choice(data.get("multi_hot", "independent"), MULTI_HOT,
                              where("multi_hot")),
            table_rows=rows,
        )
        if isinstance(dim, tuple) and rows is not None and len(dim) != len(rows):
            raise OptionError(f"{source}: embedding_dim lists {len(dim)} tables, table_rows "
                              f"{len(rows)}; give one dim per table")
        if model.interaction in ("dot", "dcn") and set(model._dims(1)) != {bottom[-1]}:
            raise OptionError(f"{source}: {model.interaction} interaction needs every "
                              f"embedding_dim equal to the bottom_mlp output {bottom[-1]}, got "
                              f"{data['embedding_dim']}; change them or use interaction = "
                              "\"cat\"")
        return model

    # -- sizes -------------------------------------------------------------------------------
    @property
    def num_tables(self) -> int | None:
        """The table count the model fixes (by table_rows or a per-table dim list), or None."""
        if self.table_rows is not None:
            return len(self.table_rows)
        return len(self.embedding_dim) if isinstance(self.embedding_dim, tuple) else None

    def dim(self, table: int = 0) -> int:
        if isinstance(self.embedding_dim, int):
            return self.embedding_dim
        if not 0 <= table < len(self.embedding_dim):
            raise OptionError(f"model {self.name} has {len(self.embedding_dim)} tables, "
                              f"no table {table}")
        return self.embedding_dim[table]

    def row_bytes(self, table: int = 0) -> int:
        """Bytes of one embedding row: dim x the dtype's size."""
        return self.dim(table) * DTYPE_BYTES[self.dtype]

    def optimizer_state_bytes(self, table: int = 0) -> int:
        """Bytes of optimizer state kept for one row (see OPTIMIZER_STATE)."""
        return state_values(self.optimizer, self.dim(table)) * STATE_VALUE_BYTES

    def row_bytes_with_state(self, table: int = 0) -> int:
        """Bytes that travel and are stored with a row when its optimizer state goes with it
        (a cache slot, a write-back, a CPU update)."""
        return self.row_bytes(table) + self.optimizer_state_bytes(table)

    def embedding_bytes(self, table_rows=None, optimizer_state: bool = True) -> int:
        """Memory of all tables: rows x (row bytes [+ optimizer state]). table_rows defaults to
        the model's own (a trace's table_rows can be passed instead)."""
        rows = self._rows(table_rows)
        per_row = self.row_bytes_with_state if optimizer_state else self.row_bytes
        return sum(int(r) * per_row(t) for t, r in enumerate(rows))

    # -- work ---------------------------------------------------------------------------------
    def top_mlp_input(self, num_tables: int) -> int:
        """Width of the top MLP's input: the bottom output plus the interaction's output (dcn:
        the cross network keeps its input's width, the bottom output and every embedding)."""
        bottom_out = self.bottom_mlp[-1]
        if self.interaction == "dot":
            vectors = num_tables + 1
            return bottom_out + vectors * (vectors - 1) // 2
        return bottom_out + sum(self._dims(num_tables))

    def mlp_flops(self, batch_size: int | None = None, num_tables: int | None = None) -> float:
        """Floating-point operations of one training iteration's dense part: bottom MLP,
        interaction and top MLP, forward and backward (TRAIN_FLOPS_PER_FORWARD_FLOP x forward).
        A layer of i inputs and o outputs costs 2*i*o flops per sample (multiply and add); a dot
        interaction 2*dim per pair of vectors; a dcn cross layer over width N and rank r
        2*N*r (V) + 2*r*N (W) + 3*N (add the bias, multiply by x0, add x_l). Embedding lookups
        and updates are memory work, charged elsewhere. Defaults: the model's batch size and
        table count."""
        batch_size = self.batch_size if batch_size is None else int(batch_size)
        if num_tables is None and self.num_tables is None:
            raise OptionError(f"model {self.name} does not fix its table count; pass "
                              "num_tables (the trace's)")
        num_tables = self.num_tables if num_tables is None else int(num_tables)
        top = (self.top_mlp_input(num_tables),) + self.top_mlp
        per_sample = _layer_flops(self.bottom_mlp) + _layer_flops(top)
        if self.interaction == "dot":
            vectors = num_tables + 1
            per_sample += vectors * (vectors - 1) // 2 * 2 * self.bottom_mlp[-1]
        elif self.interaction == "dcn":
            width, rank = top[0], self.dcn_rank
            per_sample += self.dcn_layers * (2 * width * rank + 2 * rank * width + 3 * width)
        return float(TRAIN_FLOPS_PER_FORWARD_FLOP * batch_size * per_sample)

    # -- checks ------------------------------------------------------------------------------
    def check_trace(self, trace) -> None:
        """Raise OptionError when the trace cannot be this model's: another table count than
        the model fixes, or an id beyond the model's table (a trace that declares a table
        larger than the model's is read to find its largest id)."""
        trace = open_trace(trace)
        expected = self.num_tables
        if expected is not None and expected != trace.num_tables:
            raise OptionError(f"model {self.name} has {expected} tables, the trace {trace.path} "
                              f"has {trace.num_tables}; make the trace with --like {self.name} "
                              "or choose a model with as many tables")
        if self.table_rows is None:
            return
        ours = np.array(self.table_rows, dtype=np.int64)
        if (trace.table_rows <= ours).all():
            return
        largest = trace.largest_ids()
        for t in np.flatnonzero(largest >= ours):
            raise OptionError(f"the trace {trace.path} looks up row {int(largest[t])} of its "
                              f"table {trace.tables[t].name}, beyond the {ours[t]:,} rows of "
                              f"model {self.name}'s table {t}; make the trace with --like "
                              f"{self.name} or give the model larger table_rows")

    def table_sizes(self, trace) -> list[int]:
        """The rows of each table: the model's when it fixes them (a trace may be a sample of
        them), else the trace's."""
        rows = self.table_rows if self.table_rows is not None else open_trace(trace).table_rows
        return [int(r) for r in rows]

    def generator_options(self) -> dict:
        """What a trace made --like this model takes from it: table rows, bag sizes and how
        bags are drawn."""
        if self.table_rows is None:
            raise OptionError(f"model {self.name} does not fix its table sizes; give the "
                              "tables' rows (--tables and --rows, or --rows-per-table)")
        pooling = list(self.pooling) if isinstance(self.pooling, tuple) else self.pooling
        return {"table_rows": list(self.table_rows),
                "pooling": DEFAULT_BAGS["pooling"] if pooling is None else pooling,
                "multi_hot": self.multi_hot}

    # -- output ------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        """The model in the TOML layout (from_dict reads it back), plus its source."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()
                if v is not None}

    def describe(self) -> str:
        """Readable multi-line text for `scratchsim model show`."""
        dims = (str(self.embedding_dim) if isinstance(self.embedding_dim, int)
                else ",".join(map(str, self.embedding_dim)))
        lines = [f"{self.name}: {self.description}" if self.description else self.name,
                 f"  embeddings  dim {dims}, {self.dtype}, {self.row_bytes()} bytes per row of "
                 f"table 0; optimizer {self.optimizer} (state {OPTIMIZER_STATE[self.optimizer]}"
                 f", {self.optimizer_state_bytes()} bytes)"]
        tables = self.num_tables
        if self.table_rows is not None:
            lines.append(f"  tables      {tables}, {sum(self.table_rows):,} rows, "
                         f"{_gib(self.embedding_bytes(optimizer_state=False))} of weights, "
                         f"{_gib(self.embedding_bytes())} with optimizer state")
        elif tables is not None:
            lines.append(f"  tables      {tables} (row counts come from the trace)")
        else:
            lines.append("  tables      as many as the trace has")
        top_input = f"{self.top_mlp_input(tables)}-" if tables is not None else "(interaction)-"
        cross = ""
        if self.interaction == "dcn":
            layers = "layer" if self.dcn_layers == 1 else "layers"
            cross = f" ({self.dcn_layers} cross {layers} of rank {self.dcn_rank})"
        lines += [f"  bottom MLP  {'-'.join(map(str, self.bottom_mlp))}",
                  f"  top MLP     {top_input}{'-'.join(map(str, self.top_mlp))} "
                  f"after {self.interaction} interaction{cross}",
                  f"  batch       {self.batch_size} samples, MLPs in {self.mlp_precision}, "
                  f"dense step {self.dense_step}"]
        if tables is not None:
            lines.append(f"  MLP work    {self.mlp_flops() / 1e9:,.1f} GFLOP per iteration "
                         "(forward and backward)")
        if self.pooling is not None:
            pooling = (",".join(map(str, self.pooling)) if isinstance(self.pooling, tuple)
                       else self.pooling)
            lines.append(f"  pooling     {pooling} per table and sample ({self.multi_hot} "
                         "multi-hot) in traces made --like it")
        lines.append(f"  from        {self.source}")
        return "\n".join(lines)

    # -- helpers -----------------------------------------------------------------------------
    def _dims(self, num_tables: int) -> tuple[int, ...]:
        if isinstance(self.embedding_dim, tuple):
            return self.embedding_dim
        return (self.embedding_dim,) * num_tables

    def _rows(self, table_rows) -> list[int]:
        rows = self.table_rows if table_rows is None else [int(r) for r in table_rows]
        if rows is None:
            raise OptionError(f"model {self.name} has no table_rows; pass the trace's "
                              "table_rows")
        if isinstance(self.embedding_dim, tuple) and len(rows) != len(self.embedding_dim):
            raise OptionError(f"model {self.name} has {len(self.embedding_dim)} tables, got row "
                              f"counts for {len(rows)}")
        return list(rows)


def _layer_flops(widths) -> int:
    """Forward flops per sample of dense layers widths[0] -> widths[1] -> ..."""
    return sum(2 * i * o for i, o in zip(widths[:-1], widths[1:]))


def _gib(nbytes: int) -> str:
    return f"{nbytes / 2**30:,.2f} GiB"


def _positive_int(value, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise OptionError(f"{where} must be a positive integer, got {value!r}")
    return value


def _positive_ints(value, where: str, at_least: int) -> tuple[int, ...]:
    if not isinstance(value, list) or len(value) < at_least:
        raise OptionError(f"{where} must be a list of at least {at_least} positive integers, "
                          f"got {value!r}")
    return tuple(_positive_int(v, where) for v in value)


def _choice(value, choices, where: str) -> str:
    if value not in choices:
        raise OptionError(f"{where} must be one of {', '.join(choices)}, got {value!r}")
    return value


# -- presets and files ---------------------------------------------------------------------------
def list_models() -> list[str]:
    """The names of the model presets."""
    return preset_names(PRESET_DIR)


def load_model(name_or_path, overrides: dict | None = None) -> ModelConfig:
    """A model from a preset name (see list_models), a TOML file or a model, with keys
    overridden ({"embedding_dim": 64}; with a dot or dcn interaction and no bottom_mlp given,
    the bottom MLP's last layer follows embedding_dim)."""
    overrides = dict(overrides or {})
    dim = overrides.get("embedding_dim")
    if isinstance(dim, int) and "bottom_mlp" not in overrides:
        base = load_preset(name_or_path, ModelConfig, PRESET_DIR, "model")
        if base.interaction in ("dot", "dcn"):
            overrides["bottom_mlp"] = [*base.bottom_mlp[:-1], dim]
    return load_preset(name_or_path, ModelConfig, PRESET_DIR, "model", overrides)


def describe_model_presets() -> str:
    """One line per preset, for `scratchsim model list`."""
    models = [load_model(n) for n in list_models()]
    width = max(len(m.name) for m in models)
    header = f"{'name':<{width}}  {'tables':>6}  {'dim':>4}  {'weights':>12}  description"
    rows = []
    for m in models:
        weights = _gib(m.embedding_bytes(optimizer_state=False)) if m.table_rows else "-"
        dim = m.embedding_dim if isinstance(m.embedding_dim, int) else "mixed"
        rows.append(f"{m.name:<{width}}  {m.num_tables or '-':>6}  {dim:>4}  {weights:>12}  "
                    f"{m.description}")
    return "\n".join([header, *rows])
