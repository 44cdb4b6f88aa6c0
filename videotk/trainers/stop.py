"""A stop request from outside the loops (Ctrl-C, as the CLI catches it), honoured between batches.

Python raises KeyboardInterrupt wherever the main thread is when Ctrl-C arrives. Inside some
library code (the standard library's at-fork hooks that run as the DataLoader forks its workers,
an object's ``__del__``) the exception is printed as "Exception ignored" and lost, and training
would go on. The CLI therefore also records the request here, and every :class:`~videotk.trainers.
loader.Loader` checks it before each batch. Importing this module imports nothing heavy, so a
signal handler may use it.
"""

from __future__ import annotations

import threading

_requested = threading.Event()


def request() -> None:
    """Ask the running loops to stop at their next batch."""
    _requested.set()


def clear() -> None:
    """Forget a request (a new command in the same process)."""
    _requested.clear()


def requested() -> bool:
    return _requested.is_set()


def check() -> None:
    """KeyboardInterrupt when a stop was requested."""
    if _requested.is_set():
        raise KeyboardInterrupt
