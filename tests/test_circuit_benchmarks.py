"""benchmarks/circuit_mnist.py and benchmarks/robustness.py end to end, on a fake MNIST slice and in quick mode."""
from conftest import load_script, printed_values
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
