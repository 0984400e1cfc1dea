"""Networks compiled into circuits with mismatched devices, and a fast solver of them.

:mod:`.description` defines the circuit (nodes, devices, units, KCL) that
every solver and netlist follows; :mod:`.mismatch` the die's spreads and
noise; :mod:`.solver` the fast batched operating-point solver.
"""
from .description import LEVELS, Circuit, compile_circuit, crossbar_pairs, parse_level
from .mismatch import CrossbarDesign, Mismatch

__all__ = ["LEVELS", "Circuit", "compile_circuit", "crossbar_pairs", "parse_level", "CrossbarDesign", "Mismatch"]
