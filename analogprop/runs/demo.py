"""The main job of ``make demo``: a mismatched 64-32-10 circuit trained in ngspice.

1. Train 64-32-10 on the embedded digits with the ideal model (``ideal/``).
2. Deploy those weights on one die of a mismatched behavioural circuit and
   measure it in ngspice: the accuracy of transfer without in-circuit training.
3. Train the circuit itself in ngspice with the two-phase rule and the
   circuit's local rule (``circuit/``, a normal run directory: checkpoints,
   metrics, ``analogprop evaluate``), starting from the deployed weights.
4. Write the trained circuit's netlist (``circuit.cir``, runs with
   ``ngspice -b``), simulate the relaxation of a few test samples in transient
   mode (settling time and energy per phase) and plot everything (``plots/``).
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from ..circuit import Mismatch
from .directory import load_checkpoint, output_run
from .training import evaluate, train
from ..training.trainer import TrainState

ARCH = "64-32-10"
DIE = 1
#: the die's spreads: 30 % conductances, 20 % gains and leaks, 0.1 V offsets, 10 % capacitors
MISMATCH = Mismatch(g_dtod=0.3, gain_dtod=0.2, offset_dtod=0.1, leak_dtod=0.2, cap_dtod=0.1)


def circuit_config(epochs: int, netlist_dir: Path) -> dict:
    from .build import complete

    cfg = {"arch": ARCH, "driver": "ngspice", "driver_level": "behavioural", "driver_die": DIE,
           "driver_netlist_dir": str(netlist_dir), "epochs": epochs, "beta": 0.5, "lrs": [0.25, 0.1]}
    cfg.update({f"driver_{k}": v for k, v in MISMATCH.to_dict().items() if v})
    return complete(cfg)


def plot_transient(res, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    t = res.time * 1e6
    for i in range(res.waveform.shape[1]):
        ax.plot(t, res.waveform[:, i], linewidth=1)
    ax.axvline(res.switch_time * 1e6, color="grey", linestyle="--", linewidth=0.8)
    for t0, ts in ((0.0, res.free.settle_time[0]), (res.switch_time, res.nudged.settle_time[0])):
        if np.isfinite(ts):
            ax.axvline((t0 + ts) * 1e6, color="k", linestyle=":", linewidth=0.8)
    ax.set(xlabel="time (us)", ylabel="output node voltage (V)",
           title="ngspice transient: free phase, nudge switched on (dashed), settled (dotted)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)
    return path


def run_demo(out: Path, epochs: int = 15, circuit_epochs: int = 4, progress: bool = True,
             overwrite: bool = False) -> dict:
    """Run the demo into ``out``; its runs ``ideal/`` and ``circuit/`` must be new unless ``overwrite``."""
    from .build import build, complete
    from .plots import plot_runs
    from ..spice.netlist import netlist
    from ..spice.transient import simulate
    from ..training.trainer import one_hot

    out = Path(out)
    ideal_dir, circuit_dir = (output_run(out / name, overwrite, "demo").path for name in ("ideal", "circuit"))
    complete({"arch": ARCH, "epochs": epochs})  # both runs' settings are refused before any training
    circuit_config(circuit_epochs, out / "circuit" / "netlist")
    log = lambda msg: print(f"demo: {msg}", file=sys.stderr)  # noqa: E731
    log(f"1/4 training {ARCH} on the ideal model ({epochs} epochs)")
    ideal = train({"arch": ARCH, "epochs": epochs}, ideal_dir, progress=progress, overwrite=overwrite)
    weights, _ = load_checkpoint(ideal_dir / "checkpoint.npz")

    log(f"2/4 deploying the ideal weights on die {DIE} of a mismatched circuit, measured in ngspice")
    run = output_run(circuit_dir, overwrite, "demo")
    run.clear()
    cfg = circuit_config(circuit_epochs, run.path / "netlist")
    _, driver, _ = build(cfg)
    with driver:
        driver.deploy(weights)
        run.save(driver, TrainState(), {"config": cfg})
    run.write_config(cfg)
    transferred = evaluate(run.path)

    log(f"3/4 training the circuit in ngspice ({circuit_epochs} epochs from the deployed weights)")
    trained = train({"epochs": circuit_epochs}, run.path, resume=True, progress=progress)

    log("4/4 netlist, transient mode, plots")
    params, _ = load_checkpoint(run.checkpoint_path)
    data, driver, _ = build(cfg, params)
    with driver:
        x, labels = data.x_test[:10], data.y_test[:10]
        y = one_hot(labels, 10)
        netlist_path = out / "circuit.cir"
        netlist_path.write_text(netlist(driver.circuit, x, y, title="analogprop demo, trained in ngspice"))
        tr = simulate(driver.circuit, x[:3], y[:3], cfg["beta"], solver=driver.solver)
    plots = plot_runs([ideal_dir, run.path], out / "plots")
    plots.append(plot_transient(tr, out / "plots" / "transient.png"))

    summary = {"ideal_test_error": ideal["test_error"], "transferred_test_error": transferred["test_error"],
               "in_circuit_test_error": trained["test_error"],
               "settle_free_s": float(np.nanmean(tr.free.settle_time)),
               "settle_nudged_s": float(np.nanmean(tr.nudged.settle_time)),
               "energy_free_J": float(np.nanmean(tr.free.energy)),
               "energy_nudged_J": float(np.nanmean(tr.nudged.energy))}
    knobs = ", ".join(f"{k}={v:g}" for k, v in MISMATCH.to_dict().items() if v)
    print(f"demo: {ARCH} on the embedded digits, behavioural circuit on die {DIE} ({knobs}), solved by ngspice")
    print(f"  ideal model, trained {epochs} epochs:            test accuracy {1 - ideal['test_error']:.2%}")
    print(f"  those weights deployed on the die (no training): test accuracy {1 - transferred['test_error']:.2%}")
    print(f"  trained in the circuit, {circuit_epochs} epochs in ngspice:     "
          f"test accuracy {1 - trained['test_error']:.2%}")
    print(f"  transient (3 test samples): settling to 1% free {summary['settle_free_s'] * 1e9:.0f} ns, "
          f"nudged {summary['settle_nudged_s'] * 1e9:.0f} ns; energy free {summary['energy_free_J'] * 1e12:.1f} pJ, "
          f"nudged {summary['energy_nudged_J'] * 1e12:.1f} pJ")
    print(f"  netlist: {netlist_path} (ngspice -b {netlist_path})")
    print(f"  runs: {ideal_dir}, {run.path}; plots: {', '.join(str(p) for p in plots)}")
    return summary
