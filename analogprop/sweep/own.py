"""Sweep rows on a user's own circuit (a circuit specification, ``--circuit-spec``).

The die is the specification's network (:mod:`analogprop.drivers.user_circuit`:
ngspice-characterized tables, cached by content, and the fast tabulated solver)
with two knobs:

* ``temperature`` (C): the die's operating temperature, for deployment and for
  in-circuit training (not swept: the specification's own); the ideal
  reference does not depend on it, so its weights are trained once and
  transferred to the die at each temperature;
* ``mismatch_scale``: every ``sigma`` of the specification's
  ``[<role>.mismatch.*]`` tables times this factor (not swept: 1).  A die's
  draws are ``nominal + sigma z`` (``nominal exp(sigma z)``) with ``z`` fixed by
  the die seed, so a die at a larger scale has the same deviations scaled up,
  and scale 0 is the nominal design on every die.

Write-verify has no meaning here, so ``verified_accuracy`` is empty: a
programming value (a gate voltage, a width) is applied exactly, with no write
error to verify, and the weights map onto programming values, not onto target
conductances a device could be re-written until it meets.
"""
from __future__ import annotations

import time
from dataclasses import replace

from ..circuit.user_spec import CircuitSpec, load_spec
from ..drivers.user_circuit import make_user_circuit_driver
from ..model.conv_network import create_network
from ..runs.build import train_config
from ..training.trainer import TwoPhaseTrainer
from .row import result_row


def scaled(spec: CircuitSpec, factor: float) -> CircuitSpec:
    """``spec`` with every mismatch sigma times ``factor``."""
    def role(r):
        return replace(r, mismatch=tuple(replace(m, sigma=m.sigma * factor) for m in r.mismatch))
    return replace(spec, neuron=role(spec.neuron), synapse=role(spec.synapse))


def own_driver(task: dict, params=None):
    """The user-circuit driver of ``task``'s die at its knobs, programmed with ``params`` (network weights;
    None: the seed's initial weights)."""
    net = create_network(task["arch"], seed=task["seed"])
    if params is not None:
        net.params = {k: v.copy() for k, v in params.items()}
    spec = scaled(load_spec(task["circuit_spec"]), task["knobs"].get("mismatch_scale", 1.0))
    return make_user_circuit_driver(net, spec, die=task["die"], seed=task["seed"],
                                    temperature=task["knobs"].get("temperature"), tol=task["tol"],
                                    max_iters=task["max_steps"])


def run_own_point(task: dict, reference: dict, data, cfg: dict) -> dict:
    """One row on a user's circuit: the reference's weights transferred onto the die, and the die trained in
    the circuit (from the seed's initial weights) with ``circuit_lrs``; ``cfg`` is the run configuration of
    the task's training budget."""
    t0 = time.perf_counter()
    with own_driver(task, reference["params"]) as driver:
        transfer = TwoPhaseTrainer(driver, train_config(cfg)).evaluate(data.x_test, data.y_test)
        finetune = None
        if task["finetune_epochs"]:
            tuned = []
            TwoPhaseTrainer(driver, train_config({**cfg, "lrs": task["circuit_lrs"],
                                                  "epochs": task["finetune_epochs"]})).fit(data, on_epoch=tuned.append)
            finetune = round(1.0 - tuned[-1]["test_error"], 9)
    records = []
    with own_driver(task) as driver:
        TwoPhaseTrainer(driver, train_config({**cfg, "lrs": task["circuit_lrs"]})).fit(data, on_epoch=records.append)
    return result_row(task, reference, transfer, None, records[-1], finetune, t0)
