"""The scratchsim command line: a thin layer over the Python API.

Every command prints a readable table by default and JSON with --json. Errors the user can
fix print one line and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import sys

import simulator as sim
from ._atomic import output_path
from .backend.validation import ROUNDS
from .caches import POLICIES
from .caches.scratchpipe import LOOKAHEAD
from .errors import OptionError, SimulatorError
from .hardware import split_overrides
from .options import Option, add_flags, flag_values, parse_setting
from .pipeline import MODES
from .trace.generators import BATCHES, BATCH_SIZE, DEFAULT_BAGS, MULTI_HOT, SEED, Drift
from .workload.model import OPTIMIZER_STATE

EXIT_USAGE = 2
EXIT_FAILED = 1  # a command that ran and found its check failed (validate's targets)


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit status 2) like every other error."""

    def error(self, message):
        raise OptionError(f"{self.prog}: {message} (see '{self.prog} --help')")


_positive_int = Option("", int, None, "", minimum=1).parse


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


def _command(sub, name: str, help: str, func, json: bool = True):
    """A subcommand that runs func(args); with json, its --json flag."""
    parser = sub.add_parser(name, help=help)
    if json:
        parser.add_argument("--json", action="store_true")
    parser.set_defaults(func=func)
    return parser


def _emit(data: dict, as_json: bool, text: str) -> None:
    if as_json:
        print(json.dumps(data, indent=2))
    else:
        print(text)


# -- trace ------------------------------------------------------------------------------------
def _cmd_trace_generate(a) -> None:
    like, shape = a.like, dict(DEFAULT_BAGS)
    if like is not None and like in sim.list_models():
        shape = sim.load_model(like).generator_options()
        like = shape.pop("table_rows")
    rows = sim.table_rows_from(tables=a.tables, rows=a.rows, rows_per_table=a.rows_per_table,
                               like=like)
    trace = sim.generate(a.kind, a.output, rows, batch_size=a.batch_size, num_batches=a.batches,
                         seed=a.seed, alpha=a.alpha,
                         pooling=shape["pooling"] if a.pooling is None else a.pooling,
                         multi_hot=a.multi_hot or shape["multi_hot"], permute=not a.no_permute,
                         **flag_values(a, [Drift]))
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


def _cmd_trace_verify(a) -> None:
    report = sim.verify_trace(a.trace, show_progress=not a.json)
    _emit(report.to_dict(), a.json, report.format())
    if not report.ok:
        raise report.error()


def _cmd_demo(a) -> None:
    sim.demo(a.output, print_fn=print)


# -- cache replay and miss-ratio curve ------------------------------------------------------
# The flags of the policies' and modes' options are made from the registries when the parser
# is built. Only the options given are passed on: a policy that does not take one says so.


def _format_value(value) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, dict):
        return " ".join(f"{k}={v}" for k, v in value.items()) or "-"
    return str(value)


def _cmd_replay(a) -> None:
    params = flag_values(a, POLICIES.values())
    per_batch = output_path(a.per_batch) if a.per_batch else None
    result = sim.replay(a.trace, policy=a.policy, capacity=a.capacity,
                        per_batch=True if per_batch else None, **params)
    if per_batch:
        result.write_per_batch_csv(per_batch)
    d = result.to_dict()
    width = max(map(len, d))
    _emit(d, a.json, "\n".join(f"{k.replace('_', ' '):<{width}}  {_format_value(v)}"
                               for k, v in d.items()))


def _cmd_mrc(a) -> None:
    plot = output_path(a.plot) if a.plot else None
    curve = sim.mrc(a.trace)
    if plot:
        sim.plot_mrc(curve, plot)
    _emit(curve.to_dict(), a.json, curve.format())


def _add_cache_commands(sub) -> None:
    r = _command(sub, "replay", "replay a trace through a cache policy", _cmd_replay)
    r.add_argument("trace", metavar="DIR")
    r.add_argument("--policy", required=True, metavar="P", help=f"one of {', '.join(POLICIES)}")
    r.add_argument("--capacity", required=True, metavar="N|X%",
                   help="rows, or a percentage of the trace's distinct rows")
    add_flags(r, POLICIES.values())
    r.add_argument("--per-batch", metavar="FILE.csv", help="write per-batch statistics")

    m = _command(sub, "mrc", "the LRU miss-ratio curve at every capacity, in one pass", _cmd_mrc)
    m.add_argument("trace", metavar="DIR")
    m.add_argument("--plot", metavar="FILE.png", help="draw the curve to an image")


# -- scratchpad sizing -------------------------------------------------------------------------
def _cmd_min_capacity(a) -> None:
    rows = sim.min_capacity(a.trace, a.lookahead)
    _emit({"trace": a.trace, "lookahead": a.lookahead, "min_capacity": rows}, a.json,
          f"minimum scratchpad capacity for lookahead {a.lookahead}: {rows:,} rows")


def _add_min_capacity_command(sub) -> None:
    c = _command(sub, "min-capacity",
                 "the smallest scratchpad that ScratchPipe with a lookahead can use",
                 _cmd_min_capacity)
    c.add_argument("trace", metavar="DIR")
    c.add_argument("--lookahead", type=LOOKAHEAD.parse, required=True, metavar="W",
                   help=LOOKAHEAD.help)


# -- timing: hardware, models and the training pipeline ---------------------------------------
def _cmd_hardware_list(a) -> None:
    profiles = [sim.load_hardware(n).to_dict() for n in sim.list_hardware()]
    _emit({"hardware": profiles}, a.json, sim.describe_hardware_presets())


def _cmd_hardware_show(a) -> None:
    profile = sim.load_hardware(a.name)
    _emit(profile.to_dict(), a.json, profile.describe())


def _cmd_model_list(a) -> None:
    models = [sim.load_model(n).to_dict() for n in sim.list_models()]
    _emit({"models": models}, a.json, sim.describe_model_presets())


def _cmd_model_show(a) -> None:
    model = sim.load_model(a.name)
    _emit(model.to_dict(), a.json, model.describe())


def _add_set_flag(parser, hardware: bool) -> None:
    where = ("the hardware profile's (link.*, cpu.*, gpu.*, kind, pcie_scale, dram_scale, "
             "hbm_scale) or the model's (the others)" if hardware else "the model's")
    parser.add_argument("--set", action="append", type=parse_setting, metavar="KEY=VALUE",
                        help=f"override a key of {where} TOML layout; VALUE is a TOML value "
                             "(repeat for more keys)")


def _cmd_simulate(a) -> None:
    timeline = output_path(a.timeline) if a.timeline else None
    hardware, model = split_overrides(dict(a.set or ()))
    result = sim.simulate(a.trace, mode=a.mode, hardware=sim.load_hardware(a.hardware, hardware),
                          model=sim.load_model(a.model, model), capacity=a.capacity,
                          ignore_capacity=a.ignore_capacity, **flag_values(a, MODES.values()))
    if timeline:
        result.write_timeline_csv(timeline)
    _emit(result.to_dict(), a.json, result.format())


def _add_timing_commands(sub) -> None:
    for noun, what, list_fn, show_fn in (
            ("hardware", "hardware profiles", _cmd_hardware_list, _cmd_hardware_show),
            ("model", "model configurations", _cmd_model_list, _cmd_model_show)):
        cmd = sub.add_parser(noun, help=f"list and show {what}")
        csub = cmd.add_subparsers(dest=f"{noun}_command", required=True, parser_class=_Parser)
        _command(csub, "list", f"the {what} presets", list_fn)
        show = _command(csub, "show", f"one of the {what}: a preset name or a TOML file",
                        show_fn)
        show.add_argument("name", metavar="NAME|FILE")

    s = _command(sub, "simulate", "predict training time in one placement mode", _cmd_simulate)
    s.add_argument("trace", metavar="DIR")
    s.add_argument("--mode", required=True, choices=list(MODES))
    s.add_argument("--hardware", required=True, metavar="NAME|FILE")
    s.add_argument("--model", required=True, metavar="NAME|FILE")
    _add_set_flag(s, hardware=True)
    s.add_argument("--capacity", metavar="N|X%",
                   help="cache or scratchpad rows, or a percentage of the trace's distinct rows")
    add_flags(s, MODES.values())
    s.add_argument("--ignore-capacity", action="store_true",
                   help="simulate even when the tables or the cache do not fit in memory")
    s.add_argument("--timeline", metavar="FILE.csv", help="write every stage's start and end")


# -- sweeps and figures ---------------------------------------------------------------------
def _cmd_sweep(a) -> None:
    results = sim.run_sweep(a.spec, a.output, workers=a.workers, dask=a.dask)
    failed = int(results["error"].notna().sum())
    print(f"{a.output}: {len(results)} points ({failed} infeasible)")


def _cmd_figures(a) -> None:
    for path in sim.make_figures(a.results, a.output, only=a.only.split(",") if a.only else None):
        print(path)


def _add_sweep_commands(sub) -> None:
    s = _command(sub, "sweep", "run a design-space sweep (resumes where it stopped)", _cmd_sweep,
                 json=False)
    s.add_argument("spec", metavar="SPEC.toml")
    s.add_argument("-o", "--output", required=True, metavar="RESULTS.csv")
    s.add_argument("--workers", type=_positive_int, metavar="N",
                   help="worker processes (default: the number of CPUs)")
    s.add_argument("--dask", metavar="ADDRESS|local",
                   help="run on a Dask cluster: a scheduler address, or 'local' to start one")
    f = _command(sub, "figures", "paper-style figures (PNG and PDF) from a results file",
                 _cmd_figures, json=False)
    f.add_argument("results", metavar="RESULTS.csv")
    f.add_argument("-o", "--output", required=True, metavar="DIR")
    f.add_argument("--only", metavar="NAME,...",
                   help="just these figures: hit_rate, breakdown, speedup, lookahead, pcie, "
                        "batch_dim, gantt, working_set (default: all the results hold data for)")


# -- the real backend -------------------------------------------------------------------------
def _cmd_train(a) -> None:
    hardware, model = split_overrides(dict(a.set or ()))
    if hardware:
        raise OptionError(f"train --set takes model keys only, not {', '.join(hardware)}")
    from .backend import backend_model
    model = sim.load_model(backend_model(a.trace, a.model), model) if model else a.model
    result = sim.train(a.trace, a.mode, device=a.device, iterations=a.iterations,
                       capacity=a.capacity, optimizer=a.optimizer, model=model, lr=a.lr,
                       seed=a.seed, **flag_values(a, MODES.values()))
    if a.save_weights:
        sim.save_weights(result.weights, a.save_weights)
    _emit(result.to_dict(), a.json, result.format())


def _cmd_calibrate(a) -> None:
    profile = sim.calibrate(output_path(a.output), device=a.device, quick=a.quick)
    _emit(profile, a.json, sim.load_hardware(a.output).describe())


def _cmd_validate(a) -> int:
    from .backend.validation import format_summary
    progress = None if a.json else (lambda line: print(line, file=sys.stderr, flush=True))
    summary = sim.validate(output_path(a.output), device=a.device, profile=a.profile,
                           quick=a.quick, seed=a.seed, trace=a.trace, model=a.model,
                           threads=a.threads, rounds=a.rounds, progress=progress)
    _emit(summary, a.json, format_summary(summary, a.output))
    return 0 if summary["passed"] else EXIT_FAILED


def _add_backend_commands(sub) -> None:
    t = _command(sub, "train", "train a DLRM-like model for real (PyTorch) in one mode",
                 _cmd_train)
    t.add_argument("trace", metavar="DIR")
    t.add_argument("--mode", required=True, choices=list(MODES))
    t.add_argument("--device", required=True, choices=["cpu", "cuda"])
    t.add_argument("--iterations", type=_positive_int, metavar="N",
                   help="train on the first N batches (default: all)")
    t.add_argument("--capacity", metavar="N|X%",
                   help="cache or scratchpad rows, or a percentage of the trace's distinct rows")
    add_flags(t, MODES.values())
    t.add_argument("--optimizer", choices=list(OPTIMIZER_STATE), default="sgd",
                   help="the embeddings' optimizer, with the state kept beside each row: "
                        + ", ".join(f"{name} ({state})" for name, state
                                    in OPTIMIZER_STATE.items())
                        + "; the MLPs take torch.optim's SGD, Adagrad (for either Adagrad) or "
                          "Adam (default sgd)")
    t.add_argument("--model", metavar="NAME|FILE",
                   help="a model preset or TOML file (default: a small dot-interaction model)")
    _add_set_flag(t, hardware=False)
    t.add_argument("--lr", type=float, default=0.05, help="learning rate (default 0.05)")
    t.add_argument("--seed", type=SEED.parse, default=SEED.default)
    t.add_argument("--save-weights", metavar="FILE.npz",
                   help="write every weight, under stable names, when training ends")

    c = _command(sub, "calibrate", "measure this machine's hardware profile (PyTorch)",
                 _cmd_calibrate)
    c.add_argument("--device", required=True, choices=["cpu", "cuda"])
    c.add_argument("-o", "--output", required=True, metavar="PROFILE.toml")
    c.add_argument("--quick", action="store_true", help="smaller buffers, fewer repeats")

    v = _command(sub, "validate", "train a grid of configurations for real and compare with "
                                  "the simulator's predictions", _cmd_validate)
    v.add_argument("--device", required=True, choices=["cpu", "cuda"])
    v.add_argument("--profile", metavar="NAME|FILE",
                   help="the hardware profile the simulator predicts with (default: calibrate "
                        "this machine first)")
    v.add_argument("--quick", action="store_true", help="a smaller trace and grid")
    v.add_argument("--trace", metavar="DIR",
                   help="held-out check: the five modes on this trace instead of the grid")
    v.add_argument("--model", metavar="NAME|FILE",
                   help="with --trace: the model to train and simulate (default: the "
                        "backend's small dot-interaction model)")
    v.add_argument("--threads", type=_positive_int, metavar="N",
                   help="torch threads, pinned for the whole run (default: 1 on cpu, torch's "
                        "own on cuda)")
    v.add_argument("--rounds", type=_positive_int, default=ROUNDS, metavar="R",
                   help=f"measure every configuration in R rounds, interleaved in a seeded "
                        f"order, calibrating again in each (default {ROUNDS})")
    v.add_argument("--seed", type=SEED.parse, default=SEED.default)
    v.add_argument("-o", "--output", required=True, metavar="DIR")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="scratchsim", description=__doc__.splitlines()[0])
    p.add_argument("--version", action="version", version=f"scratchsim {sim.__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    trace = sub.add_parser("trace", help="make, import and describe traces")
    tsub = trace.add_subparsers(dest="trace_command", required=True, parser_class=_Parser)

    g = _command(tsub, "generate", "generate a seeded synthetic trace", _cmd_trace_generate)
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
    g.add_argument("--pooling", help="bag size P, LO-HI drawn per bag, or one per table "
                   "P1,P2,... (default: the --like model's multi-hot sizes, else 1)")
    g.add_argument("--multi-hot", choices=MULTI_HOT,
                   help="independent: every id of a bag drawn; mlperf: the first drawn, the "
                        "others fixed uniform companions of it, as MLPerf DLRM-DCNv2's "
                        "multi-hot Criteo (default: the --like model's, else independent)")
    add_flags(g, [Drift])
    g.add_argument("--no-permute", action="store_true",
                   help="keep rank order: row 0 is the hottest (default: scattered)")
    for option in (BATCH_SIZE, BATCHES, SEED):
        g.add_argument(f"--{option.name.replace('_', '-')}", type=option.parse, required=True,
                       metavar="N", help=option.help)
    g.add_argument("-o", "--output", required=True, metavar="DIR")

    imp = tsub.add_parser("import", help="import a dataset as a trace")
    isub = imp.add_subparsers(dest="source", required=True, parser_class=_Parser)
    c = isub.add_parser("criteo", help="Criteo Kaggle/Terabyte TSV (labelled or test layout)")
    c.add_argument("files", nargs="+", metavar="FILE",
                   help="one or more files (day_0 day_1 ...), read in the order given into one "
                        "trace; each may be gzip, bzip2, xz or zstd compressed")
    c.add_argument("--max-rows-per-table", type=_positive_int, metavar="M",
                   help="every table has M rows and value v goes to row v mod M, as DLRM's "
                        "max_ind_range; default: dense numbering in first-seen order")
    v = isub.add_parser("csv", help="categorical columns of a CSV (Avazu, MovieLens, Taobao style)")
    v.add_argument("file", metavar="FILE", help="may be gzip, bzip2, xz or zstd compressed")
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

    for name, text, func in (
            ("stats", "statistics of a trace", _cmd_trace_stats),
            ("verify", "check a trace against its checksums and structure", _cmd_trace_verify)):
        _command(tsub, name, text, func).add_argument("trace", metavar="DIR")

    _add_cache_commands(sub)
    _add_min_capacity_command(sub)
    _add_timing_commands(sub)
    _add_sweep_commands(sub)
    _add_backend_commands(sub)

    demo = _command(sub, "demo", "the main job on generated data", _cmd_demo, json=False)
    demo.add_argument("-o", "--output", default="scratchsim-out", metavar="DIR")
    return p


def main(argv=None) -> int:
    try:
        args = build_parser().parse_args(argv)
        status = args.func(args)
    except SimulatorError as e:
        print(f"scratchsim: error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("scratchsim: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    return status or 0
