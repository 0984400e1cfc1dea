"""The two-phase trainer (Eq. 56) and what turns its estimates into steps: optimizers, the gradient
baseline rule, per-epoch diagnostics.  It sees the circuit only through the driver interface."""
