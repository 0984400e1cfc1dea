"""The command line: ``analogprop train | evaluate | ...`` (argparse lives only in this layer)."""
from .commands import COMMANDS, main, make_parser

__all__ = ["COMMANDS", "main", "make_parser"]
