"""User SPICE includes: the allow-list of analogprop.spice.include, and ngspice showing what it keeps out."""
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from analogprop.circuit import compile_circuit
from analogprop.cli import main
from analogprop.spice import netlist as netlist_module
from analogprop.spice.include import (DEVICE_LETTERS, MODEL_TYPES, IncludeError, check_include, read_include,
                                      read_library)

from conftest import ROOT

BOM = b"\xef\xbb\xbf"

#: Every dot-card of ngspice 39 (manual and inpcom.c/inp.c) but the five an include may hold.
DOT_CARDS = [".ac", ".alter", ".cmodel", ".control", ".csparam", ".data", ".dc", ".disto", ".else", ".elseif",
             ".end", ".endc", ".enddata", ".endif", ".endl", ".eom", ".four", ".global", ".hb", ".ic", ".if", ".inc",
             ".include", ".lib", ".macro", ".meas", ".measure", ".net", ".noise", ".nodeset", ".op", ".opt",
             ".option", ".options", ".plot", ".print", ".probe", ".prot", ".pss", ".pz", ".save", ".sens", ".sp",
             ".spiceinit", ".temp", ".tf", ".title", ".tran", ".unprot", ".width"]
#: Words ngspice's prefix matching (ciprefix) reads as a dot-card, near misses of the allowed ones, and
#: words that are no card at all.
PREFIXED = [".controls", ".controlx", ".endcs", ".endcfoo", ".incl", ".includex", ".incfoo", ".library", ".libx",
            ".parameters", ".params", ".para", ".models", ".mod", ".subckts", ".sub", ".endsx", ".funcs", ".fun",
            ".measurement", ".titles", ".con", ".contr", ".", "..control"]


def refused(data, tmp_path, line):
    """The IncludeError of an include holding ``data`` (bytes or str), checked to name the file and ``line``."""
    path = tmp_path / "payload.lib"
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    with pytest.raises(IncludeError) as err:
        read_include(path)
    message = str(err.value)
    assert message.startswith(f"include {path} line {line}: "), message
    assert "an include may hold only element lines" in message
    return message


def variants(word):
    """(text or bytes, line, spelling) of ``word`` as a card in the places and spellings an include can put it."""
    mixed = "".join(c.upper() if i % 2 else c for i, c in enumerate(word))
    return [(f"* library\n{word} x\n", 2, word), (f"{word.upper()} x\n", 1, word.upper()),
            (f"r1 a 0 1k\n\n{mixed} x\n", 3, mixed), (f"* library\n \t {word}\n", 2, word),
            (BOM + f"{word} x\n".encode(), 1, word), (f"* library\r\nr1 a 0 1k\r\n{word} x\r\n", 3, word),
            (f"r1 a 0 1k\n+ 2k\n* comment\n{word} x\n", 4, word), (f".subckt s a\n{word}\n.ends s\n", 2, word)]


@pytest.mark.parametrize("word", DOT_CARDS + PREFIXED)
def test_dot_cards_are_refused_in_every_spelling_and_place(tmp_path, word):
    for data, line, shown in variants(word):
        message = refused(data, tmp_path, line)
        assert f"{shown!r} is not allowed" in message
    if len(word) > 2:   # a carriage return or a NUL byte inside the word: ngspice drops the first, cuts at the second
        assert "U+000D" in refused(f"* x\n{word[:2]}\r{word[2:]} x\n", tmp_path, 2)
        assert "U+0000" in refused(f"{word}\0 x\n", tmp_path, 1)


@pytest.mark.parametrize("text, line", [
    ("*# shell touch marker\n", 1), ("r1 a 0 1k\n  *#echo hi\n", 2), ("\t*#\n", 1),       # run as commands
    ("+ r1 a 0 1k\n", 1), ("* comment\n+ .control\n", 2), ("\n\n+\n", 3),                 # continuation of nothing
    (".control\n+ r1 a 0 1k\n", 1), (".endc foo\n+ bar\n", 1),                              # of a refused card
    ("@\n", 1), ("; r1 a 0 1k\n", 1), ("$ comment\n", 1), ("# comment\n", 1), ("// comment\n", 1),
    ("1r a 0 1k\n", 1), ("_x a b\n", 1), ("-r a 0 1\n", 1), ("{x}\n", 1), ("=\n", 1),
    ("shell touch marker\n", 1), ("SHELL touch marker\n", 1), ("source evil.cir\n", 1),
    ("codemodel evil.cm\n", 1), ("osdi evil.osdi\n", 1), ("pre_osdi evil.osdi\n", 1),
    ("r1 a 0 1k \\\\\nr2 a 0 1k\n", 1), ("r1 a 0 1k\n+ 2k \\\\  \nr2 a 0 1k\n", 2),          # ngspice's '\\' gluing
    (".subckt s a\nr1 a 0 1k\n", 1), (".subckt s a\n.subckt t b\n.ends t\n", 1), (".ends\n", 1),
    (".subckt s a\n.ends s\n.ends\n", 3),
])
def test_cards_outside_the_allow_list_are_refused(tmp_path, text, line):
    refused(text, tmp_path, line)


@pytest.mark.parametrize("model", ["filesource", "d_source", "d_state", "table2d", "table3d", "d_process",
                                   "d_cosim", "numd", "nbjt", "numos", "ndev", "poly", "{kind}", "'d'", ""])
def test_models_other_than_ngspice_built_in_devices_are_refused(tmp_path, model):
    for text, line in [(f"* lib\n.model m {model}(x=1)\n", 2), (f".MODEL m {model.upper()} x=1\n", 1),
                       (f"r1 a 0 1k\n.model m\n* type on the next card line\n+ {model} (x=1)\n", 2)]:
        message = refused(text, tmp_path, line)
        assert model in message.lower()


@pytest.mark.parametrize("data, line, what", [
    (b"r1 a 0 1k\n\x00\n", 2, "U+0000"), (b"r1 a\r0 1k\n", 1, "U+000D"), (b"r1 a 0 1k\r\r\n", 1, "U+000D"),
    (b"* x\x0b\n", 1, "U+000B"), (b"* x\x0c\n", 1, "U+000C"), (b"r1 a 0 1k \x1b[2J\n", 1, "U+001B"),
    (b"* x\x7f\n", 1, "U+007F"), ("* x\x85.control\n".encode(), 1, "U+0085"),
    ("* x\u2028.control\n".encode(), 1, "U+2028"), ("* x\u2029.control\n".encode(), 1, "U+2029"),
    (b"* lib\n" + BOM + b".control\n", 2, "U+FEFF"), (BOM + BOM + b"* x\n", 1, "U+FEFF"),
    (b"* lib\n* caf\xe9\n", 2, r"b'\xe9'"), (b"\xff\xfe* x\n", 1, r"b'\xff'"), (b"* x\n\n* \xed\xa0\x80\n", 3, "UTF-8"),
    ("r1 a 0 1k\u03a9\n".encode(), 1, "non-ASCII"), (".param \u00b5=1\n".encode(), 1, "non-ASCII"),
    ("\u00a0.control\n".encode(), 1, "U+00A0"),
])
def test_characters_ngspice_or_python_read_differently_are_refused(tmp_path, data, line, what):
    assert what in refused(data, tmp_path, line)


def test_code_model_instances_are_refused_as_such(tmp_path):
    for text in ("a1 in out filesrc\n", "* lib\n  A_src %v(out) src\n"):
        assert "XSPICE code-model instance" in refused(text, tmp_path, text.count("\n"))


def test_missing_include_is_named(tmp_path):
    with pytest.raises(IncludeError, match=r"cannot read include .*absent\.lib"):
        read_include(tmp_path / "absent.lib")


TYPICAL = """* vendor-style device library (comments may say .control, shell or .include: they stay comments)
*.control
* shell touch marker
.MODEL D1N4148 D(Is=2.52n Rs=.568 N=1.752 Cjo=4p M=.4 ; a .control here is a comment
* a comment between a card and its continuation
+ tt=20n) $ .endc
  .model Q2N3904 NPN(Is=6.734f Xti=3 Eg=1.11 Vaf=74.03 Bf=416.4
+ Ne=1.259 Ise=6.734f Ikf=66.78m) // .include other.lib
\t.model mn nmos level=1 vto=0.7 kp=110u
.model sw1 sw vt=0.5 vh=0.1 ron=1 roff=1meg
.Param rload = 1k ; shell touch marker
.param vcc={2*2.5}
.func sq(x) {x*x}
.SUBCKT Amp in out PARAMS: g=1
  Rin in out {1/g}
  .subckt inner a
  r1 a 0 1k
  .ends inner
  xi out inner
  e1 out 0 in 0 {sq(g)}
.ENDS Amp

* a line of the library with non-ASCII in a comment: 10 \u00b5A, r\u00e9sistance
vx ix 0 dc 1
xamp ix ox amp g={sq(2)}
rl ox 0 {rload}
d1 ox 0 D1N4148
"""


def test_typical_libraries_are_accepted_unchanged(tmp_path):
    for name in ("buffer.lib", "inverter.lib", "neuron.lib"):
        path = ROOT / "netlists" / name
        assert read_include(path) == path.read_text()
    lf = TYPICAL.encode()
    assert check_include(lf, "typical.lib") == TYPICAL
    assert check_include(lf.rstrip(b"\n"), "typical.lib") == TYPICAL   # no newline at the end
    crlf = lf.replace(b"\n", b"\r\n")
    for data in (crlf, BOM + lf, BOM + crlf):
        assert check_include(data, "typical.lib") == TYPICAL             # BOM dropped, CRLF made LF
    assert check_include(b"", "empty.lib") == "" and check_include(b"\n \t\n* only comments\n", "c.lib") == \
        "\n \t\n* only comments\n"


def test_every_device_letter_but_a_and_every_built_in_model_type_is_accepted():
    letters = "".join(f"{c}1 a 0 x\n{c.upper()}2 a 0 x\n" for c in sorted(DEVICE_LETTERS))
    assert check_include(letters.encode(), "devices.lib") == letters
    assert "a" not in DEVICE_LETTERS and len(DEVICE_LETTERS) == 25
    models = "".join(f".model m_{t} {t}(x=1)\n.MODEL M{t}2 {t.upper()} x=1\n" for t in sorted(MODEL_TYPES))
    assert check_include(models.encode(), "models.lib") == models


# ---------------------------------------------------------------- ngspice itself

needs_ngspice = pytest.mark.skipif(shutil.which("ngspice") is None, reason="the ngspice binary is not installed")

CONTROL = ".control\nshell touch marker\n.endc\n"
LIBRARY_SECTION = "* library file\n.lib sec\n" + CONTROL + ".endl sec\n"
#: (payload, line refused, other file the payload reads) of includes ngspice would act on.
PAYLOADS = {"control": (CONTROL, 1, None),
            "controls": (".controls\nshell touch marker\n.endcs\n", 1, None),
            "mixed case": ("* lib\n  .CoNtRoL\n\tshell touch marker\n.ENDC\n", 2, None),
            "star hash": ("* lib\n*# shell touch marker\n", 2, None),
            "carriage return": ("r1 a 0 1k\n.con\rtrol\nshell touch marker\n.endc\n", 2, None),
            "incl": ("* lib\n.incl {other}\n", 2, CONTROL),
            "includex": (".includex {other}\n", 1, CONTROL),
            "library": ("* lib\n.library {other} sec\n", 2, LIBRARY_SECTION)}


def ngspice(netlist_path):
    """``ngspice -b`` run in the netlist's directory, with HOME there too (no user .spiceinit)."""
    folder = netlist_path.parent
    return subprocess.run(["ngspice", "-b", netlist_path.name], cwd=folder, capture_output=True, text=True,
                          timeout=60, env={**os.environ, "HOME": str(folder)})


def write_payload(folder, name):
    text, line, other = PAYLOADS[name]
    folder.mkdir()
    if other:
        (folder / "other.lib").write_text(other)
    path = folder / "payload.lib"
    path.write_bytes(text.format(other=folder / "other.lib").encode())
    return path, line


@needs_ngspice
@pytest.mark.parametrize("name", list(PAYLOADS))
def test_refused_payloads_would_run_in_ngspice_and_no_netlist_holds_them(tmp_path, monkeypatch, capsys, name):
    live = tmp_path / "live"
    path, line = write_payload(live, name)
    with monkeypatch.context() as m:   # the netlist the include would give if it were copied in unchecked
        m.setattr(netlist_module, "read_include", lambda p: Path(p).read_bytes().decode())
        text = netlist_module.netlist(compile_circuit((3, 2), {"fwd0": np.ones((2, 3))}, "behavioural"),
                                      np.zeros((1, 3)), includes=[path])
    (live / "would_be.cir").write_text(text, newline="")
    ngspice(live / "would_be.cir")
    assert (live / "marker").exists(), f"the {name} payload did not run: the test shows nothing"

    guarded = tmp_path / "guarded"
    path, line = write_payload(guarded, name)
    out = guarded / "net.cir"
    assert main(["netlist", "--include", str(path), "--arch", "3-2", "--samples", "0", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"analogprop: error: include {path} line {line}: ") and "is not allowed" in err
    assert not out.exists() and not (guarded / "marker").exists()


@needs_ngspice
def test_accepted_tricky_library_runs_in_ngspice_without_running_anything(tmp_path, capsys):
    lib = tmp_path / "tricky.lib"
    lib.write_bytes(BOM + TYPICAL.replace("\n", "\r\n").encode())
    out = tmp_path / "net.cir"
    assert main(["netlist", "--include", str(lib), "--arch", "3-2", "--samples", "0", "--out", str(out)]) == 0
    text = out.read_text()
    assert "\r" not in text and "\ufeff" not in text and ".SUBCKT Amp in out PARAMS: g=1\n" in text
    run = ngspice(out)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "v(h1_0)" in run.stdout.lower()
    # the library's circuit works as written: g = sq(2) = 4, so e1 drives ox to sq(g) = 16 times v(ix) = 1 V
    out.write_text(text.replace(".dc vsel 0 0 1\n.print dc v(h1_0) v(h1_1)", ".dc vx 1 1 1\n.print dc v(ox)"))
    run = ngspice(out)
    rows = [ln.split() for ln in run.stdout.splitlines() if ln[:1].isdigit() and "\t" in ln]
    assert run.returncode == 0 and [float(v) for v in rows[0][1:]] == [1.0, 16.0], run.stdout + run.stderr
    assert not (tmp_path / "marker").exists()


@needs_ngspice
def test_continuation_lines_stay_part_of_their_card_in_ngspice(tmp_path, capsys):
    text = "* continuations belong to r1\nr1 a 0 1k\n+ .control\n+ shell touch marker\n+ .endc\n"
    lib = tmp_path / "glued.lib"
    lib.write_text(text)
    assert read_include(lib) == text
    out = tmp_path / "net.cir"
    assert main(["netlist", "--include", str(lib), "--arch", "3-2", "--samples", "0", "--out", str(out)]) == 0
    run = ngspice(out)
    assert "r1 a 0 1k .control shell touch marker .endc" in run.stdout + run.stderr
    assert not (tmp_path / "marker").exists()


# -- .lib FILE SECTION in a circuit specification's library (read_library) ------------------------------------
CORNERS = """* corners
.lib tt
.model nch nmos level=1 vto=0.5 kp=1e-4
.endl tt
.lib ff
.model nch nmos level=1 vto=0.4 kp=1.2e-4
.lib 'more.lib' extra
.endl
"""


def library(tmp_path, top, corners=CORNERS, more=".lib extra\n.model dx d is=1e-14\n.endl extra\n"):
    (tmp_path / "models").mkdir(exist_ok=True)
    (tmp_path / "models" / "corners.lib").write_text(corners)
    (tmp_path / "models" / "more.lib").write_text(more)
    (tmp_path / "top.lib").write_text(top)
    return tmp_path / "top.lib"


def test_lib_section_is_expanded_in_place_and_only_that_section(tmp_path):
    top = library(tmp_path, ".subckt s a b\n.lib 'models/corners.lib' TT\nm1 a b 0 0 nch\n.ends s\n")
    text = read_library(top, tmp_path)
    assert ".model nch nmos level=1 vto=0.5 kp=1e-4" in text and "vto=0.4" not in text and ".lib tt" not in text
    assert ".endl" not in text.lower() and text.index("vto=0.5") < text.index("m1 a b")
    nested = read_library(library(tmp_path, ".lib models/corners.lib ff\n"), tmp_path)
    assert "vto=0.4" in nested and ".model dx d is=1e-14" in nested and "vto=0.5" not in nested
    with pytest.raises(IncludeError, match=r"include .*top.lib line 1: '.lib' is not allowed"):
        read_include(top)   # an --include still refuses .lib


@pytest.mark.parametrize("top, corners, problem", [
    (".lib models/corners.lib tt\n", ".lib tt\n.control\n.endl tt\n", "corners.lib line 2: '.control' is not allowed"),
    (".lib models/corners.lib tt\n", ".lib tt\n*# shell touch marker\n.endl\n", "corners.lib line 2"),
    (".lib models/corners.lib tt\n", ".lib tt\n.model a d\n", "section 'tt' without '.endl'"),
    (".lib models/corners.lib tt\n", ".lib tt\n.endl ff\n", "an .endl must close the open .lib section"),
    (".lib models/corners.lib tt\n", ".lib tt\n.lib ff\n.endl\n.endl\n", "line 2: '.lib ff' is not allowed"),
    (".lib models/corners.lib ss\n", CORNERS, "has no section 'ss'"),
    (".lib tt\n", CORNERS, "only '.lib FILE SECTION' is read here"),
    (".lib models/corners.lib tt\n+ extra\n", CORNERS, "line 2: '+ extra' is not allowed"),
    (".lib /etc/passwd tt\n", CORNERS, "an absolute path"),
    (".lib ../outside.lib tt\n", CORNERS, "outside the specification's directory"),
    (".lib models/corners.lib tt extra\n", CORNERS, "only '.lib FILE SECTION' is read here"),
    (".lib models/missing.lib tt\n", CORNERS, "cannot read library"),
    (".lib top.lib tt\n", CORNERS, "top.lib has no section 'tt'"),
])
def test_lib_references_are_checked_and_confined(tmp_path, top, corners, problem):
    (tmp_path.parent / "outside.lib").write_text(".lib tt\n.endl\n")
    with pytest.raises(IncludeError) as err:
        read_library(library(tmp_path, top, corners), tmp_path)
    assert problem in str(err.value) and "\n" not in str(err.value)


def test_lib_self_reference_is_refused(tmp_path):
    (tmp_path / "loop.lib").write_text(".lib a\n.lib 'loop.lib' a\n.endl a\n")
    (tmp_path / "top.lib").write_text(".lib loop.lib a\n")
    with pytest.raises(IncludeError, match="it includes itself"):
        read_library(tmp_path / "top.lib", tmp_path)


def test_lib_outside_is_read_only_when_allowed(tmp_path):
    inner = tmp_path / "spec"
    inner.mkdir()
    (tmp_path / "shared.lib").write_text(".lib tt\n.model nch nmos level=1\n.endl\n")
    (inner / "top.lib").write_text(".lib ../shared.lib tt\n")
    with pytest.raises(IncludeError, match="outside the specification's directory"):
        read_library(inner / "top.lib", inner)
    assert ".model nch nmos level=1" in read_library(inner / "top.lib", inner, allow_outside=True)
