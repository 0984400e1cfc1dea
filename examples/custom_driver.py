"""Train your own system: a driver for a black-box relaxing system.

The two-phase trainer never sees a system's equations.  It asks a driver
to relax the system freely, to relax it again with the outputs nudged
toward the target, and for each parameter the local quantity
``dmu/dtheta(s0) . (s_beta - s0)`` (Eq. 26 without the 1/beta), built from
measured states.  Anything with a stable fixed point and parameters
whose local effect on its own node is known can be trained this way.

Here the system is a layered network of saturating amplifiers, each
charging its own node through a leak (a smooth logistic saturation instead
of the paper's hard [0, 1] clip), relaxed by scipy's ODE integrator as a
stand-in for a physical settling: replace :meth:`SoftNeuronSystem.settle`
with your simulator or your instrument.  Its vector field (the neuron form
of Eq. 6-8, with the node voltage being the neuron's output):

    ds_k/dt = g(u_k) - s_k,    u_k = fwd{k-1} s_{k-1} + bwd{k} s_{k+1} + bias{k},    g = logistic,

with the input layer held at s_0 = x and, in the nudged phase, the output
pulled toward the target: ds_L/dt += beta (y - s_L) (Eq. 14).  So
dmu_i/d fwd{k-1}[i, j] = g'(u_i) s_{k-1, j} and dmu_i/d bias{k}[i] = g'(u_i):
the update of every element is its presynaptic voltage times its own
amplifier's gain at the free fixed point times the change of its own node
between the phases, all quantities at the element.

    python examples/custom_driver.py --epochs 10   # digits: test error 3.34% after 10 epochs
"""
from __future__ import annotations

import argparse

import numpy as np
from scipy.integrate import solve_ivp
from scipy.special import expit

from analogprop.data import load_digits
from analogprop.drivers.base import Driver, Phase
from analogprop.model.network import Network
from analogprop.training.trainer import TrainConfig, TwoPhaseTrainer


def g(u):
    """Amplifier output in (0, 1), centred at 0.5 with slope 1 there."""
    return expit(4.0 * (u - 0.5))


def g_prime(u):
    return 4.0 * g(u) * (1.0 - g(u))


class SoftNeuronSystem(Driver):
    """A driver for the smooth-saturation network above, relaxed by ODE integration."""

    def __init__(self, sizes, seed: int = 0, tol: float = 1e-4, t_max: float = 200.0):
        self.sizes = tuple(sizes)
        self.params = Network.create(self.sizes, seed=seed).params  # fwd{k}, bwd{k}, bias{k}, Glorot init
        self.tol, self.t_max = tol, t_max

    # -- parameters: programmed and read back --------------------------------
    def get_parameters(self):
        return {k: v.copy() for k, v in self.params.items()}

    def set_parameters(self, params):
        self.params = {k: np.array(v, dtype=float) for k, v in params.items()}

    def parameter_groups(self):
        """Learning-rate group of each parameter: the layer pair it serves (bias{k} with pair k-1)."""
        return {k: int(k[4:]) - 1 if k.startswith("bias") else int(k[3:]) for k in self.params}

    # -- the system ------------------------------------------------------------
    def drives(self, x, states):
        """u_k of every dynamic layer: what each amplifier sees."""
        L, p = len(states), self.params
        s = [x] + list(states)
        u = []
        for k in range(1, L + 1):
            d = s[k - 1] @ p[f"fwd{k - 1}"].T + p[f"bias{k}"]
            if k < L:
                d = d + s[k + 1] @ p[f"bwd{k}"].T
            u.append(d)
        return u

    def field(self, x, states, y=None, beta=0.0):
        """ds/dt of every dynamic layer (the system's physics; the trainer never calls this)."""
        f = [g(u) - s for u, s in zip(self.drives(x, states), states)]
        if beta:
            f[-1] = f[-1] + beta * (y - states[-1])
        return f

    def settle(self, x, y=None, beta=0.0, start=None) -> Phase:
        """Integrate until every node's rate of change is below ``tol`` (or ``t_max``)."""
        n, widths = len(x), self.sizes[1:]
        cuts = np.cumsum([n * w for w in widths])[:-1]
        unpack = lambda v: [a.reshape(n, w) for a, w in zip(np.split(v, cuts), widths)]  # noqa: E731
        rhs = lambda t, v: np.concatenate([f.ravel() for f in self.field(x, unpack(v), y, beta)])  # noqa: E731
        settled = lambda t, v: np.max(np.abs(rhs(t, v))) - self.tol  # noqa: E731
        settled.terminal = True
        v0 = np.zeros(sum(n * w for w in widths)) if start is None else np.concatenate([s.ravel() for s in start])
        sol = solve_ivp(rhs, (0.0, self.t_max), v0, events=settled, rtol=1e-6, atol=1e-8)
        states = unpack(sol.y[:, -1])
        residual = np.max(np.hstack([np.abs(f) for f in self.field(x, states, y, beta)]), axis=1)
        return Phase(states, residual, np.full(n, sol.t[-1]), residual <= self.tol * 1.01)

    # -- what the trainer calls -------------------------------------------------
    def relax_free(self, x):
        return self.settle(np.asarray(x, dtype=float))

    def relax_nudged(self, x, y, beta, start):
        return self.settle(np.asarray(x, dtype=float), y, beta, start.states)

    def local_update(self, x, free, nudged):
        """sum over the batch of dmu/dtheta(s0) . (s_beta - s0): presynaptic voltage x own gain x own change."""
        s = [np.asarray(x, dtype=float)] + list(free.states)
        err = [g_prime(u) * (b - a) for u, a, b in zip(self.drives(s[0], free.states), free.states, nudged.states)]
        L, out = len(err), {}
        for k in range(1, L + 1):
            out[f"fwd{k - 1}"] = err[k - 1].T @ s[k - 1]
            out[f"bias{k}"] = err[k - 1].sum(axis=0)
            if k < L:
                out[f"bwd{k}"] = err[k - 1].T @ s[k + 1]
        return out


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--lrs", default="1.0,0.4", help="learning rate per layer pair, input side first")
    ap.add_argument("--beta", type=float, default=0.5)
    ap.add_argument("--train", type=int, default=None, help="use only the first N training images")
    args = ap.parse_args(argv)
    data = load_digits().subset(n_train=args.train)
    system = SoftNeuronSystem((data.n_inputs, args.hidden, data.n_classes))
    trainer = TwoPhaseTrainer(system, TrainConfig(beta=args.beta, lrs=[float(v) for v in args.lrs.split(",")],
                                                  epochs=args.epochs))
    before = trainer.evaluate(data.x_test, data.y_test)["error"]
    print(f"before training: test error {before:.2%}")
    records = []
    trainer.fit(data, on_epoch=lambda r: (records.append(r), print(
        f"epoch {r['epoch']}: train error {r['train_error']:.2%} test error {r['test_error']:.2%} "
        f"alignment {[round(a, 3) for a in r['alignment']]} unconverged {r['unconverged_free']}/{r['unconverged_nudged']}")))
    return {"before": before, "records": records, "system": system}


if __name__ == "__main__":
    main()
