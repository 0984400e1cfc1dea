"""alignment_drift: which weights' changes move each pair's alignment (Fig. 3 right)."""
import json

import numpy as np
import pytest

from analogprop.runs.build import build, complete
from analogprop.errors import ConfigError
from analogprop.model.network import alignment_drift, cosine
from analogprop.runs.directory import RunDir, load_checkpoint
from analogprop.runs.training import train
from analogprop.cli import main
from test_data_runs import _stop_at
from test_mnist_benchmark import _args, fake_mnist  # noqa: F401 (fixture)

CFG = {"arch": "64-24-16-10", "epochs": 2, "checkpoint_every": 7, "lrs": [0.5, 0.2, 0.05], "alignment_drift": True}


def test_parts_are_the_two_first_order_terms_of_the_trace_change():
    rng = np.random.default_rng(0)
    f0, b0, df, db = (rng.normal(size=(5, 4)) for _ in range(4))
    fwd, bwd = alignment_drift([(f0, b0)], [(f0 + df, b0 + db)])
    den = np.linalg.norm(f0) * np.linalg.norm(b0)
    assert fwd == [pytest.approx(np.sum(df * b0) / den)] and bwd == [pytest.approx(np.sum(f0 * db) / den)]
    change = (np.sum((f0 + df) * (b0 + db)) - np.sum(f0 * b0)) / den
    assert fwd[0] + bwd[0] + np.sum(df * db) / den == pytest.approx(change)
    assert alignment_drift([(f0, b0)], [(f0 + df, b0)])[1] == [0.0]  # feedback unchanged: no feedback part


def test_a_training_run_records_both_parts_per_pair_and_epoch(tmp_path):
    train({**CFG, "lrs": [0.5, 0.2, 0.0]}, tmp_path / "run", progress=False)
    recs = RunDir(tmp_path / "run").metrics()
    for r in recs:
        assert len(r["alignment_drift_forward"]) == len(r["alignment_drift_feedback"]) == 2
        assert r["alignment_drift_forward"][1] == r["alignment_drift_feedback"][1] == 0.0  # output pair frozen
        assert r["alignment_drift_forward"][0] != 0.0 and r["alignment_drift_feedback"][0] != 0.0
    # summed over an epoch at small rates (norms nearly constant) the parts are the trace's change
    small = {**CFG, "lrs": [0.02, 0.02, 0.02], "epochs": 1}
    train(small, tmp_path / "small", progress=False)
    before = build(complete(small))[1].alignment_pairs()
    after = build(complete(small), load_checkpoint(tmp_path / "small" / "checkpoint.npz")[0])[1].alignment_pairs()
    r = RunDir(tmp_path / "small").metrics()[0]
    for k, ((f0, b0), (f1, b1)) in enumerate(zip(before, after)):
        moved = (np.sum(f1 * b1) - np.sum(f0 * b0)) / (np.linalg.norm(f0) * np.linalg.norm(b0))
        parts = r["alignment_drift_forward"][k] + r["alignment_drift_feedback"][k]
        assert parts == pytest.approx(moved, rel=0.03)
        assert cosine(f1, b1) == pytest.approx(r["alignment"][k])
    train({**CFG, "alignment_drift": False}, tmp_path / "off", progress=False)
    assert "alignment_drift_forward" not in RunDir(tmp_path / "off").metrics()[0]


def test_the_sums_survive_a_resume_mid_epoch(tmp_path):
    train(CFG, tmp_path / "full", progress=False, stop=lambda: False)
    train(CFG, tmp_path / "cut", progress=False, stop=_stop_at(10))
    train({}, tmp_path / "cut", resume=True, progress=False, stop=lambda: False)
    full, cut = (RunDir(tmp_path / name).metrics() for name in ("full", "cut"))
    for key in ("alignment_drift_forward", "alignment_drift_feedback"):
        assert [r[key] for r in full] == [r[key] for r in cut]


@pytest.mark.parametrize("bad", ["yes", 1, 0.5])
def test_a_setting_that_is_not_true_or_false_is_refused(tmp_path, bad):
    with pytest.raises(ConfigError, match="alignment_drift.* must be true or false"):
        train({**CFG, "alignment_drift": bad}, tmp_path / "run", progress=False)


def test_train_on_mnist_records_the_drift(fake_mnist, tmp_path):  # noqa: F811
    assert main(_args(fake_mnist, tmp_path / "run", 2) + ["--alignment-drift"]) == 0
    rec = RunDir(tmp_path / "run").metrics()
    assert all(len(r["alignment_drift_forward"]) == len(r["alignment_drift_feedback"]) == 2 for r in rec)


def test_the_drift_panel_draws_cumulative_parts_from_epoch_0(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from analogprop.runs.plots import PANELS, plot_runs

    rec = [{"epoch": 1, "alignment": [0.1], "alignment_drift_forward": [0.02], "alignment_drift_feedback": [-0.01]},
           {"epoch": 2, "alignment": [0.1], "alignment_drift_forward": [0.03], "alignment_drift_feedback": [-0.02]}]
    fig, ax = plt.subplots()
    PANELS["alignment_drift"](ax, [("run", rec)])
    lines = [line for line in ax.lines if len(line.get_xdata()) == 3]  # not the zero line
    assert [list(line.get_xdata()) for line in lines] == [[0, 1, 2], [0, 1, 2]]
    assert [list(line.get_ydata()) for line in lines] == [[0.0, 0.02, pytest.approx(0.05)], [0.0, -0.01, -0.03]]
    plt.close(fig)
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text("".join(json.dumps({**r, "train_error": 0.5, "test_error": 0.4}) + "\n"
                                               for r in rec))
    assert "alignment_drift.png" in {p.name for p in plot_runs([run], tmp_path / "fig")}


def test_panels_of_several_runs_keep_one_legend_entry_per_run_and_pair():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from analogprop.runs.plots import PANELS

    rec = [{"epoch": e, "train_error": 0.5, "test_error": 0.4, "alignment": [0.1, 0.2, 0.3],
            "alignment_drift_forward": [0.01] * 3, "alignment_drift_feedback": [-0.01] * 3} for e in (1, 2)]
    runs = [("a", rec), ("b", rec)]
    fig, axes = plt.subplots(1, 3)
    for ax, name in zip(axes, ("errors", "alignment", "alignment_drift")):
        PANELS[name](ax, runs)
    assert axes[0].get_legend_handles_labels()[1] == ["a", "b"]  # train and test told apart by the title
    assert axes[1].get_legend_handles_labels()[1] == ["a", "b"]
    assert "dotted: layers 3-4" in axes[1].get_title()
    assert axes[2].get_legend_handles_labels()[1] == [f"{r} layers {k}-{k + 1}" for r in "ab" for k in (1, 2, 3)]
    assert len(axes[1].lines) == 6 and len(axes[2].lines) == 2 * 6 + 1  # every curve drawn (+ the zero line)
    plt.close(fig)
