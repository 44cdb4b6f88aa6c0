"""``vtk inspect`` and ``vtk verify``: look into a cache and check it against its manifest."""

from __future__ import annotations

import json
import sys

import click

from .errors import Problem
from .options import human_bytes

CACHE_ARG = click.argument("cache", type=click.Path(exists=True, file_okay=False))


def _open(cache_path: str):
    from ..formats import CacheError, open_cache

    try:
        return open_cache(cache_path)
    except CacheError as exc:
        raise Problem(str(exc)) from exc


@click.command()
@CACHE_ARG
@click.option("--json", "as_json", is_flag=True, help="Print the full report as JSON.")
@click.option("--plot", type=click.Path(dir_okay=False), default=None, metavar="FILE.png",
              help="Draw frames-per-video and label histograms to a PNG file.")
@click.option("--top", type=click.IntRange(min=1), default=10, show_default=True, help="Classes listed in text output.")
def inspect(cache, as_json, plot, top):
    """Rows, shards, bytes, frames per video and label histogram of CACHE.

    A missing or damaged shard is named on one line (BAD <shard>: <reason>) and left out of the
    figures; the exit status is then 1.
    """
    from ..formats.stats import describe

    opened = _open(cache)
    info = describe(opened)
    if plot:
        _plot(opened, info, plot)
    if as_json:
        click.echo(json.dumps(info, indent=2))
    else:
        _print_text(info, top)
    if plot:
        click.echo(f"plot: {plot}", err=as_json)
    for problem in info["problems"]:
        click.echo(f"BAD {problem['file']}: {problem['reason']} (left out of the figures)", err=True)
    if info["problems"]:
        sys.exit(1)


def _print_text(info: dict, top: int) -> None:
    click.echo(f"{info['path']}: {info['kind']} cache, {info['format']}")
    click.echo(f"  records  {info['records']}")
    click.echo(f"  shards   {info['shards']} ({human_bytes(info['bytes'])})")
    click.echo(f"  columns  {', '.join(f'{k}:{v}' for k, v in info['columns'].items())}")
    frames = info.get("frames_per_video")
    if frames and frames["count"]:
        click.echo(f"  frames per video  min {frames['min']}, median {frames['median']:g}, "
                   f"mean {frames['mean']}, max {frames['max']}")
    labels = info.get("labels")
    if labels:
        names = labels.get("names") or []
        ranked = sorted(labels["per_class"].items(), key=lambda kv: -kv[1])
        click.echo(f"  labels   {labels['classes_seen']} classes seen" + (f" of {len(names)}" if names else ""))
        for index, count in ranked[:top]:
            name = names[int(index)] if names and 0 <= int(index) < len(names) else ""
            click.echo(f"    {index:>6} {count:>8}  {name}")
    errors = info["errors"]
    click.echo("  errors   " + (", ".join(f"{k} {v}" for k, v in sorted(errors.items())) or "none"))


def _plot(cache, info: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..formats.stats import readable_column

    panels = [name for name in ("num_frames", "labels", "label") if name in info["columns"]]
    fig, axes = plt.subplots(1, max(len(panels), 1), figsize=(5 * max(len(panels), 1), 3.5), squeeze=False)
    for ax, name in zip(axes[0], panels):
        if name == "num_frames":
            ax.hist(readable_column(cache, name, []), bins=30, color="tab:blue")
            ax.set(title="frames per video", xlabel="frames", ylabel="videos")
        else:
            per_class = info["labels"]["per_class"]
            ax.bar([int(k) for k in per_class], list(per_class.values()), color="tab:orange")
            ax.set(title="label histogram", xlabel="class index", ylabel="videos")
    fig.suptitle(f"{info['kind']}: {info['records']} records")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


@click.command()
@CACHE_ARG
def verify(cache):
    """Re-check every shard's size, sha256 and row count against CACHE's manifest.

    Exit status 1 names each bad shard; 0 when all match.
    """
    from ..formats import check_shards

    opened = _open(cache)
    problems = check_shards(opened, deep=True)
    for problem in problems:
        click.echo(f"BAD {problem}", err=True)
    if problems:
        click.echo(f"{len(problems)} of {len(opened.shards)} shards do not match the manifest", err=True)
        sys.exit(1)
    click.echo(f"ok: {len(opened.shards)} shards, {len(opened)} records match the manifest")
