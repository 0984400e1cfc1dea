"""The circuit benchmarks and the sweep example end to end: circuit_mnist.py on a fake MNIST slice,
robustness.py in quick mode, circuit_clamp.py, and sweep_digits.py on a small grid."""
from pathlib import Path

import pytest

from analogprop.sweep import make_spec, read_spec_file
from conftest import ROOT, load_script, printed_values
from test_mnist_benchmark import fake_mnist  # noqa: F401 (fixture)


def test_circuit_mnist_trains_a_mismatched_crossbar_on_a_slice(fake_mnist, capsys):
    bench = load_script("benchmarks/circuit_mnist.py")
    bench.main(["--data-dir", str(fake_mnist), "--arch", "784-12-10", "--train-subset", "300", "--test-subset", "30",
                "--epochs", "3", "--lrs", "0.5,0.25"])
    printed = printed_values(capsys.readouterr().out)
    for epoch in (1, 2, 3):
        assert 0.0 <= float(printed[f"epoch {epoch} test error"]) <= 1.0
        free, nudged = map(int, printed[f"epoch {epoch} unconverged free/nudged"].split("/"))
        assert free == nudged == 0
    # the circuit learns the fake digits' class patches: far below chance (90%) after three epochs
    assert float(printed["epoch 3 train error"]) < 0.5 and float(printed["epoch 3 test error"]) < 0.5


def test_robustness_quick_shows_in_circuit_training_recovering_mismatch(capsys):
    load_script("benchmarks/robustness.py").main(["--quick"])
    printed = {k: float(v) for k, v in printed_values(capsys.readouterr().out).items()}
    assert printed["ideal test error"] < 0.15
    assert len(printed) == 1 + 2 * 2 * 3  # two levels x two spreads x deployed / verified / in-circuit
    # at the larger spread, training on the die beats deploying the ideal weights onto it
    for level in ("behavioural", "crossbar"):
        assert printed[f"{level} spread 0.1 in-circuit test error"] < printed[f"{level} spread 0.1 deployed test error"]


def test_clamp_benchmark_finds_no_converged_state_violating_kcl(capsys):
    load_script("benchmarks/circuit_clamp.py").main()
    printed = printed_values(capsys.readouterr().out)
    for case in ("moderate_20-12-5", "stiff_30-20-12-5"):
        assert int(printed[f"{case}_inverted_windows"]) > 0  # the mismatch does invert some clamp windows
        assert int(printed[f"{case}_converged_but_kcl_violated"]) == 0
        assert float(printed[f"{case}_worst_converged_kcl_volts"]) <= 1e-8


@pytest.mark.parametrize("name", ["sweep_digits", "sweep_mnist"])
def test_example_grid_files_are_valid_sweeps(name):
    spec = make_spec(read_spec_file(ROOT / "examples" / f"{name}.toml"), data_dir="unused")
    assert spec.knob_names() == ["g_dtod", "offset_dtod"] and spec.settings["level"] == "crossbar"


def test_sweep_example_prints_its_table_and_figure(tmp_path, capsys):
    grid = tmp_path / "small.toml"
    grid.write_text('arch = "64-16-10"\nepochs = 2\ndies = 1\nfinetune_epochs = 1\n[grid]\ng_dtod = [0.0, 0.1]\n')
    example = load_script("examples/sweep_digits.py")
    example.main(grid, argv=["--out", str(tmp_path / "out"), "--workers", "0"])
    out = capsys.readouterr().out
    assert "g_dtod" in out and (tmp_path / "out" / "results.csv").exists()
    figures = [line.split(": ", 1)[1] for line in out.splitlines() if line.startswith("figure: ")]
    assert figures and all(Path(f).read_bytes()[:4] == b"\x89PNG" for f in figures)
