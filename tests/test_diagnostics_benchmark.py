"""benchmarks/diagnostics.py on a digits slice: both rules report, and a diverged rule is reported, not raised."""
from analogprop.errors import DivergedError
from analogprop.training.trainer import TwoPhaseTrainer
from conftest import load_script, printed_values


ARGS = ["--epochs", "2", "--train-subset", "200", "--test-subset", "60", "--probe", "10", "--lrs", "0.5,0.2"]


def test_both_rules_report_and_gap_is_their_difference(tmp_path, capsys):
    load_script("benchmarks/diagnostics.py").main(ARGS + ["--out", str(tmp_path)])
    p = printed_values(capsys.readouterr().out)
    gap = float(p["two-phase final test error %"]) - float(p["gradient final test error %"])
    assert abs(float(p["final test error gap two-phase minus gradient pp"]) - gap) < 0.011
    assert p["two-phase angle below 90 every epoch"] in ("True", "False")
    assert (tmp_path / "two-phase" / "metrics.jsonl").exists() and (tmp_path / "gradient" / "metrics.jsonl").exists()


def test_a_diverged_rule_is_reported_and_the_other_still_runs(tmp_path, capsys, monkeypatch):
    step = TwoPhaseTrainer.step

    def diverging(self, *a, **k):  # only the two-phase rule (the gradient trainer has its own step)
        if getattr(self, "_calls", 0) >= 3:
            raise DivergedError("training diverged: the update of fwd0 is not finite")
        self._calls = getattr(self, "_calls", 0) + 1
        return step(self, *a, **k)

    monkeypatch.setattr(TwoPhaseTrainer, "step", diverging)
    load_script("benchmarks/diagnostics.py").main(ARGS + ["--out", str(tmp_path)])
    p = printed_values(capsys.readouterr().out)
    assert p["two-phase diverged after 0 epochs"] == "training diverged: the update of fwd0 is not finite"
    assert "gradient final test error %" in p
    assert "final test error gap two-phase minus gradient pp" not in p
