"""Options and output helpers shared by several commands."""

from __future__ import annotations

import functools
import os
import sys

import click

FORMAT_CHOICE = click.Choice(["parquet", "hdf5"])


def etl_options(func):
    """``--out``, ``--format``, ``--workers``, ``--scheduler``, ``--overwrite``, ``--quiet``."""

    @click.option("--out", "out", required=True, type=click.Path(file_okay=False),
                  help="Cache folder to write (manifest.json, errors.jsonl, shards/).")
    @click.option("--format", "fmt", type=FORMAT_CHOICE, default="parquet", show_default=True,
                  help="Shard file format.")
    @click.option("--workers", type=click.IntRange(min=1), default=None,
                  help="Local worker processes [default: all cores]. 1 runs in this process.")
    @click.option("--scheduler", metavar="ADDRESS", default=None,
                  help="Run on an existing dask.distributed cluster (e.g. tcp://host:8786) instead of local workers.")
    @click.option("--overwrite", is_flag=True,
                  help="Replace a videotk cache made with other options: only the files it wrote are removed. "
                       "A non-empty folder that holds no videotk cache is never touched.")
    @click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        return func(*args, **kwargs)

    return wrapper


class ProgressBar:
    """A ``progress(done, total)`` callback drawing a bar on stderr (nothing when ``quiet``)."""

    def __init__(self, description: str, unit: str, quiet: bool):
        self.description, self.unit, self.quiet = description, unit, quiet
        self._bar = None

    def __call__(self, done: int, total: int) -> None:
        if self.quiet:
            return
        if self._bar is None:
            from tqdm import tqdm

            self._bar = tqdm(total=total, initial=done, desc=self.description, unit=self.unit,
                             file=sys.stderr, dynamic_ncols=True, leave=False)
        self._bar.update(done - self._bar.n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()

    def __enter__(self) -> "ProgressBar":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def human_bytes(count: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if count < 1000 or unit == "TB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1000
    raise AssertionError("unreachable")


def report(summary, noun: str) -> None:
    """Print a job's summary line (stdout) and its first failures (stderr)."""
    line = (f"converted {summary.records} {noun} from {summary.inputs} inputs into {summary.shards} shards "
            f"({human_bytes(summary.bytes)}) in {summary.seconds:.1f} s; "
            f"failed {summary.failed}, missing {summary.missing}, skipped {summary.skipped}")
    if summary.resumed:
        line += f"; resumed: {summary.resumed} tasks were already done"
    click.echo(line)
    failures = [e for e in summary.errors if e["status"] == "failed"]
    for entry in failures[:10]:
        where = entry["source"] + (f" [{entry['item']}]" if entry["item"] is not None else "")
        click.echo(f"  failed: {where}: {entry['reason']}", err=True)
    if summary.failed or summary.missing or summary.skipped:
        more = f" ({len(failures) - 10} more failures)" if len(failures) > 10 else ""
        click.echo(f"  details{more}: {os.path.join(summary.cache, 'errors.jsonl')}", err=True)
