"""One sweep row (point x seed x die): the accuracies a point's run measured, with its knobs and timing."""
from __future__ import annotations

import time


def result_row(task: dict, reference: dict, transfer: dict, verified: dict | None, last: dict,
               finetune: float | None, t0: float) -> dict:
    """The row of ``task``: ideal, transferred, write-verified (None: not meaningful for the circuit) and
    in-circuit accuracies (``last``: the in-circuit run's final epoch record), seconds since ``t0``."""
    return {"point": task["point"], "seed": task["seed"], "die": task["die"], "level": task["level"],
            **task["knobs"],
            "ideal_accuracy": reference["test_accuracy"],
            "transfer_accuracy": round(1.0 - transfer["error"], 9),
            "verified_accuracy": None if verified is None else round(1.0 - verified["error"], 9),
            "circuit_accuracy": round(1.0 - last["test_error"], 9),
            "finetune_accuracy": finetune,
            "circuit_train_accuracy": round(1.0 - last["train_error"], 9),
            "transfer_unconverged": transfer["unconverged"],
            "circuit_unconverged": last["unconverged_test"],
            "seconds": round(time.perf_counter() - t0, 3),
            "key": task["key"]}
