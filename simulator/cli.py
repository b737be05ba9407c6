"""The scratchsim command line: a thin layer over the Python API.

Every command prints a readable table by default and JSON with --json. Errors the user can
fix print one line and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import sys

import simulator as sim
from .errors import OptionError, SimulatorError

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit status 2) like every other error."""

    def error(self, message):
        raise OptionError(f"{self.prog}: {message} (see '{self.prog} --help')")


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if v <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {v}")
    return v


def _non_negative_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {v}")
    return v


def _int_list(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of integers") from None


def _float_list(text: str) -> list[float] | float:
    try:
        vals = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number or a comma-separated list") from None
    return vals[0] if len(vals) == 1 else vals


def _emit(data: dict, as_json: bool, text: str) -> None:
    if as_json:
        print(json.dumps(data, indent=2))
    else:
        print(text)


# -- trace ------------------------------------------------------------------------------------
def _cmd_trace_generate(a) -> None:
    rows = sim.table_rows_from(tables=a.tables, rows=a.rows, rows_per_table=a.rows_per_table,
                               like=a.like)
    trace = sim.generate(a.kind, a.output, rows, batch_size=a.batch_size, num_batches=a.batches,
                         seed=a.seed, alpha=a.alpha, pooling=a.pooling, permute=not a.no_permute,
                         hot_fraction=a.hot_fraction, hot_share=a.hot_share,
                         drift_batches=a.drift_batches)
    _emit(trace.meta, a.json, sim.describe_trace(trace))


def _cmd_trace_import(a) -> None:
    common = dict(batch_size=a.batch_size)
    if a.source == "criteo":
        trace = sim.import_criteo(a.files, a.output, max_rows_per_table=a.max_rows_per_table,
                                  **common)
    elif a.source == "csv":
        trace = sim.import_csv(a.file, a.output, columns=a.columns.split(","), sep=a.sep,
                               header=a.header, sort_by=a.sort_by, **common)
    elif a.source == "ids":
        trace = sim.import_ids(a.file, a.output, **common)
    else:
        trace = sim.import_dlrm_pt(a.files, a.output, **common)
    _emit(trace.meta, a.json, sim.describe_trace(trace))


def _cmd_trace_stats(a) -> None:
    stats = sim.trace_stats(sim.open_trace(a.trace))
    _emit(stats.to_dict(), a.json, stats.format())


def _cmd_demo(a) -> None:
    sim.demo(a.output, print_fn=print)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="scratchsim", description=__doc__.splitlines()[0])
    p.add_argument("--version", action="version", version=f"scratchsim {sim.__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    trace = sub.add_parser("trace", help="make, import and describe traces")
    tsub = trace.add_subparsers(dest="trace_command", required=True, parser_class=_Parser)

    g = tsub.add_parser("generate", help="generate a seeded synthetic trace")
    g.add_argument("kind", choices=["zipf", "uniform", "drift"])
    g.add_argument("--tables", type=_positive_int, help="number of tables (with --rows)")
    g.add_argument("--rows", type=_positive_int, help="rows of every table")
    g.add_argument("--rows-per-table", type=_int_list, metavar="R1,R2,...",
                   help="rows of each table")
    g.add_argument("--like", metavar="MODEL",
                   help="take the table row counts of a model: a preset name, a TOML file "
                        "with table_rows = [...], or a list R1,R2,...")
    g.add_argument("--alpha", type=_float_list, default=1.05,
                   help="Zipf exponent, one for all tables or A1,A2,... (default 1.05)")
    g.add_argument("--pooling", default="1", help="bag size P, or LO-HI drawn per bag (default 1)")
    g.add_argument("--hot-fraction", type=float, default=0.05,
                   help="drift: fraction of each table's rows in the hot set (default 0.05)")
    g.add_argument("--hot-share", type=float, default=0.9,
                   help="drift: fraction of lookups that go to the hot set (default 0.9)")
    g.add_argument("--drift-batches", type=_positive_int, default=100,
                   help="drift: batches for the hot set to move by its own size (default 100)")
    g.add_argument("--no-permute", action="store_true",
                   help="keep rank order: row 0 is the hottest (default: scattered)")
    g.add_argument("--batch-size", type=_positive_int, required=True)
    g.add_argument("--batches", type=_positive_int, required=True)
    g.add_argument("--seed", type=_non_negative_int, required=True)
    g.add_argument("-o", "--output", required=True, metavar="DIR")
    g.add_argument("--json", action="store_true")
    g.set_defaults(func=_cmd_trace_generate)

    imp = tsub.add_parser("import", help="import a dataset as a trace")
    isub = imp.add_subparsers(dest="source", required=True, parser_class=_Parser)
    c = isub.add_parser("criteo", help="Criteo Kaggle/Terabyte TSV (labelled or test layout)")
    c.add_argument("files", nargs="+", metavar="FILE")
    c.add_argument("--max-rows-per-table", type=_positive_int, metavar="M",
                   help="hash ids modulo M-1 (row 0 is kept for missing values), as DLRM's "
                        "max_ind_range; default: dense numbering in first-seen order")
    v = isub.add_parser("csv", help="categorical columns of a CSV (Avazu, MovieLens, Taobao style)")
    v.add_argument("file", metavar="FILE")
    v.add_argument("--columns", required=True, metavar="C1,C2,...",
                   help="the categorical columns (names with --header, else 0-based numbers)")
    v.add_argument("--sep", default=",", help="field separator (default ','; 'tab' for a tab)")
    v.add_argument("--header", action="store_true", help="the first line names the columns")
    v.add_argument("--sort-by", metavar="COL", help="order the samples by this (time) column")
    i = isub.add_parser("ids", help="a flat stream of row ids in a .npy file (one table)")
    i.add_argument("file", metavar="FILE.npy")
    d = isub.add_parser("dlrm-pt", help="Meta dlrm_datasets .pt files (indices, offsets, lengths)")
    d.add_argument("files", nargs="+", metavar="FILE.pt")
    for sp, need_batch in ((c, True), (v, True), (i, True), (d, False)):
        sp.add_argument("--batch-size", type=_positive_int, required=need_batch,
                        help=None if need_batch else "default: each file is one batch")
        sp.add_argument("-o", "--output", required=True, metavar="DIR")
        sp.add_argument("--json", action="store_true")
        sp.set_defaults(func=_cmd_trace_import)

    s = tsub.add_parser("stats", help="statistics of a trace")
    s.add_argument("trace", metavar="DIR")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=_cmd_trace_stats)

    demo = sub.add_parser("demo", help="the main job on generated data")
    demo.add_argument("-o", "--output", default="scratchsim-out", metavar="DIR")
    demo.set_defaults(func=_cmd_demo)
    return p


def main(argv=None) -> int:
    try:
        args = build_parser().parse_args(argv)
        args.func(args)
    except SimulatorError as e:
        print(f"scratchsim: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("scratchsim: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    return 0
