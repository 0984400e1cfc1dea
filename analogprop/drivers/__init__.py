"""Drivers: what the trainer talks to.  Each one relaxes a physical or
simulated system and returns measured states; see :mod:`.base`."""
from .base import Driver, Phase
from .ideal import IdealDriver

__all__ = ["Driver", "Phase", "IdealDriver"]
