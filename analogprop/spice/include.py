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


#: Library-section cards a user's device library (:func:`read_library`) may hold besides :data:`DOT_CARDS`.
LIBRARY_CARDS = frozenset({".lib", ".endl"})
#: How deep ``.lib`` references may nest.
LIBRARY_DEPTH = 8


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


def _start(path, number: int, body: str, lib=None) -> str:
    """The kind of card a line starts (its first word, lower case), or raise."""
    shown = re.match(r"[^ \t]*", body).group()
    word = shown.lower()
    if word.startswith("."):
        if word in DOT_CARDS or (lib is not None and word in LIBRARY_CARDS):
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


def check_include(data: bytes, path, lib: "_Library | None" = None) -> str:
    """The text of an include's bytes ``data`` (UTF-8, a leading BOM dropped, CRLF line ends made LF)
    if every line is an allowed card; :class:`IncludeError` naming ``path``, the line and the card
    otherwise.  ``lib`` (:func:`read_library` only) also accepts ``.lib FILE SECTION``, expanded in
    place, and in a file read for a section the ``.lib NAME`` ... ``.endl`` markers, of which only
    that section is kept."""
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
    card, open_subckts, out, section = None, [], [], None
    for number, line in enumerate(lines, 1):
        _check_characters(path, number, line)
        body = line.lstrip(" \t")
        keep = lib is None or lib.section is None or section == lib.section
        if keep:
            out.append(line)
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
            if card[1] in LIBRARY_CARDS:
                raise _refuse(path, number, _shown(body), f"a continuation of a {card[1]} card")
            card = (card[0], card[1], f"{card[2]} {strip_comment(body)[1:]}")
            continue
        if card and card[1] not in LIBRARY_CARDS:
            _finish(path, card, open_subckts)
        card = (number, _start(path, number, body, lib), strip_comment(body))
        if card[1] in LIBRARY_CARDS:
            if keep:
                out.pop()
            section = lib.card(path, number, card[2], section, keep, out)
    if card and card[1] not in LIBRARY_CARDS:
        _finish(path, card, open_subckts)
    if open_subckts:
        raise _refuse(path, open_subckts[-1], "'.subckt' without '.ends'",
                      "it would swallow the rest of the netlist")
    if section is not None:
        raise _refuse(path, len(lines), f"section {section!r} without '.endl'", "a library section must end")
    if lib is not None and lib.section is not None and not lib.found:
        raise IncludeError(f"library {path} has no section {lib.section!r} (.lib {lib.section} ... .endl)")
    return "".join(f"{ln}\n" for ln in (lines if lib is None else out))


def read_include(path) -> str:
    """The checked text of the include file ``path`` (see :func:`check_include`)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise IncludeError(f"cannot read include {path}: {e}") from None
    return check_include(data, path)


class _Library:
    """The ``.lib`` context of :func:`read_library`: where files may come from, and the section read."""

    def __init__(self, root: Path, allow_outside: bool, section: str | None, chain: tuple):
        self.root, self.allow_outside, self.section, self.chain = root, allow_outside, section, chain
        self.found = False

    def card(self, path, number, text, section, keep, out):
        """Act on a ``.lib``/``.endl`` card; returns the section open after it."""
        words = text.split()
        kind = words[0].lower()
        if kind == ".endl":
            if section is None or len(words) > 2 or (len(words) == 2 and words[1].lower() != section):
                raise _refuse(path, number, _shown(text), "an .endl must close the open .lib section (by its name)")
            return None
        if len(words) == 3:
            if keep:
                out.append(f"* ---- .lib {words[1]} {words[2]} ----")
                out.extend(self.resolve(path, number, words[1], words[2]).rstrip("\n").split("\n"))
            return section
        if len(words) == 2 and self.section is not None and section is None:
            if not re.fullmatch(r"[a-z_][a-z0-9_.+-]*", words[1].lower()):
                raise _refuse(path, number, _shown(text), "a section name is a plain word")
            name = words[1].lower()
            self.found = self.found or name == self.section
            return name
        why = ("in a file read for a section, '.lib NAME' opens a section (not inside another) and '.lib FILE "
               "SECTION' includes one" if self.section is not None else "only '.lib FILE SECTION' is read here")
        raise _refuse(path, number, _shown(text), why)

    def resolve(self, path, number, file, section) -> str:
        name = file.strip("'\"")
        target = Path(name)
        if target.is_absolute() and not self.allow_outside:
            raise _refuse(path, number, f".lib file {name!r}", "an absolute path; library files are named "
                          "relative to the specification (allow_outside = true permits others)")
        full = (Path(path).parent / target).resolve()
        if not self.allow_outside and not full.is_relative_to(self.root):
            raise _refuse(path, number, f".lib file {name!r}", f"it is outside the specification's directory "
                          f"{self.root} (allow_outside = true permits it)")
        key = (full, section.lower())
        if key in self.chain or len(self.chain) >= LIBRARY_DEPTH:
            raise _refuse(path, number, f".lib {name} {section}", "it includes itself or nests more than "
                          f"{LIBRARY_DEPTH} deep")
        return read_library(full, self.root, self.allow_outside, section.lower(), self.chain + (key,))


def read_library(path, root, allow_outside: bool = False, section: str | None = None, _chain: tuple = ()) -> str:
    """The checked text of a user's device library ``path`` (a circuit specification's), every
    ``.lib FILE SECTION`` in it replaced by that section of ``FILE`` (resolved relative to the file
    naming it, checked by the same allow-list, never left for ngspice to read).  Files must lie
    under ``root`` unless ``allow_outside``; with ``section`` only that section is returned."""
    path, root = Path(path), Path(root).resolve()
    try:
        data = path.read_bytes()
    except OSError as e:
        raise IncludeError(f"cannot read library {path}: {e.strerror or e}") from None
    return check_include(data, path, _Library(root, allow_outside, section, _chain))
