"""How commands end on a problem: one line on stderr and an exit status, never a traceback.

- usage problems (bad options, configs, caches of the wrong kind, checkpoints that do not fit):
  ``Error: <what and where, what to do>``, exit status 2;
- a failure while reading data in a run: ``Error: <cache, record, reason>``, exit status 1, and
  so is a file that cannot be read or written (``Error: <path>: <reason>``);
- Ctrl-C: a line saying what was kept and how to go on, exit status 130.
"""

from __future__ import annotations

import contextlib
import sys

import click

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

    try:
        yield
    except (ConfigError, CheckpointError, DeviceError, CacheError, UnknownModelError) as exc:
        raise Problem(str(exc)) from None
    except (DataError, OSError) as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(FAILED)
    except KeyboardInterrupt:
        click.echo(f"\n{interrupted()}", err=True)
        sys.exit(INTERRUPTED)
