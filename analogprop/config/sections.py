"""The sections of a run configuration: frozen dataclasses whose fields are :func:`~.checks.setting` s.

Constructing a section checks and normalises every field; an error names the
setting three ways (``training.beta``, ``--beta``, config.json key ``beta``),
the bad value and what is accepted.  Choices and defaults that other modules
also know (feedback initialisations, driver names, mismatch knobs, crossbar
design, Newton iterations) are checked against them by ``tests/test_config.py``.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import ClassVar

from ..errors import ConfigError
from .checks import Architecture, Choice, Flag, Number, Numbers, Refused, Text, setting
from ..rates import RULE


@dataclass(frozen=True)
class Key:
    """One setting's names: section (None at the top level), field, config.json key and CLI flag."""

    section: str | None
    name: str
    flat: str
    flag: str
    default: object
    meta: dict = field(compare=False, repr=False)

    @property
    def path(self) -> str:
        return f"{self.section}.{self.name}" if self.section else self.name

    def __str__(self):
        return f"{self.path} ({self.flag}, config key '{self.flat}')"

    def validate(self, value):
        """The normalised value, or ConfigError naming this setting, the value and what is accepted."""
        if value is None and self.meta["optional"]:
            return None
        check = self.meta["check"]
        try:
            return check(value)
        except Refused as e:
            detail = f" ({e})" if str(e) else ""
            raise ConfigError(f"{self} must be {check.accepts}, got {value!r}{detail}") from None


def key_of(section: str | None, f, prefix: str = "") -> Key:
    """The :class:`Key` of dataclass field ``f`` in ``section`` (flat keys get ``prefix``)."""
    m = f.metadata
    flag = m["flag"] or ("--no-" if isinstance(m["check"], Flag) and f.default is True else "--") + \
        f.name.replace("_", "-")
    return Key(section, f.name, m["flat"] or prefix + f.name, flag, f.default, dict(m))


class Section:
    """Base of the sections: ``NAME`` in the tree and TOML, ``TITLE`` of its option group,
    ``PREFIX`` of its config.json keys."""

    NAME: ClassVar[str]
    TITLE: ClassVar[str]
    PREFIX: ClassVar[str] = ""

    @classmethod
    def keys(cls) -> list[Key]:
        return [key_of(cls.NAME, f, cls.PREFIX) for f in fields(cls)]

    def __post_init__(self):
        for key in self.keys():
            object.__setattr__(self, key.name, key.validate(getattr(self, key.name)))


@dataclass(frozen=True)
class DataConfig(Section):
    NAME: ClassVar[str] = "data"
    TITLE: ClassVar[str] = "data"

    dataset: str = setting("digits", "digits (the embedded 8x8 images), mnist, or another name "
                           "analogprop.data.load_dataset reads (it refuses unknown names)", Text("a dataset name"))
    data_dir: str | None = setting(None, "directory (or file) the dataset is read from; for mnist, else "
                                   "$ANALOGPROP_DATA or ~/.cache/analogprop/mnist", Text("a path"), optional=True)
    download: bool = setting(False, "download MNIST if missing (needs the network)", Flag())
    train_subset: int | None = setting(None, "train on the first N training samples (none: all)",
                                       Number(int, low=1), optional=True, metavar="N", sparse=True)
    test_subset: int | None = setting(None, "evaluate on the first N test samples (none: all)",
                                      Number(int, low=1), optional=True, metavar="N", sparse=True)


@dataclass(frozen=True)
class ModelConfig(Section):
    NAME: ClassVar[str] = "model"
    TITLE: ClassVar[str] = "model"
    #: as analogprop.model.network.FEEDBACK_INITS
    FEEDBACK_INITS: ClassVar[tuple] = ("random", "mirrored")
    #: as analogprop.model.network.READOUTS
    READOUTS: ClassVar[tuple] = ("dynamic", "softmax", "linear")

    arch: str = setting("64-32-10", "layer sizes, input first, e.g. 64-32-10; convolutional: CxHxW input, "
                        "c<maps>k<kernel>[s<stride>][p<pool>] layers, then sizes, e.g. 1x28x28-c32k5p2-c64k5p2-10",
                        Architecture())
    bias: bool = setting(True, "bias units in every dynamic layer", Flag(), cli_help="no bias units")
    tied: bool = setting(False, "tie feedback to forward weights (symmetric EP case)", Flag())
    feedback_init: str = setting("random", "initial feedback weights: drawn independently (random) or the "
                                 "transposes of the forward ones (mirrored; still untied: each then follows its "
                                 "own local update)", Choice(*FEEDBACK_INITS))
    linear_output: bool = setting(False, "leave the output state unclipped (Eq. 6; otherwise every layer is "
                                  "clipped as in Eq. 59; ideal driver)", Flag())
    readout: str = setting("dynamic", "the output layer: a dynamic layer with its own feedback (dynamic, the "
                           "paper's), or outside the dynamics, read from the top hidden layer, which alone is "
                           "nudged: softmax (cross-entropy) or linear (squared error, clipped unless "
                           "linear_output); ideal driver", Choice(*READOUTS), sparse=True)


@dataclass(frozen=True)
class DriverConfig(Section):
    NAME: ClassVar[str] = "driver"
    TITLE: ClassVar[str] = "driver"
    #: as analogprop.runs.build.DRIVERS
    NAMES: ClassVar[tuple] = ("ideal", "circuit", "ngspice", "visa")

    name: str = setting("ideal", "what is trained: the ideal model, a compiled mismatched circuit, that "
                        "circuit solved by ngspice, or a board on the bench over VISA", Choice(*NAMES),
                        flat="driver", flag="--driver")


@dataclass(frozen=True)
class SolverConfig(Section):
    NAME: ClassVar[str] = "solver"
    TITLE: ClassVar[str] = "relaxation"

    method: str = setting("fast", "fixed-point solver of the ideal driver: projected Gauss-Seidel (fast) or "
                          "Euler steps (euler, Eq. 59)", Choice("fast", "euler"), flat="solver", flag="--solver")
    tol: float = setting(1e-5, "residual tolerance of a relaxation, in network units (the circuit drivers "
                         "divide it by the layer gain)", Number(float, low=0, low_open=True))
    max_steps: int = setting(500, "step/sweep limit of a relaxation", Number(int, low=1))
    over_relax: float = setting(1.0, "largest over-relaxation factor of the fast solver's sweeps (1: plain "
                                "Gauss-Seidel; above 1, a sample whose sweeps slow to one mode is over-relaxed up "
                                "to it; 1.5 speeds trained networks with strong feedback)",
                                Number(float, low=1, high=2, high_open=True))
    euler_step: float = setting(0.5, "Euler step size epsilon (Eq. 59)", Number(float, low=0, high=1, low_open=True))
    nudge_steps: int = setting(0, "nudged phase: this many Euler steps of --euler-step from the free fixed point "
                               "(Table 1's second-phase iterations; ideal driver; 0: relax to the fixed point)",
                               Number(int, low=0))
    dtype: str = setting("float64", "floating-point type of the ideal solvers", Choice("float64", "float32"))


@dataclass(frozen=True)
class TrainingConfig(Section):
    NAME: ClassVar[str] = "training"
    TITLE: ClassVar[str] = "training"
    #: as analogprop.training.rules.TRAINERS and analogprop.training.optimizers.OPTIMIZERS
    RULES: ClassVar[tuple] = ("two-phase", "gradient")
    OPTIMIZERS: ClassVar[tuple] = ("sgd", "adam")

    beta: float = setting(0.5, "nudging strength", Number(float, low=0, low_open=True))
    lrs: tuple | None = setting(None, "learning rates per layer pair, input side first, e.g. 0.2,0.05; one rate "
                                f"applies to every pair; none given: {RULE} (0.5,0.2 for 64-32-10)",
                                Numbers(low=0), optional=True)
    batch_size: int = setting(20, "minibatch size", Number(int, low=1))
    epochs: int = setting(10, "number of epochs", Number(int, low=1))
    symmetric: bool = setting(False, "nudge with +beta and -beta", Flag())
    random_sign: bool = setting(False, "random sign of beta per minibatch", Flag())
    checkpoint_every: int = setting(0, "minibatches between checkpoints (0: every epoch)", Number(int, low=0))
    keep_every: int = setting(0, "keep a snapshot of the checkpoint every N epochs, to branch from "
                              "('analogprop branch'; 0: none)", Number(int, low=0))
    lr_decay: float = setting(1.0, "learning-rate factor per epoch from --lr-decay-start on",
                              Number(float, low=0, high=1, low_open=True))
    lr_decay_start: int = setting(1, "first epoch (1-based) with a decayed learning rate", Number(int, low=1))
    weight_decay: float = setting(0.0, "lambda of the regulariser lambda/2 ||W||^2 on the weights (synaptic "
                                  "depression -lambda W)", Number(float, low=0))
    shift: int = setting(0, "move each training image by a random offset of up to N pixels per axis "
                         "(augmentation)", Number(int, low=0), unit="pixels")
    centered: bool = setting(False, "presynaptic rates minus their batch mean in the weight updates (centring; "
                             "not in the paper)", Flag())
    rule: str = setting("two-phase", "two-phase (the paper's rule, Eq. 56) or gradient (true-gradient baseline, "
                        "ideal driver)", Choice(*RULES))
    probe: int = setting(0, "probe batch size for per-epoch gradient diagnostics (0: off)", Number(int, low=0),
                         unit="samples")
    optimizer: str = setting("sgd", "how estimates become steps: sgd (the paper's) or adam (per-synapse moments; "
                             "not in the paper)", Choice(*OPTIMIZERS))
    adam_betas: tuple = setting((0.9, 0.999), "Adam's two moment decay rates",
                                Numbers(length=2, low=0, high=1, high_open=True))
    adam_eps: float = setting(1e-8, "Adam's epsilon", Number(float, low=0, low_open=True))
    feedback_lr_factor: float = setting(1.0, "factor on the feedback weights' learning rates (1: the paper's "
                                        "rule; 0: fixed feedback)", Number(float, low=0))
    alignment_drift: bool = setting(False, "record per epoch the forward and the feedback updates' parts of each "
                                    "pair's alignment change", Flag())
    same_update: bool = setting(False, "forward and feedback weights of each hidden pair both take the mean of "
                                "their two updates (after VFCNN's same-update; not in the paper)", Flag())


_SPREAD = Number(float, low=0)


@dataclass(frozen=True)
class CircuitConfig(Section):
    NAME: ClassVar[str] = "circuit"
    TITLE: ClassVar[str] = "circuit (--driver circuit or ngspice)"
    PREFIX: ClassVar[str] = "driver_"
    #: fields of analogprop.circuit.mismatch.Mismatch and the config knobs of CrossbarDesign
    MISMATCH: ClassVar[tuple] = ("g_dtod", "gain_dtod", "offset_dtod", "leak_dtod", "cap_dtod", "write_noise_std",
                                 "read_noise_std")
    DESIGN: ClassVar[tuple] = ("g_min", "g_max", "w_max", "resolution_bits")
    #: settings of a network of the user's own subcircuits (--circuit-spec; analogprop.drivers.user_circuit)
    USER: ClassVar[tuple] = ("circuit_spec", "temperature", "spot_checks")
    #: settings of the vground level's non-idealities (analogprop.circuit.nonideal.Nonidealities)
    NONIDEAL: ClassVar[tuple] = ("opamp_gain", "opamp_rout", "opamp_rail", "opamp_offset", "opamp_gbw", "device_v0",
                                 "pelgrom_a", "device_area", "gradient", "field_std", "field_length", "tile", "die_temp",
                                 "tc1", "tc2", "clamp_model", "diode_is", "diode_n", "diode_rs", "wire_r_row",
                                 "wire_r_col")

    level: str = setting("behavioural", "circuit level: behavioural (0), crossbar (1) or vground (2, the "
                         "virtual-ground crossbar with its non-idealities)",
                         Choice("behavioural", "crossbar", "vground",
                                aliases={"behavioral": "behavioural", "0": "behavioural", 0: "behavioural",
                                         "1": "crossbar", 1: "crossbar", "2": "vground", 2: "vground"}),
                         metavar="LEVEL")
    die: int = setting(0, "die seed of the device mismatch", Number(int, low=0), metavar="SEED")
    g_dtod: float = setting(0.0, "log-normal spread of conductances/transconductances", _SPREAD, metavar="X")
    gain_dtod: float = setting(0.0, "log-normal spread of buffer and inverter gains", _SPREAD, metavar="X")
    offset_dtod: float = setting(0.0, "std of buffer/inverter offsets", _SPREAD, unit="V", metavar="X")
    leak_dtod: float = setting(0.0, "log-normal spread of leak conductances", _SPREAD, metavar="X")
    cap_dtod: float = setting(0.0, "log-normal spread of capacitors", _SPREAD, metavar="X")
    write_noise_std: float = setting(0.0, "std of the additive programming error per write", _SPREAD,
                                     unit="g_unit", metavar="X")
    read_noise_std: float = setting(0.0, "std of the noise of every measured voltage", _SPREAD, unit="V",
                                    metavar="X")
    g_min: float = setting(0.1, "crossbar: smallest programmable conductance", Number(float, low=0),
                           unit="g_unit", metavar="X")
    g_max: float = setting(1.0, "crossbar: largest programmable conductance (above g_min)", Number(float, low=0),
                           unit="g_unit", metavar="X")
    w_max: float = setting(2.0, "crossbar: largest |weight| of the nominal mapping",
                           Number(float, low=0, low_open=True), metavar="X")
    resolution_bits: int | None = setting(None, "crossbar: programming resolution, 2**bits levels (none: "
                                          "continuous)", Number(int, low=1, high=32), optional=True,
                                          metavar="BITS")
    clamp: bool = setting(True, "node clamps keep node voltages within the buffers' range", Flag(),
                          cli_help="no node clamps: node voltages run past the buffers' range (default: clamped)")
    newton_iters: int = setting(100, "Newton iterations after the sweeps for unconverged samples",
                                Number(int, low=0), metavar="N")
    circuit_spec: str | None = setting(None, "circuit specification TOML of the user's own neuron and synapse "
                                       "subcircuits (docs/own-circuit.md): --driver circuit then builds the network "
                                       "from them (tables characterized by ngspice) and reads only --die here",
                                       Text("a file path"), optional=True, metavar="FILE", sparse=True)
    temperature: float | None = setting(None, "with --circuit-spec: operating temperature (none: the "
                                        "specification's)", Number(float, low=-273.15, low_open=True), unit="C",
                                        optional=True, metavar="X", sparse=True)
    spot_checks: int = setting(0, "with --circuit-spec: samples of every free phase also solved by ngspice (the "
                               "largest node-voltage difference is kept)", Number(int, low=0), metavar="N",
                               sparse=True)

    def __post_init__(self):
        super().__post_init__()
        if self.g_max <= self.g_min:
            g_min, g_max = (k for k in self.keys() if k.name in ("g_min", "g_max"))
            raise ConfigError(f"{g_max} must exceed {g_min}: got g_max {self.g_max} and g_min {self.g_min}")

    opamp_gain: float | None = setting(1e6, "vground: open-loop gain of every column's op-amp (none: an exact "
                                       "virtual ground)", Number(float, low=0, low_open=True), unit="V/V",
                                       optional=True, metavar="X", sparse=True)
    opamp_rout: float = setting(0.0, "vground: op-amp output resistance", Number(float, low=0), unit="ohm",
                                metavar="X", sparse=True)
    opamp_rail: float | None = setting(None, "vground: op-amp output rails +-X (none: no rails; needs a finite "
                                       "opamp_gain)", Number(float, low=0, low_open=True), unit="V",
                                       optional=True, metavar="X", sparse=True)
    opamp_offset: float = setting(0.0, "vground: std of the op-amps' input offsets (drawn per die)", _SPREAD,
                                  unit="V", metavar="X", sparse=True)
    opamp_gbw: float | None = setting(None, "vground: gain-bandwidth product of the op-amps, a single pole at "
                                      "GBW / opamp_gain seen only by transients (none: no pole)",
                                      Number(float, low=0, low_open=True), unit="Hz", optional=True, metavar="X",
                                      sparse=True)
    device_v0: float | None = setting(None, "vground: I-V nonlinearity of the programmable devices, "
                                      "I = G V0 sinh(V / V0) (none: linear)", Number(float, low=0, low_open=True),
                                      unit="V", optional=True, metavar="X", sparse=True)
    pelgrom_a: float = setting(0.0, "vground: Pelgrom coefficient A_G of the devices' relative spread "
                               "A_G / sqrt(W L), added in quadrature to g_dtod", Number(float, low=0), unit="um",
                               metavar="X", sparse=True)
    device_area: float = setting(1.0, "vground: device area W L of the Pelgrom spread",
                                 Number(float, low=0, low_open=True), unit="um^2", metavar="X", sparse=True)
    gradient: float = setting(0.0, "vground: relative conductance change across a tile (linear gradient, "
                              "direction drawn per die and tile)", Number(float, low=0), metavar="X", sparse=True)
    field_std: float = setting(0.0, "vground: relative std of a smooth random conductance field over each tile",
                               Number(float, low=0), metavar="X", sparse=True)
    field_length: float = setting(32.0, "vground: correlation length of that field", Number(float, low=0,
                                  low_open=True), unit="crosspoints", metavar="X", sparse=True)
    tile: int = setting(256, "vground: crossbar tile size (rows = columns)", Number(int, low=1),
                        unit="crosspoints", metavar="N", sparse=True)
    die_temp: float = setting(27.0, "vground: die temperature (the programmable devices follow tc1, tc2 from 27 C)",
                              Number(float, low=-273.15, low_open=True), unit="C", metavar="X", sparse=True)
    tc1: float = setting(0.0, "vground: first-order temperature coefficient of the programmable devices", Number(float),
                         unit="1/K", metavar="X", sparse=True)
    tc2: float = setting(0.0, "vground: second-order temperature coefficient of the programmable devices", Number(float),
                         unit="1/K^2", metavar="X", sparse=True)
    clamp_model: str = setting("pwl", "vground: node clamps as an ideal piecewise-linear limiter (pwl) or as two "
                               "antiparallel diodes behind bias sources at the clamp levels (diode; Shockley's law "
                               "with diode_is, diode_n, diode_rs)", Choice("pwl", "diode"), metavar="MODEL",
                               sparse=True)
    diode_is: float = setting(1e-14, "vground: saturation current Is of the clamp diodes (at 27 C; ngspice's "
                              "temperature law)", Number(float, low=0, low_open=True), unit="A", metavar="X",
                              sparse=True)
    diode_n: float = setting(1.0, "vground: emission coefficient n of the clamp diodes (dimensionless)",
                             Number(float, low=0, low_open=True), metavar="X", sparse=True)
    diode_rs: float = setting(10.0, "vground: series resistance Rs of the clamp diodes", Number(float, low=0),
                              unit="ohm", metavar="X", sparse=True)
    wire_r_row: float = setting(0.0, "vground: resistance of each row-wire segment between adjacent crosspoints of "
                                "a tile (0: ideal wires; needs opamp_gain none and linear devices)",
                                Number(float, low=0), unit="ohm", metavar="X", sparse=True)
    wire_r_col: float = setting(0.0, "vground: resistance of each column-wire segment between adjacent crosspoints "
                                "of a tile (0: ideal wires; needs opamp_gain none and linear devices)",
                                Number(float, low=0), unit="ohm", metavar="X", sparse=True)

    def nonideal_kwargs(self) -> dict:
        """Keyword arguments of :class:`analogprop.circuit.nonideal.Nonidealities` (None: off, i.e. inf)."""
        inf = float("inf")
        out = {k: getattr(self, k) for k in ("opamp_rout", "opamp_offset", "pelgrom_a", "device_area", "gradient",
                                             "field_std", "field_length", "tile", "tc1", "tc2", "clamp_model",
                                             "diode_is", "diode_n", "diode_rs", "wire_r_row", "wire_r_col")}
        out.update(temp=self.die_temp, opamp_gain=inf if self.opamp_gain is None else self.opamp_gain,
                   opamp_rail=inf if self.opamp_rail is None else self.opamp_rail,
                   opamp_gbw=inf if self.opamp_gbw is None else self.opamp_gbw,
                   device_v0=inf if self.device_v0 is None else self.device_v0)
        return out

    def mismatch_kwargs(self) -> dict:
        """Keyword arguments of :class:`analogprop.circuit.mismatch.Mismatch`."""
        return {k: getattr(self, k) for k in self.MISMATCH}

    def design_kwargs(self) -> dict:
        """Keyword arguments of :class:`analogprop.circuit.mismatch.CrossbarDesign`."""
        return {k: getattr(self, k) for k in self.DESIGN}


@dataclass(frozen=True)
class NgspiceConfig(Section):
    NAME: ClassVar[str] = "ngspice"
    TITLE: ClassVar[str] = "ngspice (--driver ngspice; also takes the circuit options)"
    PREFIX: ClassVar[str] = "driver_"

    netlist_dir: str | None = setting(None, "directory for the minibatch netlist ngspice runs (none: a temporary "
                                      "directory)", Text("a directory path"), optional=True)


@dataclass(frozen=True)
class VisaConfig(Section):
    NAME: ClassVar[str] = "visa"
    TITLE: ClassVar[str] = "bench (--driver visa)"
    PREFIX: ClassVar[str] = "driver_"

    profile: str | None = setting(None, "bench profile TOML (see instruments/); needed by the visa driver",
                                  Text("a file path"), optional=True)
    visa_backend: str = setting("@py", "pyvisa backend (@py: pyvisa-py)", Text())


SECTIONS = (DataConfig, ModelConfig, DriverConfig, SolverConfig, TrainingConfig, CircuitConfig, NgspiceConfig,
            VisaConfig)

#: the sections each driver reads besides the common ones
DRIVER_SECTIONS = {"ideal": (), "circuit": ("circuit",), "ngspice": ("circuit", "ngspice"), "visa": ("visa",)}
#: the sections only some drivers read (their config.json keys start with driver_)
DRIVER_ONLY = tuple(s.NAME for s in SECTIONS if s.PREFIX)
