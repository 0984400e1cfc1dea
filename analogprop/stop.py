"""The stop request of a long job: Ctrl-C finishes the current step, writes a checkpoint and stops.

The CLI installs :data:`STOP` as the SIGINT handler; training, sweeps and the bench emulator poll
``STOP.requested`` between steps.  It sits below every layer so that none of them imports the CLI.
"""
from __future__ import annotations

import sys


class StopRequest:
    """First Ctrl-C: finish the minibatch, checkpoint, stop.  Second: stop at once."""

    requested = False

    def __call__(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        print("\ninterrupt: finishing this minibatch and writing a checkpoint (Ctrl-C again to abort)",
              file=sys.stderr)


STOP = StopRequest()
