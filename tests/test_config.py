"""The typed configuration tree: defaults, validation, config.json, TOML layers, generated CLI, lrs rule."""
import argparse
import json
import shlex
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest

from analogprop.cli import commands as cli
from analogprop.runs import build
from analogprop.config import (KEYS, RunConfig, default_lrs, flatten, from_flat, load_toml, merge, resolve_lrs)
from analogprop.cli.config_options import add_arguments, config_from_args, given_from_args, overrides_from_args
from analogprop.config.sections import CircuitConfig, DriverConfig, ModelConfig, TrainingConfig
from analogprop.errors import AnalogpropError, ConfigError

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted((ROOT / "experiments").glob("**/config.json"))

# `analogprop train` command lines of README.md (minus the run-directory options)
README_LINES = [
    "--arch 64-32-10 --epochs 15",
    "--dataset mnist --data-dir ../shared/datasets/mnist --arch 784-512-512-10 --lrs 0.4,0.1,0.01",
    "--driver visa --profile instruments/emulated-64-32-10.toml --epochs 5 --checkpoint-every 10",
    "--probe 100 --rule gradient",
    "--arch 1x8x8-c8k3-c16k3p2-10 --lrs 0.1,0.05,0.2 --beta 1 --epochs 3",
    "--driver circuit --level crossbar --g-dtod 0.05 --gain-dtod 0.02 --offset-dtod 1e-4 "
    "--resolution-bits 10 --die 3 --lrs 0.25,0.1 --epochs 15",
    "--driver ngspice --g-dtod 0.1 --die 3 --epochs 5",
    "--driver circuit --no-clamp --epochs 3 --lrs 0.5,0.2",
    "--dataset mnist --arch 784-256-10 --linear-output --rule gradient --lrs 0.06,0.015 --beta 0.2 --symmetric "
    "--epochs 25 --lr-decay 0.85 --lr-decay-start 16 --probe 50 --no-bias --tied --download --seed 4 "
    "--solver euler --euler-step 0.25 --tol 1e-4 --max-steps 300 --dtype float32 --batch-size 10 --keep-every 5 "
    "--weight-decay 5e-5 --shift 1 --centered --optimizer adam --adam-betas 0.8,0.99 --adam-eps 1e-7 "
    "--feedback-lr-factor 0.5 --alignment-drift --random-sign --feedback-init mirrored",
]


def train_args(line):
    return cli.make_parser().parse_args(["train", *shlex.split(line)])


def new_parser(**kw):
    p = argparse.ArgumentParser(prog="analogprop train")
    add_arguments(p, **kw)
    return p


def new_args(line, **kw):
    return new_parser(**kw).parse_args(shlex.split(line))


def train_parser():
    sub = next(a for a in cli.make_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices["train"]


# -- defaults, and the choices and defaults other modules hold --------------------------------------------------
def test_defaults_are_the_flat_defaults():
    cfg = RunConfig()
    assert cfg.to_flat() == build.DEFAULTS == build.complete({})
    assert cfg.learning_rates == (0.5, 0.2) and cfg.training.lrs is None
    assert (cfg.seed, cfg.model.arch, cfg.driver.name, cfg.circuit.level) == (0, "64-32-10", "ideal", "behavioural")


def test_duplicated_choices_agree_with_their_sources():
    from analogprop.circuit.description import LEVELS, parse_level
    from analogprop.model.network import FEEDBACK_INITS
    from analogprop.training.optimizers import OPTIMIZERS
    from analogprop.training.rules import TRAINERS

    assert ModelConfig.FEEDBACK_INITS == FEEDBACK_INITS
    assert set(DriverConfig.NAMES) == set(build.DRIVERS)
    assert set(TrainingConfig.RULES) == set(TRAINERS)
    assert TrainingConfig.OPTIMIZERS == OPTIMIZERS
    level = KEYS["driver_level"].meta["check"]
    assert set(level.choices) == set(LEVELS)
    for alias, name in level.aliases.items():
        assert parse_level(alias) == name


def test_circuit_section_matches_mismatch_design_and_solver():
    from analogprop.circuit.mismatch import CrossbarDesign, Mismatch
    from analogprop.circuit.solver import CircuitSolver

    assert CircuitConfig.MISMATCH == tuple(f.name for f in fields(Mismatch))
    c = CircuitConfig()
    assert Mismatch(**c.mismatch_kwargs()) == Mismatch()
    assert CrossbarDesign(**c.design_kwargs()) == CrossbarDesign()
    assert c.newton_iters == CircuitSolver.newton_iters


def test_every_circuit_and_ngspice_setting_reaches_its_driver(tmp_path):
    from analogprop.circuit.mismatch import CrossbarDesign, Mismatch
    from analogprop.model.network import Network

    circuit = {k.name: k for k in CircuitConfig.keys()   # tests/test_own_circuit.py, tests/test_vground.py
               if k.name not in CircuitConfig.USER + CircuitConfig.NONIDEAL}
    values = {"level": "crossbar", "die": 2, "clamp": False, "newton_iters": 7, "resolution_bits": 8,
              "g_min": 0.2, "g_max": 0.9, "w_max": 1.5}
    values.update({k: 0.01 * (i + 1) for i, k in enumerate(CircuitConfig.MISMATCH)})
    assert set(values) == set(circuit)
    run = merge({"driver": {"name": "circuit"}, "circuit": values, "solver": {"tol": 1e-4, "max_steps": 33}})
    flat = run.to_flat()
    assert {k for k in flat if k.startswith("driver_")} == {k.flat for k in circuit.values()}
    drv = build.make_driver(flat, Network.create((4, 3)))
    c = drv.circuit
    assert c.crossbar and c.die == 2 and "clamp1" not in c.values and drv.solver.newton_iters == 7
    assert c.mismatch == Mismatch(**{k: values[k] for k in CircuitConfig.MISMATCH})
    assert c.design == CrossbarDesign(**{k: values[k] for k in CircuitConfig.DESIGN})
    assert drv.solver.max_sweeps == 33 and drv.solver.tol == pytest.approx(1e-4 / max(c.unit_gain))
    spice = build.make_driver({**flat, "driver": "ngspice", "driver_netlist_dir": str(tmp_path)},
                              Network.create((4, 3)))
    assert spice.solver.workdir == tmp_path and spice.circuit.die == 2


def test_trainer_settings_are_train_configs_fields():
    from analogprop.training.trainer import TrainConfig

    cfg = from_flat({"arch": "784-512-512-10"})
    kw = cfg.training_kwargs()
    assert set(kw) == {f.name for f in fields(TrainConfig)}
    tc = TrainConfig(**kw).validate(cfg.n_pairs)  # today's default [0.5, 0.2] fails for three pairs
    assert tc.lrs == (0.5, 0.2, 0.08)


def test_train_options_are_the_trees_and_the_runs():
    def options(parser, skip):
        return {(tuple(a.option_strings), a.dest) for a in parser._actions
                if a.option_strings and a.dest not in skip}

    run_options = {"out", "resume", "overwrite", "quiet", "init", "init_matching", "threads"}
    assert options(new_parser(config_file=True), {"help"}) == options(train_parser(), {"help", *run_options})


# -- validation -----------------------------------------------------------------------------------------------------
BAD = [
    ({"beta": 0}, "training.beta", "--beta", "'beta'", "0", "> 0"),
    ({"beta": "0.5"}, "training.beta", "--beta", "'beta'", "'0.5'", "a finite number"),
    ({"beta": float("nan")}, "training.beta", "--beta", "'beta'", "nan", "a finite number"),
    ({"beta": True}, "training.beta", "--beta", "'beta'", "True", "a finite number"),
    ({"epochs": 1.5}, "training.epochs", "--epochs", "'epochs'", "1.5", "an integer >= 1"),
    ({"epochs": True}, "training.epochs", "--epochs", "'epochs'", "True", "an integer"),
    ({"epochs": "10"}, "training.epochs", "--epochs", "'epochs'", "'10'", "an integer"),
    ({"epochs": 0}, "training.epochs", "--epochs", "'epochs'", "0", ">= 1"),
    ({"batch_size": -3}, "training.batch_size", "--batch-size", "'batch_size'", "-3", ">= 1"),
    ({"lrs": [0.1, -0.2]}, "training.lrs", "--lrs", "'lrs'", "-0.2", ">= 0"),
    ({"lrs": "0.1,0.2"}, "training.lrs", "--lrs", "'lrs'", "'0.1,0.2'", "a list of finite numbers"),
    ({"lrs": []}, "training.lrs", "--lrs", "'lrs'", "[]", "at least one"),
    ({"lrs": [0.1, 0.2, 0.3]}, "training.lrs", "--lrs", "'lrs'", "[0.1, 0.2, 0.3]", "2 layer pairs"),
    ({"adam_betas": [0.9]}, "training.adam_betas", "--adam-betas", "'adam_betas'", "[0.9]", "2 finite numbers"),
    ({"adam_betas": [0.9, 1.0]}, "training.adam_betas", "--adam-betas", "'adam_betas'", "1.0", "in [0, 1)"),
    ({"adam_eps": 0.0}, "training.adam_eps", "--adam-eps", "'adam_eps'", "0.0", "> 0"),
    ({"lr_decay": 1.5}, "training.lr_decay", "--lr-decay", "'lr_decay'", "1.5", "in (0, 1]"),
    ({"lr_decay": 0}, "training.lr_decay", "--lr-decay", "'lr_decay'", "0", "in (0, 1]"),
    ({"lr_decay_start": 0}, "training.lr_decay_start", "--lr-decay-start", "'lr_decay_start'", "0", ">= 1"),
    ({"weight_decay": -1e-3}, "training.weight_decay", "--weight-decay", "'weight_decay'", "-0.001", ">= 0"),
    ({"shift": 0.5}, "training.shift", "--shift", "'shift'", "0.5", "an integer >= 0"),
    ({"checkpoint_every": -1}, "training.checkpoint_every", "--checkpoint-every", "'checkpoint_every'", "-1", ">= 0"),
    ({"probe": "all"}, "training.probe", "--probe", "'probe'", "'all'", "an integer"),
    ({"rule": "hebbian"}, "training.rule", "--rule", "'rule'", "'hebbian'", "'two-phase', 'gradient'"),
    ({"optimizer": "rmsprop"}, "training.optimizer", "--optimizer", "'optimizer'", "'rmsprop'", "'sgd', 'adam'"),
    ({"feedback_lr_factor": -1}, "training.feedback_lr_factor", "--feedback-lr-factor", "'feedback_lr_factor'", "-1",
     ">= 0"),
    ({"alignment_drift": 1}, "training.alignment_drift", "--alignment-drift", "'alignment_drift'", "1",
     "true or false"),
    ({"symmetric": "yes"}, "training.symmetric", "--symmetric", "'symmetric'", "'yes'", "true or false"),
    ({"seed": -1}, "seed", "--seed", "'seed'", "-1", "an integer >= 0"),
    ({"arch": "64-abc-10"}, "model.arch", "--arch", "'arch'", "'64-abc-10'", "an architecture"),
    ({"arch": 64}, "model.arch", "--arch", "'arch'", "64", "an architecture"),
    ({"bias": "false"}, "model.bias", "--no-bias", "'bias'", "'false'", "true or false"),
    ({"feedback_init": "zero"}, "model.feedback_init", "--feedback-init", "'feedback_init'", "'zero'", "'mirrored'"),
    ({"dataset": 3}, "data.dataset", "--dataset", "'dataset'", "3", "a dataset name"),
    ({"dataset": " "}, "data.dataset", "--dataset", "'dataset'", "' '", "a dataset name"),
    ({"data_dir": 3}, "data.data_dir", "--data-dir", "'data_dir'", "3", "a path"),
    ({"driver": "spice"}, "driver.name", "--driver", "'driver'", "'spice'", "'ngspice'"),
    ({"solver": "newton"}, "solver.method", "--solver", "'solver'", "'newton'", "'fast', 'euler'"),
    ({"tol": -1e-5}, "solver.tol", "--tol", "'tol'", "-1e-05", "> 0"),
    ({"max_steps": 0}, "solver.max_steps", "--max-steps", "'max_steps'", "0", ">= 1"),
    ({"euler_step": 0}, "solver.euler_step", "--euler-step", "'euler_step'", "0", "in (0, 1]"),
    ({"nudge_steps": -2}, "solver.nudge_steps", "--nudge-steps", "'nudge_steps'", "-2", ">= 0"),
    ({"dtype": "float16"}, "solver.dtype", "--dtype", "'dtype'", "'float16'", "'float64', 'float32'"),
    ({"driver_level": "analog"}, "circuit.level", "--level", "'driver_level'", "'analog'", "'crossbar'"),
    ({"driver_die": 1.5}, "circuit.die", "--die", "'driver_die'", "1.5", "an integer >= 0"),
    ({"driver_g_dtod": -0.1}, "circuit.g_dtod", "--g-dtod", "'driver_g_dtod'", "-0.1", ">= 0"),
    ({"driver_read_noise_std": "1mV"}, "circuit.read_noise_std", "--read-noise-std", "'driver_read_noise_std'",
     "'1mV'", "a finite number"),
    ({"driver_resolution_bits": 2.5}, "circuit.resolution_bits", "--resolution-bits", "'driver_resolution_bits'",
     "2.5", "an integer in [1, 32]"),
    ({"driver_resolution_bits": 40}, "circuit.resolution_bits", "--resolution-bits", "'driver_resolution_bits'",
     "40", "in [1, 32]"),
    ({"driver_newton_iters": -1}, "circuit.newton_iters", "--newton-iters", "'driver_newton_iters'", "-1", ">= 0"),
    ({"driver_w_max": 0}, "circuit.w_max", "--w-max", "'driver_w_max'", "0", "> 0"),
    ({"driver_g_min": 2.0}, "circuit.g_max", "--g-max", "'driver_g_max'", "2.0", "must exceed circuit.g_min"),
    ({"driver_clamp": 0}, "circuit.clamp", "--no-clamp", "'driver_clamp'", "0", "true or false"),
    ({"driver_netlist_dir": 5}, "ngspice.netlist_dir", "--netlist-dir", "'driver_netlist_dir'", "5", "a directory"),
    ({"driver_visa_backend": ""}, "visa.visa_backend", "--visa-backend", "'driver_visa_backend'", "''", "non-empty"),
]


@pytest.mark.parametrize("flat, path, flag, flat_key, value, accepted", BAD)
def test_bad_values_are_refused_naming_the_setting(flat, path, flag, flat_key, value, accepted):
    with pytest.raises(ConfigError) as e:
        from_flat(flat)
    msg = str(e.value)
    for part in (path, flag, flat_key, value, accepted):
        assert part in msg, (part, msg)
    assert isinstance(e.value, AnalogpropError)


@pytest.mark.parametrize("flat, needle", [
    ({"driver": "circuit", "nudge_steps": 8}, "solver.nudge_steps"),
    ({"driver": "ngspice", "linear_output": True}, "model.linear_output"),
    ({"driver": "circuit", "rule": "gradient"}, "training.rule"),
    ({"driver": "visa"}, "visa.profile"),
    ({"driver": "visa", "driver_profile": "bench.toml", "symmetric": True}, "training.symmetric"),
    ({"driver": "visa", "driver_profile": "bench.toml", "random_sign": True}, "training.random_sign"),
    ({"driver": "visa", "driver_profile": "bench.toml", "tied": True}, "model.tied"),
    ({"arch": "784-512-512-10", "lrs": [0.5, 0.2]}, "3 layer pairs"),
])
def test_rules_between_settings(flat, needle):
    with pytest.raises(ConfigError, match=needle.replace(".", r"\.")):
        from_flat(flat)


def test_normalised_values():
    cfg = from_flat({"beta": 1, "epochs": 3.0, "lrs": [1, 0], "arch": [64, 16, 10], "driver": "circuit",
                     "driver_level": 1, "driver_resolution_bits": 12.0})
    assert cfg.training.beta == 1.0 and isinstance(cfg.training.beta, float)
    assert cfg.training.epochs == 3 and isinstance(cfg.training.epochs, int)
    assert cfg.training.lrs == (1.0, 0.0) and all(isinstance(v, float) for v in cfg.training.lrs)
    assert cfg.model.arch == "64-16-10" and cfg.circuit.level == "crossbar" and cfg.circuit.resolution_bits == 12


def test_unknown_keys_are_refused_by_name():
    with pytest.raises(ConfigError, match=r"unknown configuration keys \['bta'\] \(did you mean 'beta'\?\)"):
        from_flat({"bta": 0.5})
    with pytest.raises(ConfigError, match="driver_gdtod"):
        from_flat({"driver_gdtod": 0.1, "driver_level": None})
    with pytest.raises(ConfigError, match=r"unknown key training\.bta \(did you mean 'beta'\?\)"):
        merge({"training": {"bta": 1.0}})
    with pytest.raises(ConfigError, match="'trainig'.*did you mean 'training'"):
        merge({"trainig": {"beta": 1.0}})
    with pytest.raises(ConfigError, match=r"driver is a section; give it as a table \(\[driver\] with keys name\)"):
        merge({"driver": "circuit"})


def test_driver_settings_the_driver_would_ignore_are_refused():
    with pytest.raises(ConfigError, match=r"circuit\.g_dtod \(--g-dtod.*not read by the ideal driver"):
        merge({"circuit": {"g_dtod": 0.1}})
    with pytest.raises(ConfigError, match=r"visa\.profile.*not read by the circuit driver"):
        merge({"driver": {"name": "circuit"}, "visa": {"profile": "bench.toml"}})
    ok = merge({"driver": {"name": "ngspice"}, "circuit": {"g_dtod": 0.1}, "ngspice": {"netlist_dir": "nets"}})
    assert ok.to_flat()["driver_netlist_dir"] == "nets"
    assert merge({"circuit": {"die": 0}}).to_flat() == build.DEFAULTS  # a default is no setting


# -- config.json --------------------------------------------------------------------------------------------------
def test_shipped_and_recorded_runs_round_trip():
    assert len(SHIPPED) >= 12
    defaults = RunConfig().to_flat()
    exact = 0
    for path in SHIPPED:
        flat = json.loads(path.read_text())
        out = from_flat(flat).to_flat()
        for k, v in flat.items():  # every stored key comes back with its value and JSON type
            assert out[k] == v and type(out[k]) is type(v), (path, k)
        for k in set(out) - set(flat):  # keys a run predates hold their defaults (its behaviour then)
            assert out[k] == defaults[k], (path, k)
        assert from_flat(out).to_flat() == out
        stored = {k: v for k, v in out.items() if k in flat}  # the keys the run has, in the tree's order
        if list(stored) == list(flat):
            assert json.dumps(stored, indent=2) == path.read_text()  # byte for byte, key order included
            exact += 1
    assert exact >= 8


@pytest.mark.parametrize("line", [
    "--epochs 1 --arch 64-12-10 --lrs 0.3",
    "--epochs 1 --driver circuit --level crossbar --g-dtod 0.05 --resolution-bits 10 --die 3 --no-clamp",
])
def test_configs_written_by_analogprop_train_round_trip(tmp_path, line):
    assert cli.main(["train", *shlex.split(line), "--out", str(tmp_path), "--quiet"]) == 0
    flat = json.loads((tmp_path / "config.json").read_text())
    assert from_flat(flat).to_flat() == flat
    assert json.dumps(from_flat(flat).to_flat()) == json.dumps(flat)  # same keys in the same order


@pytest.mark.parametrize("line", README_LINES)
def test_train_writes_the_merged_configuration(line):
    args = train_args(line)
    flat = config_from_args(args).to_flat()  # what `analogprop train` writes
    assert from_flat(flat).to_flat() == flat == build.complete(flatten(overrides_from_args(args)))


# -- TOML files and precedence --------------------------------------------------------------------------------------
TOML = """
seed = 3

[data]
dataset = "digits"

[model]
arch = "64-16-16-10"

[training]
beta = 0.25
epochs = 4
lrs = [0.3, 0.1, 0.05]

[driver]
name = "circuit"

[circuit]
g_dtod = 0.02
die = 5
"""


def test_toml_file_then_command_line_over_defaults(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text(TOML)
    layer = load_toml(path)
    assert layer["training"] == {"beta": 0.25, "epochs": 4, "lrs": (0.3, 0.1, 0.05)}
    args = new_args(f"--config {path} --epochs 7 --die 6 --batch-size 5", config_file=True)
    cfg = config_from_args(args)
    assert (cfg.training.epochs, cfg.circuit.die, cfg.training.batch_size) == (7, 6, 5)  # command line wins
    assert (cfg.training.beta, cfg.seed, cfg.circuit.g_dtod, cfg.driver.name) == (0.25, 3, 0.02, "circuit")  # file
    assert (cfg.training.lr_decay, cfg.solver.tol, cfg.circuit.level) == (1.0, 1e-5, "behavioural")  # defaults
    assert cfg == merge(layer, overrides_from_args(args))
    assert config_from_args(new_args("--epochs 7", config_file=True)) == merge({"training": {"epochs": 7}})


def test_a_saved_run_is_a_layer_too():
    saved = from_flat(json.loads(SHIPPED[0].read_text()))
    resumed = merge(saved, {"training": {"epochs": 60}})
    assert resumed.training.epochs == 60
    assert {k: v for k, v in resumed.to_flat().items() if k != "epochs"} == \
        {k: v for k, v in saved.to_flat().items() if k != "epochs"}


@pytest.mark.parametrize("text, needle", [
    ("[training]\nbeta = '0.5'\n", r"training\.beta \(--beta, config key 'beta'\) must be a finite number > 0, "
                                   r"got '0\.5'"),
    ("[training]\nepochs = true\n", r"training\.epochs .* got True"),
    ("[training]\nepochs = 2.5\n", r"training\.epochs .* got 2\.5"),
    ("[training]\nbeta = 1\nbeta = 2\n", "malformed TOML"),
    ("[training]\nbetta = 1\n", r"unknown key training\.betta \(did you mean 'beta'\?\)"),
    ("beta = 1\n", r"unknown configuration section or key 'beta'"),
    ("driver = 'circuit'\n", "driver is a section"),
])
def test_bad_toml_files_are_refused_naming_file_and_key(tmp_path, text, needle):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=needle) as e:
        load_toml(path)
    assert str(e.value).startswith(f"{path}: ")


def test_missing_toml_file(tmp_path):
    with pytest.raises(ConfigError, match="nothere.toml: cannot read"):
        load_toml(tmp_path / "nothere.toml")


# -- generated command line ---------------------------------------------------------------------------------------
def test_resume_passes_only_the_settings_given(tmp_path):
    path = tmp_path / "more.toml"
    path.write_text("[training]\nepochs = 12\n")
    assert given_from_args(train_args("--resume --epochs 7")) == {"epochs": 7}
    assert given_from_args(train_args(f"--resume --config {path}")) == {"epochs": 12}
    assert given_from_args(train_args(f"--resume --config {path} --epochs 7 --lr-decay 0.5")) == \
        {"epochs": 7, "lr_decay": 0.5}
    assert given_from_args(train_args("--resume")) == {}


def test_options_default_to_none_so_overrides_are_detectable():
    args = new_args("")
    assert all(getattr(args, k.flat) is None for k in KEYS.values())
    assert overrides_from_args(args) == {}


def test_sections_select_option_groups():
    p = new_parser(sections=("circuit",))
    assert {a.dest for a in p._actions} - {"help"} == {k.flat for k in CircuitConfig.keys()}
    assert "seed" in {a.dest for a in new_parser(sections=("model",))._actions}
    with pytest.raises(ValueError, match="unknown sections"):
        new_parser(sections=("circuits",))


def test_help_states_defaults_units_and_the_lrs_rule():
    text = " ".join(new_parser().format_help().split())
    assert "0.5 * 0.4**k for pair k (k = 0 at the input)" in text
    assert "nudging strength [a finite number > 0; default 0.5]" in text
    assert "std of buffer/inverter offsets (V) [a finite number >= 0; default 0.0]" in text
    assert "--no-bias no bias units" in text


def test_argparse_stays_in_the_cli_module():
    code = ("import sys, analogprop.config; "
            "print(sorted(m for m in sys.modules if m in ('argparse', 'numpy') or m.startswith('analogprop.') "
            "and not m.startswith('analogprop.config')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['analogprop.errors', 'analogprop.rates']"
    for path in (ROOT / "analogprop" / "config").glob("*.py"):
        assert "import argparse" not in path.read_text(), path


# -- learning rates for any depth ---------------------------------------------------------------------------------
def test_lrs_rule():
    assert default_lrs(2) == (0.5, 0.2)  # today's 64-32-10 default
    assert default_lrs(4) == (0.5, 0.2, 0.08, 0.032)
    assert default_lrs(1) == (0.5,)
    assert resolve_lrs(None, 3) == (0.5, 0.2, 0.08)
    assert resolve_lrs([0.1], 3) == (0.1, 0.1, 0.1)
    assert resolve_lrs((0.4, 0.1, 0.01), 3) == (0.4, 0.1, 0.01)
    with pytest.raises(ConfigError, match="got 2 learning rates .* 3 layer pairs"):
        resolve_lrs([0.4, 0.1], 3)


def test_default_rates_fit_any_depth():
    args = new_args("--arch 784-512-512-10")
    cfg = merge(overrides_from_args(args))
    assert cfg.learning_rates == (0.5, 0.2, 0.08)
    assert cfg.to_flat()["lrs"] == [0.5, 0.2, 0.08]
    assert from_flat({"arch": "1x28x28-c32k5p2-c64k5-10", "lrs": [0.02]}).learning_rates == (0.02,) * 3
    assert from_flat({"arch": "1x28x28-c32k5p2-c64k5-10", "lrs": [0.02]}).to_flat()["lrs"] == [0.02]
