"""Options declared by their owner: each cache policy and training mode lists its options once
(name, type, default, allowed values, help), as Ramulator 2's param<T>(...).default_val(...)
and libCacheSim's DEFAULT_PARAMS do. Validation, the CLI flags, the sweep's keys and checks,
the demo and the backend are made from these declarations; an option several owners share
(lookahead) is one Option object that each of them lists.
"""

from __future__ import annotations

import argparse
import tomllib
from dataclasses import dataclass
from typing import Callable, ClassVar

import numpy as np

from .errors import OptionError


@dataclass(frozen=True)
class Option:
    name: str
    type: type
    default: object
    help: str
    choices: tuple | Callable[[], list] | None = None  # a callable is read when asked
    minimum: int | None = None
    maximum: int | None = None

    def allowed(self) -> tuple | None:
        return tuple(self.choices()) if callable(self.choices) else self.choices

    def check(self, value, owner: str = ""):
        """The value, checked (None only where the default is None). An option without a name
        is a flag's type (the flag names itself)."""
        where = f"{owner}: " if owner else ""
        subject = f"{where}{self.name} " if self.name else where
        if value is None and self.default is None:
            return None
        allowed = self.allowed()
        if allowed is not None:
            if value not in allowed:
                raise OptionError(f"{subject}{value!r} is not one of "
                                  f"{', '.join(map(str, allowed))}")
            return value
        kinds = {int: (int, np.integer), float: (int, float, np.integer, np.floating)}
        if (isinstance(value, bool) != (self.type is bool)
                or not isinstance(value, kinds.get(self.type, self.type))
                or (self.minimum is not None and value < self.minimum)
                or (self.maximum is not None and value > self.maximum)):
            raise OptionError(f"{subject}must be {self.what()}, got {value!r}")
        return self.type(value)

    def what(self) -> str:
        kind = {int: "an integer", float: "a number"}.get(self.type, f"a {self.type.__name__}")
        if self.minimum is not None and self.maximum is not None:
            return f"{kind} from {self.minimum} to {self.maximum}"
        if self.minimum == 1 and self.type is int:
            return "a positive integer"
        return kind if self.minimum is None else f"{kind} >= {self.minimum}"

    def parse(self, text: str):
        """argparse's type: the value of a flag's text."""
        try:
            value = self.type(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {self.what()}") from None
        try:
            return self.check(value)
        except OptionError as e:
            raise argparse.ArgumentTypeError(str(e)) from None


def resolve(options, values: dict, owner: str) -> dict:
    """Every option's value: the one given (checked) or its default. OptionError for an
    option the owner does not declare."""
    names = [o.name for o in options]
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise OptionError(f"{owner} takes no option {', '.join(unknown)}; its options: "
                          f"{', '.join(names) or 'none'}")
    return {o.name: o.check(values.get(o.name, o.default), owner) for o in options}


class Configurable:
    """A class that declares its options (a policy or a mode); an instance holds each
    resolved value as an attribute of the same name."""

    kind: ClassVar[str]  # "policy" or "mode", for messages
    name: ClassVar[str]
    options: ClassVar[tuple[Option, ...]] = ()

    @classmethod
    def applicable(cls, values: dict) -> tuple[Option, ...]:
        """The options that apply when these are given: all of them, unless the value of one
        decides which others apply (the cache mode's policy)."""
        return cls.options

    @classmethod
    def resolve_options(cls, values: dict, strict: bool = True) -> dict:
        """The applicable options' values, given or by default; not strict: values of options
        that do not apply are dropped instead of refused (a sweep gives one to every point)."""
        options = cls.applicable(values)
        if not strict:
            values = {o.name: values[o.name] for o in options if o.name in values}
        return resolve(options, values, f"{cls.kind} {cls.name}")

    def __init__(self, **values):
        self._settings = self.resolve_options(values)
        self.__dict__.update(self._settings)

    def settings(self) -> dict:
        """The options as they were resolved (recorded with every result)."""
        return dict(self._settings)


def declared(classes) -> dict[str, tuple[Option, list[str]]]:
    """name -> (the option, the names of the classes that declare it), in declaration order."""
    out: dict[str, tuple[Option, list[str]]] = {}
    for cls in classes:
        for o in cls.options:
            out.setdefault(o.name, (o, []))[1].append(cls.name)
    return out


def add_flags(parser, classes) -> None:
    """One --flag per option of the classes (once for an option several declare)."""
    for name, (o, owners) in declared(classes).items():
        default = "" if o.default is None else f" (default {o.default})"
        choices = o.allowed()  # argparse says "invalid choice" itself
        parser.add_argument(f"--{name.replace('_', '-')}", dest=name, choices=choices,
                            type=o.type if choices else o.parse,
                            metavar=None if choices else name.upper(),
                            help=f"{', '.join(owners)}: {o.help}{default}")


def flag_values(args, classes) -> dict:
    """The options given on the command line (flags left out keep their owner's default)."""
    return {n: getattr(args, n) for n in declared(classes) if getattr(args, n) is not None}


def parse_setting(text: str) -> tuple[str, object]:
    """KEY=VALUE (argparse's type for --set): VALUE is read as a TOML value, else as text."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=VALUE")
    try:
        return key.strip(), tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        return key.strip(), value
