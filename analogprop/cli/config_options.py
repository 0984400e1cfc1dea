"""Command-line options generated from the configuration tree (for the CLI layer only).

Flags and dests are the config.json keys' (``--beta`` -> ``beta``, ``--g-dtod`` -> ``driver_g_dtod``), so
command lines keep their meaning and the options given read back as config.json keys.  Every default is None:
an option that was not given is not an override, and the tree's default (shown in ``--help``) applies.
"""
from __future__ import annotations

import argparse

from ..config.checks import Choice, Flag, Number, Numbers
from ..config.files import combine, load_toml, merge
from ..config.tree import RunConfig, flatten

_GROUPS = {s.NAME: s.TITLE for s in RunConfig.SECTIONS.values()}


def _floats(text):
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


#: what ``--opamp-gain none`` and the like parse to: the value none of an optional setting, given explicitly
_NONE = "none"


def or_none(kind):
    """An argparse type: ``kind``, or the word none for an optional setting."""
    def parse(text):
        return _NONE if text.strip().lower() == _NONE else kind(text)
    parse.__name__ = kind.__name__  # argparse names the type in its message ("invalid float value")
    return parse


def _help(key) -> str:
    m, check = key.meta, key.meta["check"]
    if isinstance(check, Flag):
        return (m["cli_help"] or m["help"]).replace("%", "%%")
    extra = [] if isinstance(check, Choice) and not check.aliases else [check.accepts]
    if key.default is not None:
        default = ",".join(f"{v:g}" for v in key.default) if isinstance(key.default, tuple) else key.default
        extra.append(f"default {default}")
    text = f"{m['help']} ({m['unit']})" if m["unit"] else m["help"]
    return (f"{text} [{'; '.join(extra)}]" if extra else text).replace("%", "%%")


def _group(key) -> str:
    return key.section or key.meta["after"].split(".")[0]


def add_arguments(parser, sections=None, config_file=False) -> None:
    """Add the options of the tree's settings to ``parser``, one argument group per section (``sections``:
    names of the sections to add, default all; ``seed`` goes with ``model``).  ``config_file`` adds
    ``--config FILE.toml`` (dest ``config_file``), read by :func:`config_from_args` (and, to resume a run,
    :func:`given_from_args`)."""
    wanted = list(_GROUPS) if sections is None else list(sections)
    unknown = sorted(set(wanted) - set(_GROUPS))
    if unknown:
        raise ValueError(f"unknown sections {unknown} (known: {', '.join(_GROUPS)})")
    groups = {}
    if config_file:
        parser.add_argument("--config", dest="config_file", metavar="FILE.toml",
                            help="settings from a TOML file ([data], [model], [training], ... sections; see "
                                 "experiments/*/config.toml); options given on the command line override them. "
                                 "With --resume the file's settings count as given on the command line: they "
                                 "must equal the saved run's, except those a resumed run may change")
    for key in RunConfig.keys():
        name = _group(key)
        if name not in wanted:
            continue
        if name not in groups:
            groups[name] = parser.add_argument_group(_GROUPS[name])
        check = key.meta["check"]
        kw = {"dest": key.flat, "help": _help(key), "default": None}
        if isinstance(check, Flag):
            kw["action"] = "store_false" if key.default is True else "store_true"
        else:
            if isinstance(check, Numbers):
                kw["type"] = _floats
            elif isinstance(check, Number):
                kw["type"] = or_none(check.kind) if key.meta["optional"] else check.kind
            if isinstance(check, Choice) and not check.aliases:
                kw["choices"] = check.choices
            if key.meta["metavar"]:
                kw["metavar"] = key.meta["metavar"]
        groups[name].add_argument(key.flag, **kw)


def overrides_from_args(args) -> dict:
    """The settings given on the command line, as a nested dict (a layer for :func:`~.files.merge`)."""
    given = vars(args)
    out = {}
    for key in RunConfig.keys():
        value = given.get(key.flat)
        if value is None:
            continue
        if value == _NONE:
            value = None
        if key.section:
            out.setdefault(key.section, {})[key.name] = value
        else:
            out[key.name] = value
    return out


def _layers(args) -> list:
    path = getattr(args, "config_file", None)
    return [load_toml(path)] if path else []


def config_from_args(args) -> RunConfig:
    """Defaults < ``--config`` file < options given on the command line."""
    return merge(*_layers(args), overrides_from_args(args))


def given_from_args(args) -> dict:
    """Only the settings given (``--config`` file < command line), as config.json keys, no defaults: what a
    resumed run may change (``analogprop.runs.training.resumed_config``)."""
    return flatten(combine(*_layers(args), overrides_from_args(args)))
