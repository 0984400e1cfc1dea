"""Declarative settings: a dataclass field that carries its help text, CLI flag, unit and validator.

In the spirit of pymeasure's ``strict_range`` / ``strict_discrete_set``: each
check accepts a value of the right type (a bool is not a number, a string is
not a number, 1.5 is not an integer), returns it normalised (ints in a float
setting become floats, lists become tuples) and says what it accepts, for
error messages and ``--help`` alike.
"""
from __future__ import annotations

import math
import numbers
import os
from dataclasses import field


class Refused(Exception):
    """A value a check does not accept; the message, if any, says more than what is accepted."""


class Check:
    """Base: ``check(value)`` returns the normalised value or raises :class:`Refused`."""

    accepts = "a value"

    def __call__(self, value):
        raise NotImplementedError


def _is_bool(value) -> bool:
    return isinstance(value, bool) or (getattr(value, "dtype", None) is not None
                                       and value.dtype.kind == "b" and getattr(value, "ndim", 0) == 0)


def _bounds(low, high, low_open, high_open) -> str:
    """' in (0, 1]', ' >= 0', ...: the bounds as they follow a noun ('' when there are none)."""
    if low is not None and high is not None:
        return f" in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    if low is not None:
        return f" {'>' if low_open else '>='} {low:g}"
    if high is not None:
        return f" {'<' if high_open else '<='} {high:g}"
    return ""


class Number(Check):
    """A finite real (``kind=float``) or a whole number (``kind=int``; 2.0 passes as 2, 1.5 does not),
    optionally within bounds, each closed unless marked open."""

    def __init__(self, kind=float, low=None, high=None, low_open=False, high_open=False):
        self.kind, self.low, self.high, self.low_open, self.high_open = kind, low, high, low_open, high_open
        self.bounds = _bounds(low, high, low_open, high_open)
        self.accepts = ("an integer" if kind is int else "a finite number") + self.bounds

    def __call__(self, value):
        if _is_bool(value) or not isinstance(value, numbers.Real):
            raise Refused()
        if self.kind is int:
            if not (isinstance(value, numbers.Integral) or (math.isfinite(value) and float(value).is_integer())):
                raise Refused()
            v = int(value)
        else:
            v = float(value)
            if not math.isfinite(v):
                raise Refused()
        lo, hi = self.low, self.high
        if lo is not None and (v < lo or (self.low_open and v == lo)):
            raise Refused()
        if hi is not None and (v > hi or (self.high_open and v == hi)):
            raise Refused()
        return v


class Choice(Check):
    """One of ``choices`` (text); ``aliases`` map other spellings (or ints) to a choice."""

    def __init__(self, *choices, aliases=None):
        self.choices, self.aliases = tuple(choices), dict(aliases or {})
        self.accepts = "one of " + ", ".join(map(repr, choices))
        if self.aliases:
            self.accepts += " (also " + ", ".join(repr(a) for a in self.aliases if a not in choices) + ")"

    def __call__(self, value):
        if _is_bool(value) or not isinstance(value, (str, int)):
            raise Refused()
        key = value.strip().lower() if isinstance(value, str) else value
        if key in self.choices:
            return key
        if key in self.aliases:
            return self.aliases[key]
        raise Refused()


class Flag(Check):
    """True or false (not 0 or 1, not a string)."""

    accepts = "true or false"

    def __call__(self, value):
        if not _is_bool(value):
            raise Refused()
        return bool(value)


class Text(Check):
    """Non-empty text; a path-like object counts as its text."""

    def __init__(self, what="a non-empty text"):
        self.accepts = what

    def __call__(self, value):
        if isinstance(value, os.PathLike):
            value = os.fspath(value)
        if not isinstance(value, str) or not value.strip():
            raise Refused()
        return value


class Numbers(Check):
    """A list of numbers, each passing ``Number(float, **bounds)``: exactly ``length`` of them, or at least one."""

    def __init__(self, length=None, **bounds):
        self.item, self.length = Number(float, **bounds), length
        self.accepts = (f"{length} finite numbers{self.item.bounds}" if length else
                        f"a list of finite numbers{self.item.bounds} (at least one)")

    def __call__(self, value):
        if not isinstance(value, (list, tuple)):
            raise Refused()
        if len(value) != (self.length or len(value)) or not value:
            raise Refused(f"{len(value)} given")
        out = []
        for i, v in enumerate(value):
            try:
                out.append(self.item(v))
            except Refused:
                raise Refused(f"item {i} is {v!r}") from None
        return tuple(out)


class Architecture(Check):
    """Layer sizes text (dense ``64-32-10`` or convolutional), or a list of sizes; normalised to canonical text."""

    accepts = "an architecture such as 64-32-10 or 1x28x28-c32k5p2-10"

    def __call__(self, value):
        from ..model.conv_network import normalize_arch
        from ..errors import ConfigError

        if isinstance(value, (list, tuple)):
            if not value or any(_is_bool(v) or not isinstance(v, numbers.Integral) for v in value):
                raise Refused()
        elif not isinstance(value, str):
            raise Refused()
        try:
            return normalize_arch(value)
        except ConfigError as e:
            raise Refused(str(e)) from None


def setting(default, help, check: Check, *, unit=None, flag=None, flat=None, metavar=None, optional=False,
            cli_help=None, after=None, sparse=False):
    """A dataclass field described for validation, config files and the command line.

    ``help`` describes the setting; ``unit`` (physical units) is shown with it.  ``flag`` (CLI option)
    and ``flat`` (config.json key) default to the field's name; ``optional`` lets None through (its
    meaning is in the help); ``cli_help`` replaces the help for a negating flag such as ``--no-bias``;
    ``after`` (``section.name``) places a top-level setting after that one, in config.json and in
    the section's option group; ``sparse`` settings are written to config.json only when they differ from
    their default (runs saved before them then stay byte for byte as they were).
    """
    meta = {"help": help, "check": check, "unit": unit, "flag": flag, "flat": flat, "metavar": metavar,
            "optional": optional, "cli_help": cli_help, "after": after, "sparse": sparse}
    return field(default=default, metadata=meta)
