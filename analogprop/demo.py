"""The main job of ``make demo``: train the default network on the embedded digits."""
from __future__ import annotations

from pathlib import Path

from .train_run import train


def run_demo(out: Path, epochs: int = 15, progress: bool = True) -> dict:
    record = train({"arch": "64-32-10", "epochs": epochs}, out, progress=progress)
    print(f"demo: 64-32-10 trained with the two-phase rule on the embedded digits for {epochs} epochs: "
          f"train error {record['train_error']:.2%}, test error {record['test_error']:.2%}; "
          f"run written to {out}")
    return record
