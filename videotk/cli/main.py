"""The ``vtk`` command. Heavy libraries are imported inside commands, so ``--help`` is instant."""

from __future__ import annotations

import logging
import warnings

import click

from .. import __version__
from .cache import inspect, verify
from .demo import demo
from .etl import convert, decode
from .synth import synth
from .train import evaluate, export, models, plot, predict, train


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="vtk")
@click.option("--verbose", "-v", count=True, help="More log output (-v info, -vv debug).")
def cli(verbose: int) -> None:
    """videotk: convert video datasets once into sharded, checksummed caches, then train on them.

    \b
    vtk synth youtube8m --out raw/yt8m            # small synthetic sources in the real formats
    vtk convert youtube8m --src raw/yt8m --out cache/yt8m
    vtk decode kinetics --src videos/ --annotations train.csv --out cache/k400
    vtk inspect cache/k400 && vtk verify cache/k400
    """
    level = (logging.WARNING, logging.INFO, logging.DEBUG)[min(verbose, 2)]
    warnings.filterwarnings("ignore", message="No ccache found")  # printed by Paddle's import
    warnings.filterwarnings("ignore", message="When training, we now always track global mean")  # Paddle BatchNorm
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


for command in (convert, decode, synth, inspect, verify, models, train, evaluate, predict, export, plot, demo):
    cli.add_command(command)


def main() -> None:
    cli(prog_name="vtk")
