"""How commands end on a problem: one line on stderr and an exit status, never a traceback.

- usage problems (bad options, configs, caches of the wrong kind, checkpoints that do not fit):
  ``Error: <what and where, what to do>``, exit status 2;
- a failure while reading data in a run: ``Error: <cache, record, reason>``, exit status 1, and
  so is a file that cannot be read or written (``Error: <path>: <reason>``);
- Ctrl-C: a line saying what was kept and how to go on, exit status 130.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time

import click

from ..trainers import stop

USAGE, FAILED = 2, 1
INTERRUPTED = 130  # 128 + SIGINT, as shells report a command ended by Ctrl-C


class Problem(click.ClickException):
    """A usage problem that is not about the command line's syntax: printed as one line, exit 2."""

    exit_code = USAGE


@contextlib.contextmanager
def guarded(interrupted=lambda: "interrupted"):
    """Run a library call, mapping its errors to the lines and exit statuses above; on Ctrl-C,
    print what ``interrupted()`` returns."""
    from ..formats import CacheError
    from ..models.registry import UnknownModelError
    from ..trainers.checkpoint import CheckpointError
    from ..trainers.loader import DataError
    from ..trainers.runtime import DeviceError
    from ..trainers.settings import ConfigError

    held = _hold_background_errors()
    interrupt = _InterruptFlag()
    try:
        with interrupt:
            yield
    except BaseException as exc:
        if interrupt.seen or isinstance(exc, KeyboardInterrupt):
            # Ctrl-C reaches the data-loading worker processes too, and a KeyboardInterrupt can land
            # inside a library's cleanup that swallows it; what fails next (the loader's thread on
            # its vanished workers, the reader on its killed queue) is the interrupt itself.
            click.echo(f"\n{interrupted()}", err=True)
            sys.exit(INTERRUPTED)
        _report_background_errors(held)
        if isinstance(exc, (ConfigError, CheckpointError, DeviceError, CacheError, UnknownModelError)):
            raise Problem(str(exc)) from None
        if isinstance(exc, (DataError, OSError)):
            click.echo(f"Error: {exc}", err=True)
            sys.exit(FAILED)
        raise
    _report_background_errors(held)


#: the standard library's at-fork hooks, which run inside ``os.fork`` (the DataLoader forks its
#: workers every epoch): a KeyboardInterrupt raised in one is printed as "Exception ignored" and lost
_FORK_HOOKS = frozenset({"_acquireLock", "_releaseLock", "_after_at_fork_child_reinit_locks", "_after_fork"})


class _InterruptFlag:
    """While entered (in the main thread), Ctrl-C raises KeyboardInterrupt as Python's own handler
    does, and is also recorded (:mod:`videotk.trainers.stop`), so that where a library swallows the
    exception the loaders raise it again before their next batch. In the standard library's
    at-fork hooks it is not raised at all (it would be printed there): the loaders raise it.

    Ctrl-C reaches the whole process group. A forked data-loading worker inherits this handler and
    ignores it: its parent stops it (the parent is stopping, and says what was kept). A second Ctrl-C
    within ``GRACE_SECONDS`` of the first is ignored, so that the cleanup that unwinds the first
    (stopping the workers) is not broken off with a traceback.
    """

    GRACE_SECONDS = 1.0

    def __init__(self) -> None:
        self.seen = False
        self._raised_at: float | None = None
        self._previous = None
        self._owner = os.getpid()

    def _handle(self, signum, frame) -> None:
        if os.getpid() != self._owner:
            return  # a forked worker: its parent stops it (an exit of its own would count as a crash)
        self.seen = True
        stop.request()
        if frame is not None and frame.f_code.co_name in _FORK_HOOKS:
            return  # raised there it would be printed and lost; the loader raises it before its next batch
        now = time.monotonic()
        if self._raised_at is not None and now - self._raised_at < self.GRACE_SECONDS:
            return
        self._raised_at = now
        signal.default_int_handler(signum, frame)

    def __enter__(self) -> "_InterruptFlag":
        stop.clear()
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def _hold_background_errors() -> list:
    """Keep what threads started by the libraries underneath (the DataLoader's reader) raise, rather
    than let Python print their tracebacks as they happen; :func:`_report_background_errors` says
    them in one line each once the command is done."""
    held: list = []

    def hold(args: threading.ExceptHookArgs) -> None:
        held.append(args)

    threading.excepthook = hold
    return held


def _report_background_errors(held: list) -> None:
    threading.excepthook = threading.__excepthook__
    for args in held:
        name = args.thread.name if args.thread is not None else "a background thread"
        click.echo(f"warning: {name} failed: {args.exc_type.__name__}: {args.exc_value}", err=True)
