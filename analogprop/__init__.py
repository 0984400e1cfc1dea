"""analogprop: train analog learning circuits with the two-phase vector-field rule (Eq. 56).

Layers, each knowing only the one below: :mod:`analogprop.training.trainer` (two-phase trainer) talks to a
:mod:`analogprop.drivers` driver (ideal model, simulated circuit, ngspice, VISA bench), which realises a
:mod:`analogprop.circuit` description or :mod:`analogprop.model.network`; the description knows nothing of training.
"""
