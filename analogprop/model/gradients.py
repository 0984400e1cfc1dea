"""The true gradient of J and the vector field nu at the free fixed point (Theorem 1).

The ideal fixed point is the clipped fixed point of Eq. 59, ``h = 0 v D(h) ^ 1``
with ``D`` the synaptic drive.  A unit held at 0 or 1 (its drive beyond the
clip) does not move when its inputs change, so it has zero derivative:
``rho' = 0`` there and its row of ``dmu/dtheta`` vanishes.  On the active set
``A`` (units with ``0 < D < 1``) the Jacobian of mu is ``W_AA - I``, where
``W`` is the block matrix of forward (``fwd{k}``: layer k -> k+1) and feedback
(``bwd{k}``: layer k+1 -> k) weights between dynamic layers.

With ``g = dC/dh = h_L - y`` on the output layer, Eq. 17-18 become

* ``-dJ/dtheta = dmu/dtheta . lam``, ``(I - W_AA^T) lam = -g_A`` (the adjoint of
  Recurrent Backpropagation, Appendix B Cor. 7, at its steady state);
* ``nu = dmu/dtheta . delta``, ``(I - W_AA) delta = -g_A``, where
  ``delta = dh^beta/dbeta`` at beta = 0 (Eq. 16, 29).

``dmu_i/dW_ij = rho(h_j)`` and ``dmu_i/db_i = 1``, so both contractions are
the network's Hebbian product (Eq. 56) with ``lam`` or ``delta`` in place of
``h_beta - h0``.  The linear systems are block tridiagonal with identity
diagonal blocks; they are solved for the whole batch by block Gauss-Seidel
sweeps, and any sample whose sweeps do not converge is solved directly
(dense LU; GMRES for convolutional networks).  Only the network's
``transfer`` / ``transfer_T`` / ``hebbian`` are used, so convolutional
networks are handled the same way.

With the readout outside the dynamics (``net.readout``), J is the mean readout
loss L(out(z), y) of the free fixed point of layers 1..L-1; the source moves to
the top hidden layer, ``-dL/dh_{L-1} = W^T e`` (``e = -dL/dz``), the output is
left out of the linear systems, and the readout pair's entry of lam and delta
is ``e`` itself: its gradient ``e rho(h_{L-1})^T`` is local and exact, so nu and
-dJ/dtheta agree on it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg
import scipy.sparse.linalg

from .dynamics import mu_beta, output_cost, readout_error, readout_force, readout_input, rho
from ..errors import ConfigError
from .network import Network


@dataclass
class FixedPoint:
    """A free fixed point of a batch and its active set."""

    x: np.ndarray
    states: list[np.ndarray]
    active: list[np.ndarray]  # boolean (batch, n_k) per dynamic layer: the state follows its drive
    slope: list[np.ndarray] | None = None  # boolean (batch, n_k): rho'(h) = 1 (default: ``active``)

    def __post_init__(self):
        if self.slope is None:
            self.slope = self.active

    @classmethod
    def at(cls, net: Network, x, states) -> "FixedPoint":
        """Active units: drive strictly inside the layer's range, where Eq. 59 does not clip.

        On a clipped layer the active units are those with ``rho' = 1``; an
        unclipped output (``linear_output``) is active everywhere but passes
        changes on to the layer below only where ``0 < h < 1``.
        """
        x = np.asarray(x, float)
        states = [np.asarray(h, float) for h in states]
        field = mu_beta(net, x, states)
        drive = [f + h for f, h in zip(field, states)]
        active = [(d > lo) & (d < hi) for d, (lo, hi) in zip(drive, net.bounds())]
        if net.readout != "dynamic":  # the output is no unknown of the linear systems
            active[-1] = np.zeros_like(active[-1])
        return cls(x, states, active, [(h > 0) & (h < 1) for h in states])

    def rates(self) -> list[np.ndarray]:
        """[rho(x), rho(h_1), ..., rho(h_L)]: the presynaptic factors dmu_i/dW_ij."""
        return presynaptic_rates(self.x, self.states)


def supports(net) -> bool:
    """True for a layered :class:`Network` (dense or convolutional) with all its fwd/bwd parameters."""
    return isinstance(net, Network) and set(net.expected_shapes()) <= set(net.params)


def _check_network(net: Network):
    if not supports(net):
        raise ConfigError(f"gradient diagnostics need a layered network with fwd/bwd/bias parameters, "
                          f"not {type(net).__name__}")


def _sweep_layer(net: Network, z, c, mask, slope, k: int, transpose: bool):
    """Layer k (1-based) of ``z = A (c + W R z)``, or of ``z = A (c + R W^T z)``
    (``A``: active mask, ``R``: rho' mask), solved given its neighbours (zero for a readout output)."""
    L = net.n_dynamic
    if k > L:
        return np.zeros_like(c[k - 1])
    prev, nxt = (z[k - 2] if k >= 2 else None), (z[k] if k < L else None)
    if transpose:
        acc = net.transfer_T(k, prev, nxt) * slope[k - 1]
    else:
        acc = net.transfer(k, None if prev is None else prev * slope[k - 2], None if nxt is None else nxt * slope[k])
    return (c[k - 1] + acc) * mask[k - 1]


def _dense(net: Network, transpose: bool) -> np.ndarray:
    """The block matrix W between dynamic layers (rows: receiving unit)."""
    sizes, L = net.sizes[1:], net.n_layers
    off = np.concatenate([[0], np.cumsum(sizes)])
    w = np.zeros((off[-1], off[-1]))
    for k in range(1, net.n_dynamic):  # layers k, k+1 (1-based) -> blocks at off[k-1], off[k]
        a, b = slice(off[k - 1], off[k]), slice(off[k], off[k + 1])
        w[b, a] = net.params[f"fwd{k}"]
        w[a, b] = net.params[f"bwd{k}"]
    return w.T if transpose else w


def solve_active(net: Network, fp: FixedPoint, c, transpose: bool = False,
                 tol: float = 1e-10, max_sweeps: int = 1000) -> list[np.ndarray]:
    """Solve ``(I - W_AA) z = c_A`` (or with ``W^T``) per sample; ``z = 0`` off the active set.

    ``W`` carries the rho' factor of its presynaptic unit (:class:`FixedPoint`).

    ``c`` is a list of (batch, n_k) arrays.  Block Gauss-Seidel for the batch,
    then a dense LU solve for the samples it did not converge on (least
    squares if ``I - W_AA`` is singular, a degenerate fixed point).
    """
    L = net.n_layers
    mask = [m.astype(float) for m in fp.active]
    slope = [m.astype(float) for m in fp.slope]
    c = [ck * mk for ck, mk in zip(c, mask)]
    z = [np.zeros_like(ck) for ck in c]
    if c[0].shape[0] == 0:
        return z
    scale = max(max(float(np.max(np.abs(ck), initial=0.0)) for ck in c), 1e-300)
    change = np.full(c[0].shape[0], np.inf)
    with np.errstate(over="ignore", invalid="ignore"):
        for sweep in range(max_sweeps):
            change[:] = 0.0
            for k in (range(1, L + 1) if sweep % 2 == 0 else range(L, 0, -1)):
                new = _sweep_layer(net, z, c, mask, slope, k, transpose)
                np.maximum(change, np.max(np.abs(new - z[k - 1]), axis=1), out=change)
                z[k - 1] = new
            if not np.max(change) < 1e8 * scale or np.max(change) <= tol * scale:
                break  # diverging (the dense solve takes over) or converged
    bad = np.flatnonzero(~(change <= tol * scale))
    if bad.size and type(net).transfer is not Network.transfer:
        _krylov(net, fp, c, z, bad, transpose, tol)
    elif bad.size:
        w = _dense(net, transpose)
        for s in bad:
            act = np.concatenate([m[s] for m in fp.active])
            r = np.concatenate([m[s] for m in fp.slope]).astype(float)
            rhs = np.concatenate([ck[s] for ck in c])[act]
            sol = np.zeros(act.size)
            wr = w * r[:, None] if transpose else w * r[None, :]
            a = np.eye(act.sum()) - wr[np.ix_(act, act)]
            try:
                sol[act] = scipy.linalg.solve(a, rhs)
            except scipy.linalg.LinAlgError:
                sol[act] = scipy.linalg.lstsq(a, rhs)[0]
            parts = np.split(sol, np.cumsum(net.sizes[1:])[:-1])
            for k in range(L):
                z[k][s] = parts[k]
    return z


def _krylov(net: Network, fp: FixedPoint, c, z, rows, transpose: bool, tol: float):
    """GMRES per sample in ``rows`` on the operator ``z -> z - A (W R z)`` (or transposed), for
    networks whose W is not a dense matrix (convolutions); writes into ``z``."""
    sizes = list(net.sizes[1:])
    cut = np.cumsum(sizes)[:-1]
    for s in rows:
        mask = [m[s:s + 1].astype(float) for m in fp.active]
        slope = [m[s:s + 1].astype(float) for m in fp.slope]
        zero = [np.zeros((1, n)) for n in sizes]

        def matvec(v, mask=mask, slope=slope, zero=zero):
            parts = [p[None, :] for p in np.split(np.ravel(v), cut)]
            w = [_sweep_layer(net, parts, zero, mask, slope, k, transpose) for k in range(1, net.n_layers + 1)]
            return np.concatenate([(p - q).ravel() for p, q in zip(parts, w)])

        op = scipy.sparse.linalg.LinearOperator((sum(sizes),) * 2, matvec=matvec, dtype=float)
        rhs = np.concatenate([ck[s] for ck in c])
        sol, _ = scipy.sparse.linalg.gmres(op, rhs, rtol=tol, atol=0.0, restart=200, maxiter=50)
        for k, part in enumerate(np.split(sol, cut)):
            z[k][s] = part * mask[k][0]


def _output_source(net: Network, fp: FixedPoint, y):
    """-dC/dh: y - h_L on the output layer (Eq. 10, 14), zero elsewhere; with a readout,
    W^T e on the top hidden layer (``e = -dL/dz``, :func:`readout_gradient_error`)."""
    y = np.asarray(y, float)
    if y.shape != fp.states[-1].shape:
        raise ConfigError(f"targets have shape {y.shape}; the output layer gives {fp.states[-1].shape}")
    src = [np.zeros_like(h) for h in fp.states]
    if net.readout == "dynamic":
        src[-1] = y - fp.states[-1]
    else:
        src[net.n_dynamic - 1] = readout_force(net, readout_gradient_error(net, fp.states, y))
    return src


def readout_gradient_error(net: Network, states, y):
    """e = -dL/dz of a readout outside the dynamics at the states (h_1, ..., h_L) of a batch."""
    return readout_error(net, readout_input(net, rho(np.asarray(states[net.n_dynamic - 1], float))), y)


def _with_readout(net: Network, fp: FixedPoint, y, z):
    """``z`` with the readout pair's entry set to e (its exact, local gradient factor)."""
    if net.readout != "dynamic":
        z[-1] = readout_gradient_error(net, fp.states, np.asarray(y, float))
    return z


def _mean(hebb: dict, n: int) -> dict:
    return {k: v / n for k, v in hebb.items()}


def adjoint(net: Network, fp: FixedPoint, y, **kw):
    """lam = -(dmu/dh)^{-T} dC/dh on the active set (steady state of Eq. 46)."""
    return _with_readout(net, fp, y, solve_active(net, fp, _output_source(net, fp, y), transpose=True, **kw))


def state_derivative(net: Network, fp: FixedPoint, y, **kw):
    """dh^beta/dbeta at beta = 0 = -(dmu/dh)^{-1} dC/dh (Eq. 29)."""
    return _with_readout(net, fp, y, solve_active(net, fp, _output_source(net, fp, y), transpose=False, **kw))


def neg_gradient(net: Network, fp: FixedPoint, y, **kw) -> dict[str, np.ndarray]:
    """-dJ/dtheta for J = batch mean of C(h0, y), per parameter (Eq. 17, 32)."""
    _check_network(net)
    return _mean(net.hebbian(fp.rates(), adjoint(net, fp, y, **kw)), len(fp.x))


def nu(net: Network, fp: FixedPoint, y, **kw) -> dict[str, np.ndarray]:
    """nu (Eq. 16, 18), batch mean, per parameter."""
    _check_network(net)
    return _mean(net.hebbian(fp.rates(), state_derivative(net, fp, y, **kw)), len(fp.x))


def recurrent_backprop(net: Network, fp: FixedPoint, y, step: float = 0.5, steps: int = 1000) -> dict:
    """-dL/dtheta of continuous-time Recurrent Backpropagation (Appendix B, Cor. 7), Euler-integrated.

    From ``dL/ds = dC/ds``, ``d/dt dL/ds = (dmu/ds)^T dL/ds`` (Eq. 46) while
    ``dL/dtheta`` accumulates ``(dmu/dtheta)^T dL/ds`` (Eq. 47), the state held
    at the free fixed point (saturated units stay put).  Tends to -dJ/dtheta
    as ``step * steps`` grows; :func:`neg_gradient` is its steady state.
    """
    _check_network(net)
    mask = [m.astype(float) for m in fp.active]
    slope = [m.astype(float) for m in fp.slope]
    err = [-s * m for s, m in zip(_output_source(net, fp, y), mask)]  # dC/ds on the active set
    zero = [np.zeros_like(e) for e in err]
    acc = [np.zeros_like(e) for e in err]
    for _ in range(steps):
        back = [_sweep_layer(net, err, zero, mask, slope, k, True) for k in range(1, net.n_layers + 1)]
        for a, e, b in zip(acc, err, back):
            a -= step * e
            e += step * (b - e)
    return _mean(net.hebbian(fp.rates(), _with_readout(net, fp, y, acc)), len(fp.x))


def centre(values: list[np.ndarray]) -> list[np.ndarray]:
    """Each array minus its mean over the batch (axis 0): the centring trick of Boltzmann machines
    (Montavon & Mueller 2012) applied to the presynaptic rates of the two-phase update (Eq. 56).  A weight's
    update sum_n dh_n (r_n - mean r) differs from Eq. 56 by (sum_n dh_n) mean(r), a multiple of its unit's
    bias update, so it vanishes where the bias has settled: same fixed points, but the rates' common mean no
    longer dominates the update (non-negative rates make that direction far stiffer than the rest)."""
    return [v - v.mean(axis=0, keepdims=True) for v in values]


def presynaptic_rates(x, states, centered: bool = False) -> list[np.ndarray]:
    """[rho(x), rho(h_1), ..., rho(h_L)], the presynaptic factors of Eq. 56, each minus its batch mean
    if ``centered`` (:func:`centre`)."""
    r = [rho(x)] + [rho(h) for h in states]
    return centre(r) if centered else r


def two_phase_estimate(net: Network, solver, x, y, beta: float, symmetric: bool = False, free=None,
                       centered: bool = False):
    """dmu/dW(h0) . (h_beta - h0) / beta (Eq. 56), batch mean; ``symmetric`` uses (h_beta - h_-beta) / 2 beta,
    ``centered`` the presynaptic rates minus their batch mean (:func:`centre`).  A readout outside the
    dynamics takes its local gradient at the free state (the output's entry of the difference is
    beta e, resp. 2 beta e).

    Returns (estimate, free relaxation, list of nudged relaxations).
    """
    free = free or solver.solve(net, x)
    r = presynaptic_rates(np.asarray(x, float), free.states, centered)
    plus = solver.solve(net, x, y, beta, start=free.states)
    if symmetric:
        minus = solver.solve(net, x, y, -beta, start=free.states)
        dh, scale, nudged = [a - b for a, b in zip(plus.states, minus.states)], 2 * beta, [plus, minus]
    else:
        dh, scale, nudged = [a - b for a, b in zip(plus.states, free.states)], beta, [plus]
    if net.readout != "dynamic":
        dh[-1] = scale * readout_gradient_error(net, free.states, np.asarray(y, float))
    est = net.hebbian(r, dh)
    return {k: v / (scale * len(x)) for k, v in est.items()}, free, nudged


def objective(net: Network, solver, x, y) -> float:
    """J: mean cost at the free fixed point (Eq. 11; the readout's loss with a readout)."""
    return float(output_cost(solver.solve(net, x).output, y, net.readout).mean())


def flat(d: dict, names=None) -> np.ndarray:
    names = sorted(d) if names is None else names
    return np.concatenate([np.ravel(d[k]) for k in names])


def angle(a: dict, b: dict, names=None) -> float:
    """Angle in degrees between two parameter-space vectors (over ``names``, default all)."""
    u, v = flat(a, names), flat(b, names)
    den = np.linalg.norm(u) * np.linalg.norm(v)
    if den == 0:
        return float("nan")
    return float(np.degrees(np.arccos(np.clip(u @ v / den, -1.0, 1.0))))
