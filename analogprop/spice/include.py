"""User SPICE includes (``analogprop netlist --include``), checked against an allow-list.

An include is copied into a netlist that ``ngspice -b`` runs, and ngspice's
reader acts on more than circuit cards (ngspice 39, ``inpcom.c``/``inp.c``):
it matches dot-cards by prefix, so ``.controls`` opens a control block and
``.endcs`` closes it, ``.incl``, ``.includex``, ``.library`` read other files
and ``.end`` followed by a blank ends the deck; a comment line starting
``*#`` is run as a control command; every carriage return is dropped before
matching (``.con<CR>trol`` is ``.control``); a NUL byte ends a line early; a
line starting ``@`` stops reading; ``\\\\`` at a line's end glues the next
line on.  XSPICE code models (``A`` devices) read files, and from ngspice 42
on start programs (``d_process``) or load libraries (``d_cosim``); CIDER
models (``numd``, ``nbjt``, ``numos``) write state files, ``ndev`` opens a
socket.  Rather than listing what to refuse, :func:`read_include` accepts
only the cards a device library needs and refuses everything else.
"""
from __future__ import annotations

import re
from pathlib import Path

from ..errors import ConfigError

#: First letters of the element lines an include may hold (ngspice devices; A, XSPICE, is refused).
DEVICE_LETTERS = frozenset("bcdefghijklmnopqrstuvwxyz")
#: Dot-cards an include may hold, matched as whole words (ngspice itself matches prefixes).
DOT_CARDS = frozenset({".subckt", ".ends", ".model", ".param", ".func"})
#: ngspice's built-in model types (``inpdomod.c``) less the CIDER devices and ``ndev``.
MODEL_TYPES = frozenset({"r", "res", "c", "l", "sw", "csw", "urc", "ltra", "txl", "cpl", "d", "npn", "pnp",
                         "njf", "pjf", "nmf", "pmf", "nhfet", "phfet", "nmos", "pmos", "nsoi", "psoi",
                         "vdmos", "vdmosn", "vdmosp"})
#: ngspice front-end commands that run programs or load code; inert outside a control block, but no
#: device is called that.
COMMANDS = frozenset({"shell", "source", "codemodel", "osdi"})

ACCEPTED = ("an include may hold only element lines (device letters B to Z), .subckt/.ends, .model "
            "(built-in model types), .param, .func, '*' comments, blank lines and '+' continuations")
_BOM = "\ufeff"
_MODEL = re.compile(r"\.model\s+[^\s(){}=,'\"]+\s+([a-z][a-z0-9_]*)(?=[\s(]|$)")


class IncludeError(ConfigError):
    """A user include holding anything but device-library cards."""


def strip_comment(line: str) -> str:
    """``line`` without its end-of-line comment, as ngspice cuts it (``inp_stripcomments_line``
    outside control blocks): at ``;`` after the first character, at ``$`` after a blank or comma,
    at ``//``; then trailing blanks."""
    cut = len(line)
    for i, c in enumerate(line):
        nxt = line[i + 1:i + 2]
        if nxt == ";":
            cut = i + 1
            break
        if c == "$":
            if i >= 1 and line[i - 1] in " ,\t":
                cut = i
                break
        elif c == "/" and nxt == "/":
            cut = i
            break
    return line[:cut].rstrip(" \t")


def _refuse(path, number: int, what: str, why: str) -> IncludeError:
    return IncludeError(f"include {path} line {number}: {what} is not allowed in an include ({why}); {ACCEPTED}")


def _shown(text: str) -> str:
    return repr(text if len(text) <= 60 else text[:57] + "...")


def _check_characters(path, number: int, line: str) -> None:
    for c in line:
        if c != "\t" and not c.isprintable():
            why = {"\r": "ngspice drops it and joins the text around it",
                   "\0": "ngspice ends the line there"}.get(c, "not a printable character")
            raise _refuse(path, number, f"character U+{ord(c):04X} in {_shown(line)}", why)


def _start(path, number: int, body: str) -> str:
    """The kind of card a line starts (its first word, lower case), or raise."""
    shown = re.match(r"[^ \t]*", body).group()
    word = shown.lower()
    if word.startswith("."):
        if word in DOT_CARDS:
            return word
        raise _refuse(path, number, _shown(shown), "not a device-library card; ngspice reads dot-cards by "
                      "prefix: .controls opens a control block, .incl and .library read files")
    if word[:1] == "a":
        raise _refuse(path, number, _shown(shown),
                      "an XSPICE code-model instance: code models read files, run programs or load libraries")
    if word[:1] not in DEVICE_LETTERS:
        raise _refuse(path, number, _shown(body), "not an element line, dot-card, comment or continuation")
    if word in COMMANDS or word.startswith("pre_"):
        raise _refuse(path, number, _shown(shown), "an ngspice command that runs a program or loads code")
    return "element"


def _finish(path, card, open_subckts: list[int]) -> None:
    """Checks of a whole card (its continuation lines joined as ngspice joins them)."""
    number, kind, text = card
    if kind == ".subckt":
        open_subckts.append(number)
    elif kind == ".ends":
        if not open_subckts:
            raise _refuse(path, number, "'.ends'", "no .subckt of the include is open")
        open_subckts.pop()
    elif kind == ".model":
        m = _MODEL.match(text.lower())
        if not m:
            raise _refuse(path, number, _shown(text), "a .model card needs a name and a literal model type")
        if m.group(1) not in MODEL_TYPES:
            raise _refuse(path, number, f"model type {m.group(1)!r}",
                          f"not one of ngspice's built-in devices {', '.join(sorted(MODEL_TYPES))}")


def check_include(data: bytes, path) -> str:
    """The text of an include's bytes ``data`` (UTF-8, a leading BOM dropped, CRLF line ends made LF)
    if every line is an allowed card; :class:`IncludeError` naming ``path``, the line and the card
    otherwise."""
    if data.startswith(_BOM.encode()):
        data = data[len(_BOM.encode()):]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        number = data[:e.start].count(b"\n") + 1
        raise _refuse(path, number, f"byte {data[e.start:e.start + 1]!r}", "the file must be UTF-8") from None
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    lines = [ln[:-1] if ln.endswith("\r") else ln for ln in lines]
    card, open_subckts = None, []
    for number, line in enumerate(lines, 1):
        _check_characters(path, number, line)
        body = line.lstrip(" \t")
        if not body:
            continue
        if body.startswith("*"):
            if body.startswith("*#"):
                raise _refuse(path, number, _shown(body), "ngspice runs a '*#' comment as a control command")
            continue
        if not body.isascii():
            raise _refuse(path, number, _shown(body), "only comments may hold non-ASCII characters")
        if body.rstrip(" \t").endswith("\\\\"):
            raise _refuse(path, number, _shown(body), "ngspice glues the next line onto a line ending in '\\\\'")
        if body.startswith("+"):
            if card is None:
                raise _refuse(path, number, _shown(body), "a continuation line with no card of the include above it")
            card = (card[0], card[1], f"{card[2]} {strip_comment(body)[1:]}")
            continue
        if card:
            _finish(path, card, open_subckts)
        card = (number, _start(path, number, body), strip_comment(body))
    if card:
        _finish(path, card, open_subckts)
    if open_subckts:
        raise _refuse(path, open_subckts[-1], "'.subckt' without '.ends'",
                      "it would swallow the rest of the netlist")
    return "".join(f"{ln}\n" for ln in lines)


def read_include(path) -> str:
    """The checked text of the include file ``path`` (see :func:`check_include`)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise IncludeError(f"cannot read include {path}: {e}") from None
    return check_include(data, path)
