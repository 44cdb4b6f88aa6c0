"""The ``vtk`` command. Heavy libraries are imported inside commands, so ``--help`` is instant."""

from __future__ import annotations

import logging
import os
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
    if not verbose:
        quiet_third_parties()
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", force=True)


#: notices of the libraries underneath that say nothing about the user's job
_NOISE = (
    "No ccache found",  # Paddle's import
    "When training, we now always track global mean",  # Paddle's BatchNorm
    "Tensor do not have 'place' interface for pir graph mode",  # Paddle's export
)


def quiet_third_parties() -> None:
    """Silence TensorFlow's start-up lines (in this process and its children) and Paddle's notices:
    environment variables read when they are imported, which the commands do later."""
    os.environ.setdefault("GLOG_minloglevel", "2")  # Paddle's C++ warnings (e.g. export's PIR notice)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # its start-up notice; TF only writes tfrecords here
    for message in _NOISE:
        warnings.filterwarnings("ignore", message=message)


for command in (convert, decode, synth, inspect, verify, models, train, evaluate, predict, export, plot, demo):
    cli.add_command(command)


def main() -> None:
    cli(prog_name="vtk")
