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

The whole file is validated before anything runs; every mistake is one OptionError line that
names the file, the key and what is allowed. A point is a flat dict of configuration keys in
which keys that do not apply to it (a lookahead for an LRU cache, a hardware profile for a
replay) are None, so that points that would give the same result have the same point_id.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import tomllib
from dataclasses import dataclass
from pathlib import Path

from ..caches import POLICIES
from ..errors import OptionError
from ..hardware import list_hardware
from ..pipeline import MODES
from ..trace.generators import KINDS, parse_pooling, table_rows_from
from ..workload import list_models, load_model

# Configuration keys a point has, in CSV column order.
CONFIG_KEYS = ("kind", "policy", "mode", "capacity", "lookahead", "victim", "cache_policy",
               "hardware", "model", "batch_size", "embedding_dim", "pcie_scale", "dram_scale",
               "hbm_scale", "alpha", "trace", "seed")
# Keys that change the trace itself (generated traces only).
TRACE_AXES = ("batch_size", "alpha")
DEFAULTS = {"lookahead": 4, "victim": "lru", "cache_policy": "lru", "hardware": "h100-pcie5",
            "model": "dlrm-kaggle", "pcie_scale": 1.0, "dram_scale": 1.0, "hbm_scale": 1.0}
# Policy options that replay() takes, per policy.
POLICY_OPTIONS = {"scratchpipe": ("lookahead", "victim"), "oracle": ("lookahead",)}
VICTIMS = ("lru", "future")
TRACE_KEYS = ("path", "generator", "like", "table_rows", "batch_size", "batches", "seed", "alpha",
              "pooling", "permute", "hot_fraction", "hot_share", "drift_batches")
TOP_KEYS = ("description", "trace", "axes", "fixed")


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _capacity_ok(v) -> bool:
    if _is_int(v):
        return v > 0
    if isinstance(v, str) and v.strip().endswith("%"):
        try:
            return float(v.strip()[:-1]) > 0
        except ValueError:
            return False
    return False


def _name_ok(choices):
    # A preset name, or a TOML file that exists.
    return lambda v: isinstance(v, str) and (v in choices() or Path(v).is_file())


# key: (check of one value, what is allowed)
VALUE_CHECKS = {
    "policy": (lambda v: v in POLICIES, f"one of {', '.join(POLICIES)}"),
    "mode": (lambda v: v in MODES, f"one of {', '.join(MODES)}"),
    "capacity": (_capacity_ok, "a positive number of rows or a percentage such as \"20%\""),
    "lookahead": (lambda v: _is_int(v) and v >= 0, "an integer >= 0"),
    "victim": (lambda v: v in VICTIMS, f"one of {', '.join(VICTIMS)}"),
    "cache_policy": (lambda v: v in POLICIES and v not in ("scratchpipe", "oracle"),
                     "a past-looking policy: lru, fifo, lfu, setassoc, static or belady"),
    "hardware": (_name_ok(list_hardware),
                 f"a hardware preset ({', '.join(list_hardware())}) or a TOML file"),
    "model": (_name_ok(list_models), f"a model preset ({', '.join(list_models())}) or a TOML file"),
    "batch_size": (lambda v: _is_int(v) and v > 0, "a positive integer"),
    "embedding_dim": (lambda v: _is_int(v) and v > 0, "a positive integer"),
    "pcie_scale": (lambda v: _is_number(v) and v > 0, "a positive number"),
    "dram_scale": (lambda v: _is_number(v) and v > 0, "a positive number"),
    "hbm_scale": (lambda v: _is_number(v) and v > 0, "a positive number"),
    "alpha": (lambda v: _is_number(v) and v >= 0, "a number >= 0"),
}


def point_id(config: dict) -> str:
    """A stable hash of a point's configuration (16 hex digits)."""
    text = json.dumps({k: config.get(k) for k in CONFIG_KEYS}, sort_keys=True)
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

    def _check_table(self, name: str, allowed) -> dict:
        table = self.data.get(name, {})
        if not isinstance(table, dict):
            self._fail(name, "must be a table ([" + name + "])")
        for key in table:
            if key not in allowed:
                self._fail(f"{name}.{key}", f"unknown key; allowed: {', '.join(allowed)}")
        return table

    def _check_value(self, where: str, key: str, value) -> None:
        check, allowed = VALUE_CHECKS[key]
        if not check(value):
            self._fail(where, f"{value!r} is not allowed; give {allowed}")

    def _validate(self) -> None:
        for key in self.data:
            if key not in TOP_KEYS:
                self._fail(key, f"unknown key; allowed: {', '.join(TOP_KEYS)}")
        if "description" in self.data and not isinstance(self.data["description"], str):
            self._fail("description", "must be a string")
        config_keys = tuple(VALUE_CHECKS)
        self.axes = self._check_table("axes", config_keys)
        self.fixed = self._check_table("fixed", config_keys)
        for key, values in self.axes.items():
            if not isinstance(values, list) or not values:
                self._fail(f"axes.{key}", "must be a non-empty list of values")
            for v in values:
                self._check_value(f"axes.{key}", key, v)
            if len(set(map(repr, values))) != len(values):
                self._fail(f"axes.{key}", "lists a value twice")
        for key, value in self.fixed.items():
            if isinstance(value, list):
                self._fail(f"fixed.{key}", "must be a single value (lists go in [axes])")
            self._check_value(f"fixed.{key}", key, value)
            if key in self.axes:
                self._fail(f"fixed.{key}", "is also an axis; give it in one place")
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
        for key in ("batches", "seed", "batch_size", "drift_batches"):
            least = 0 if key == "seed" else 1
            if key in t and not (_is_int(t[key]) and t[key] >= least):
                self._fail(f"trace.{key}", f"{t[key]!r} is not allowed; give an integer >= {least}")
        for key in ("hot_fraction", "hot_share"):
            if key in t and not _is_number(t[key]):
                self._fail(f"trace.{key}", "must be a number")
        if "permute" in t and not isinstance(t["permute"], bool):
            self._fail("trace.permute", "must be true or false")
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
    def _recipe(self, cfg: dict) -> dict:
        t = self.trace
        rows = self.table_rows if self.table_rows is not None else self._rows_like(
            cfg["model"], "model")
        recipe = {"generator": t["generator"], "table_rows": rows,
                  "batch_size": cfg["batch_size"], "batches": t["batches"],
                  "seed": t.get("seed", 0), "alpha": cfg["alpha"],
                  "pooling": list(parse_pooling(t.get("pooling", 1))),
                  "permute": t.get("permute", True)}
        if t["generator"] == "drift":
            recipe.update(hot_fraction=t.get("hot_fraction", 0.05),
                          hot_share=t.get("hot_share", 0.9),
                          drift_batches=t.get("drift_batches", 100))
        return recipe

    def points(self) -> list[Point]:
        """The grid in a fixed order (the last axis varies fastest), each point once."""
        keys = list(self.axes)
        out, seen = [], set()
        for values in itertools.product(*(self.axes[k] for k in keys)):
            cfg = {k: None for k in CONFIG_KEYS}
            cfg.update(DEFAULTS)
            cfg.update(self.fixed)
            cfg.update(zip(keys, values))
            cfg["kind"] = self.kind
            point = self._point(cfg)
            if point.id not in seen:
                seen.add(point.id)
                out.append(point)
        return out

    def _point(self, cfg: dict) -> Point:
        kind = cfg["kind"]
        recipe = None
        if "path" in self.trace:
            cfg["trace"] = self.trace["path"]  # as written, so results can move with the spec
            cfg["alpha"] = cfg["batch_size"] = None
        else:
            if cfg["batch_size"] is None:
                cfg["batch_size"] = self.trace.get("batch_size",
                                                   load_model(cfg["model"]).batch_size)
            if cfg["alpha"] is None:
                cfg["alpha"] = self.trace.get("alpha", 1.05)
            recipe = self._recipe(cfg)
            cfg["trace"] = recipe_hash(recipe)
            cfg["seed"] = recipe["seed"]
        # Keys that do not apply to this point are None (see the module docstring).
        model_makes_trace = recipe is not None and self.table_rows is None
        if kind in ("replay", "stats"):
            for k in ("mode", "cache_policy", "hardware", "embedding_dim", "pcie_scale",
                      "dram_scale", "hbm_scale"):
                cfg[k] = None
            if not model_makes_trace:
                cfg["model"] = None
        if kind == "stats":
            cfg["policy"] = cfg["capacity"] = cfg["lookahead"] = cfg["victim"] = None
        elif kind == "replay":
            options = POLICY_OPTIONS.get(cfg["policy"], ())
            cfg["lookahead"] = cfg["lookahead"] if "lookahead" in options else None
            cfg["victim"] = cfg["victim"] if "victim" in options else None
        else:
            mode = cfg["mode"]
            cfg["policy"] = None
            if mode != "scratchpipe":
                cfg["lookahead"] = cfg["victim"] = None
            if mode != "cache":
                cfg["cache_policy"] = None
            if not MODES[mode].uses_cache:
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


__all__ = ["CONFIG_KEYS", "Point", "SweepSpec", "load_spec", "point_id", "recipe_hash"]
