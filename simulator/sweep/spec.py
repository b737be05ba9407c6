"""Sweep specifications: a TOML file whose [axes] span a grid of points.

    [trace]                      # path = "DIR", or a generator recipe:
    generator = "zipf"           # zipf | uniform | drift
    like = "dlrm-kaggle"         # or table_rows = [...]; neither: each point's model
    batch_size = 1024            # default: the model's
    batches = 50
    seed = 1
    alpha = 1.05
    pooling = 1                  # or "1-4"

    [axes]                       # lists; the grid is their cartesian product
    policy = ["lru", "belady"]   # replay points (or mode = [...] for simulate points; neither:
    capacity = ["5%", 20000]     #   trace statistics points)

    [fixed]                      # single values for the other configuration keys
    lookahead = 4

Configuration keys: policy, mode, capacity, hardware, model, batch_size and alpha; the options
of every registered policy and mode (lookahead, victim, cache_policy, ways, ...); and any key
of the hardware profile ("link.h2d_gb_per_s", pcie_scale, ...) or the model (embedding_dim,
...), which overrides the preset's (simulate points). The whole file is validated before
anything runs; every mistake is one OptionError line that names the file, the key and what is
allowed. A point is a flat dict of configuration keys in which keys that do not apply to it (a
lookahead for an LRU cache, a hardware profile for a replay) are None, so that points that
would give the same result have the same point_id.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path

from ..caches import POLICIES
from ..caches.base import parse_capacity
from ..errors import OptionError
from ..hardware import is_hardware_key, list_hardware, load_hardware, split_overrides
from ..options import Option, declared
from ..pipeline import MODES
from ..trace.generators import (BATCH_SIZE, BATCHES, DEFAULT_BAGS, KINDS, SEED, Drift,
                                parse_pooling, pooling_recipe, table_rows_from)
from ..workload import ModelConfig, list_models, load_model

# Configuration keys every point has, in CSV column order; the options of the registered
# policies and modes follow, then the hardware and model keys the spec overrides.
CONFIG_KEYS = ("kind", "policy", "mode", "capacity", "hardware", "model", "batch_size", "alpha",
               "trace", "seed")
# Keys that change the trace itself (generated traces only).
TRACE_AXES = ("batch_size", "alpha")
DEFAULTS = {"hardware": "h100-pcie5", "model": "dlrm-kaggle"}
# The [trace] keys that are generator options, checked by their declarations.
TRACE_OPTIONS = (BATCH_SIZE, BATCHES, SEED, Option("permute", bool, True, "scatter hot rows"),
                 *Drift.options)
TRACE_KEYS = ("path", "generator", "like", "table_rows", "alpha", "pooling",
              *(o.name for o in TRACE_OPTIONS))
TOP_KEYS = ("description", "trace", "axes", "fixed")


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _capacity_ok(v) -> bool:
    try:
        parse_capacity(v)
    except OptionError:
        return False
    return True


def _name_ok(choices):
    # A preset name, or a TOML file that exists.
    return lambda v: isinstance(v, str) and (v in choices() or Path(v).is_file())


# key: (check of one value, what is allowed)
VALUE_CHECKS = {
    "policy": (lambda v: v in POLICIES, f"one of {', '.join(POLICIES)}"),
    "mode": (lambda v: v in MODES, f"one of {', '.join(MODES)}"),
    "capacity": (_capacity_ok, "a positive number of rows or a percentage such as \"20%\""),
    "hardware": (_name_ok(list_hardware),
                 f"a hardware preset ({', '.join(list_hardware())}) or a TOML file"),
    "model": (_name_ok(list_models), f"a model preset ({', '.join(list_models())}) or a TOML file"),
    "batch_size": (lambda v: _is_int(v) and v > 0, "a positive integer"),
    "alpha": (lambda v: _is_number(v) and v >= 0, "a number >= 0"),
}


def registered_options() -> dict:
    """name -> (option, owners) of every registered policy and mode, read when asked."""
    return declared([*POLICIES.values(), *MODES.values()])


def is_override(key: str) -> bool:
    """Whether a configuration (or results) column overrides a hardware or model key."""
    return key not in CONFIG_KEYS and (is_hardware_key(key) or key in {
        f.name for f in fields(ModelConfig)} - {"name", "description", "source"})


def _flat(table: dict, prefix: str = "") -> dict:
    """A TOML table's keys, with the tables of dotted keys flattened ("link.h2d_gb_per_s")."""
    out = {}
    for key, value in table.items():
        out.update(_flat(value, f"{prefix}{key}.") if isinstance(value, dict)
                   else {prefix + key: value})
    return out


def point_id(config: dict) -> str:
    """A stable hash of a point's configuration keys that apply to it (16 hex digits)."""
    text = json.dumps({k: v for k, v in config.items() if v is not None}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Point:
    """One grid point: its configuration (what the results record), the trace recipe that
    makes its trace (None for a trace given by path), and whether the model's table sizes
    give way to the trace's (a recipe with explicit table_rows)."""

    config: dict
    recipe: dict | None
    tables_from_trace: bool

    @property
    def id(self) -> str:
        return point_id(self.config)


def recipe_hash(recipe: dict) -> str:
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]


class SweepSpec:
    """A validated sweep specification; points() lists its grid."""

    def __init__(self, data: dict, source: str = "<spec>"):
        self.source = source
        self.data = data
        self._validate()

    # -- validation ----------------------------------------------------------------------------
    def _fail(self, key: str, what: str):
        raise OptionError(f"{self.source}: {key}: {what}")

    def _check_table(self, name: str, allowed=None) -> dict:
        """The table; allowed None: configuration keys, flattened (see _flat)."""
        table = self.data.get(name, {})
        if not isinstance(table, dict):
            self._fail(name, "must be a table ([" + name + "])")
        if allowed is None:
            return _flat(table)
        for key in table:
            if key not in allowed:
                self._fail(f"{name}.{key}", f"unknown key; allowed: {', '.join(allowed)}")
        return table

    def _check_value(self, where: str, key: str, value) -> None:
        """A base key's value (VALUE_CHECKS), an option's, or an override's with each hardware
        profile or model the spec uses."""
        if key in VALUE_CHECKS:
            check, allowed = VALUE_CHECKS[key]
            if not check(value):
                self._fail(where, f"{value!r} is not allowed; give {allowed}")
            return
        try:
            if key in self.options:
                self.options[key][0].check(value)
                return
            hardware, model = split_overrides({key: value})
            for name in self._values("hardware" if hardware else "model"):
                (load_hardware if hardware else load_model)(name, {key: value})
        except OptionError as e:
            self._fail(where, str(e))

    def _validate(self) -> None:
        for key in self.data:
            if key not in TOP_KEYS:
                self._fail(key, f"unknown key; allowed: {', '.join(TOP_KEYS)}")
        if "description" in self.data and not isinstance(self.data["description"], str):
            self._fail("description", "must be a string")
        self.options = registered_options()
        self.axes = self._check_table("axes")
        self.fixed = self._check_table("fixed")
        # Base keys first: options and overrides are checked with the values they take.
        for table, key in sorted([("axes", k) for k in self.axes] + [("fixed", k) for k in
                                 self.fixed], key=lambda tk: tk[1] not in VALUE_CHECKS):
            where, value = f"{table}.{key}", getattr(self, table)[key]
            if key in CONFIG_KEYS and key not in VALUE_CHECKS:
                self._fail(where, f"unknown key; allowed: {', '.join(VALUE_CHECKS)}, the "
                                  f"options {', '.join(self.options)}, hardware and model keys")
            if table == "fixed" and isinstance(value, list):
                self._fail(where, "must be a single value (lists go in [axes])")
            if table == "fixed" and key in self.axes:
                self._fail(where, "is also an axis; give it in one place")
            if table == "axes" and (not isinstance(value, list) or not value):
                self._fail(where, "must be a non-empty list of values")
            for v in value if table == "axes" else [value]:
                self._check_value(where, key, v)
            if table == "axes" and len(set(map(repr, value))) != len(value):
                self._fail(where, "lists a value twice")
        given = set(self.axes) | set(self.fixed)
        if {"policy", "mode"} <= given:
            self._fail("policy", "a sweep replays policies or simulates modes, not both; "
                                 "use cache_policy for the cache mode's policy")
        self.kind = "replay" if "policy" in given else "simulate" if "mode" in given else "stats"
        if self.kind == "replay" and "capacity" not in given:
            self._fail("capacity", "replay points need a capacity (in [axes] or [fixed])")
        if self.kind == "simulate" and "capacity" not in given and any(
                MODES[m].uses_cache for m in self._values("mode")):
            self._fail("capacity", "modes with a cache need a capacity (in [axes] or [fixed])")
        self._validate_trace()

    def _values(self, key: str) -> list:
        if key in self.axes:
            return self.axes[key]
        return [self.fixed.get(key, DEFAULTS.get(key))]

    def _validate_trace(self) -> None:
        if "trace" not in self.data:
            self._fail("trace", "missing; give [trace] with path = \"DIR\" or generator = \"zipf\"")
        t = self._check_table("trace", TRACE_KEYS)
        self.trace = t
        if ("path" in t) == ("generator" in t):
            self._fail("trace", "give exactly one of path (a trace directory) or generator")
        if "path" in t:
            if set(t) != {"path"}:
                extra = sorted(set(t) - {"path"})
                self._fail(f"trace.{extra[0]}", "a trace given by path takes no recipe keys")
            if not isinstance(t["path"], str):
                self._fail("trace.path", "must be a string")
            # relative to the spec file, so a spec and its trace can move together
            base = Path(self.source).parent if Path(self.source).is_file() else Path()
            path = base / t["path"]
            if not (path / "meta.json").is_file():
                self._fail("trace.path", f"{path} is not a trace directory (no meta.json)")
            self.trace_path = str(path.resolve())
            for key in TRACE_AXES:
                if key in self.axes or key in self.fixed:
                    self._fail(key, "changes the trace, so it needs a generated trace, not path")
            return
        if t["generator"] not in KINDS:
            self._fail("trace.generator", f"{t['generator']!r} is not allowed; give one of "
                                          f"{', '.join(KINDS)}")
        if "like" in t and "table_rows" in t:
            self._fail("trace.like", "give like or table_rows, not both")
        if "batches" not in t:
            self._fail("trace.batches", "missing; give the number of batches to generate")
        for option in TRACE_OPTIONS:
            try:
                option.check(t.get(option.name, option.default))
            except OptionError as e:
                self._fail(f"trace.{option.name}", str(e))
        if "alpha" in t:
            a = t["alpha"]
            if not ((_is_number(a) and a >= 0) or (isinstance(a, list) and a and all(
                    _is_number(x) and x >= 0 for x in a))):
                self._fail("trace.alpha", "must be a number >= 0 or a list of them (one per table)")
        if "pooling" in t:
            try:
                parse_pooling(t["pooling"])
            except OptionError as e:
                self._fail("trace.pooling", str(e))
        if "table_rows" in t:
            rows = t["table_rows"]
            if not (isinstance(rows, list) and rows and all(_is_int(r) and r > 0 for r in rows)):
                self._fail("trace.table_rows", "must be a non-empty list of positive integers")
            self.table_rows = list(rows)
        elif "like" in t:
            self.table_rows = self._rows_like(t["like"], "trace.like")
        else:
            self.table_rows = None  # each point's model gives them
            for m in self._values("model"):
                self._rows_like(m, "model")

    def _rows_like(self, like, where: str) -> list[int]:
        """Table row counts from a model preset name, a TOML file with table_rows, or a list."""
        if isinstance(like, str) and like in list_models():
            rows = load_model(like).table_rows
            if rows is None:
                self._fail(where, f"model {like} does not fix its table sizes; give "
                                  "trace.table_rows")
            return list(rows)
        try:
            return table_rows_from(like=like)
        except (OptionError, ValueError) as e:
            self._fail(where, f"{like!r}: {e}")

    # -- the grid ------------------------------------------------------------------------------
    def _recipe(self, cfg: dict, model: ModelConfig) -> dict:
        t = self.trace
        # A trace made for each point's model draws its bags as the model does.
        shape = model.generator_options() if self.table_rows is None else DEFAULT_BAGS
        rows = self.table_rows if self.table_rows is not None else shape["table_rows"]
        pooling = t.get("pooling", shape["pooling"])
        recipe = {"generator": t["generator"], "table_rows": rows,
                  "batch_size": cfg["batch_size"], "batches": t["batches"],
                  "seed": t.get("seed", SEED.default), "alpha": cfg["alpha"],
                  "pooling": pooling_recipe(*parse_pooling(pooling, len(rows))),
                  "permute": t.get("permute", True)}
        if shape["multi_hot"] != "independent":
            recipe["multi_hot"] = shape["multi_hot"]
        if t["generator"] == "drift":
            recipe.update({o.name: t.get(o.name, o.default) for o in Drift.options})
        return recipe

    def points(self) -> list[Point]:
        """The grid in a fixed order (the last axis varies fastest), each point once."""
        keys = list(self.axes)
        overrides = [k for k in {**self.fixed, **self.axes} if k not in VALUE_CHECKS
                     and k not in self.options]
        out, seen = [], set()
        for values in itertools.product(*(self.axes[k] for k in keys)):
            cfg = dict.fromkeys([*CONFIG_KEYS, *self.options, *overrides])
            cfg.update(DEFAULTS)
            cfg.update(self.fixed)
            cfg.update(zip(keys, values))
            cfg["kind"] = self.kind
            point = self._point(cfg, overrides)
            if point.id not in seen:
                seen.add(point.id)
                out.append(point)
        return out

    def _point(self, cfg: dict, overrides: list) -> Point:
        kind = cfg["kind"]
        recipe = None
        if "path" in self.trace:
            cfg["trace"] = self.trace["path"]  # as written, so results can move with the spec
            cfg["alpha"] = cfg["batch_size"] = None
        else:
            # The point's model, with the spec's overrides of its keys (a pooling axis shapes
            # the trace, not only the model).
            model = load_model(cfg["model"], split_overrides(
                {k: cfg[k] for k in overrides if cfg[k] is not None})[1])
            if cfg["batch_size"] is None:
                cfg["batch_size"] = self.trace.get("batch_size", model.batch_size)
            if cfg["alpha"] is None:
                cfg["alpha"] = self.trace.get("alpha", 1.05)
            recipe = self._recipe(cfg, model)
            cfg["trace"] = recipe_hash(recipe)
            cfg["seed"] = recipe["seed"]
        # Keys that do not apply to this point are None (see the module docstring).
        model_makes_trace = recipe is not None and self.table_rows is None
        owner = {"replay": POLICIES.get(cfg["policy"]), "simulate": MODES.get(cfg["mode"])}
        given = {name: cfg[name] for name in self.options if cfg[name] is not None}
        own = owner[kind].resolve_options(given, strict=False) if owner.get(kind) else {}
        cfg.update({name: own.get(name) for name in self.options})  # the owner's, or None
        if kind != "simulate":
            for k in ("mode", "hardware", *overrides):
                cfg[k] = None
            if not model_makes_trace:
                cfg["model"] = None
        if kind == "stats":
            cfg["policy"] = cfg["capacity"] = None
        elif kind == "simulate":
            cfg["policy"] = None
            if not MODES[cfg["mode"]].uses_cache:
                cfg["capacity"] = None
        return Point(cfg, recipe, tables_from_trace="table_rows" in self.trace)


def load_spec(path) -> SweepSpec:
    """Read and validate a sweep spec (OptionError naming the file and key on any mistake)."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise OptionError(f"{path}: no such sweep spec") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise OptionError(f"{path}: not valid TOML ({e})") from None
    return SweepSpec(data, str(path))


__all__ = ["CONFIG_KEYS", "Point", "SweepSpec", "is_override", "load_spec", "point_id",
           "recipe_hash", "registered_options"]
