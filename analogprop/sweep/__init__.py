"""Robustness sweeps: accuracy of transferred versus in-circuit-trained weights over device-variation knobs.

:mod:`.grid` specifies and validates a sweep, :mod:`.point` does the work
of one row (:mod:`.own` on a user's own circuit), :mod:`.store` keeps finished rows, :mod:`.execute` runs tasks
serially or on Dask, :mod:`.run` ties them together, :mod:`.plots` draws
the results.
"""
from .grid import KNOBS, SweepSpec, make_spec, read_spec_file
from .run import default_workers, run_sweep

__all__ = ["KNOBS", "SweepSpec", "make_spec", "read_spec_file", "default_workers", "run_sweep"]
