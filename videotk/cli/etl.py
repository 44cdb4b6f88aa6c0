"""``vtk convert`` and ``vtk decode``: raw datasets to caches."""

from __future__ import annotations

import sys

import click

from .errors import INTERRUPTED, Problem
from .options import ProgressBar, etl_options, report


def _run_job(job, noun: str, quiet: bool, **kwargs):
    """Run a pipeline function with a progress bar. Its input, folder and scheduler errors are usage
    errors (exit 2); Ctrl-C ends it with one line saying what was kept (exit 130)."""
    from ..formats import CacheError
    from ..pipelines.runner import SchedulerError

    try:
        with ProgressBar("shards", "shard", quiet) as bar:
            summary = job(progress=bar, **kwargs)
    except (CacheError, SchedulerError, ValueError, OSError) as exc:
        raise Problem(" ".join(str(exc).split())) from exc
    except KeyboardInterrupt as exc:
        click.echo(str(exc) or "interrupted", err=True)
        sys.exit(INTERRUPTED)
    report(summary, noun)
    sys.exit(summary.exit_code)


def _short_side(ctx, param, value: int) -> int:
    from ..pipelines.ffmpeg import check_short_side

    try:
        check_short_side(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    return value


@click.group()
def convert():
    """Convert a feature dataset into a sharded, checksummed cache."""


@convert.command("youtube8m")
@click.option("--src", required=True, metavar="DIR|GLOB|FILE",
              help="tfrecord files: a folder (searched recursively for *.tfrecord), a quoted glob, or one file.")
@click.option("--level", type=click.Choice(["auto", "frame", "video"]), default="auto", show_default=True,
              help="Frame-level SequenceExamples or video-level Examples; auto reads the first records.")
@click.option("--segments/--no-segments", default=None,
              help="Keep the 2019 segment columns [default: when the records have them].")
@etl_options
def convert_youtube8m(src, level, segments, out, fmt, workers, scheduler, overwrite, quiet):
    """YouTube-8M tfrecords (2018 / 2019 schemas) to a cache, one shard per tfrecord.

    Lossless: the quantized uint8 features are stored byte for byte, every frame is kept, and each
    record's CRC is checked. Damaged records and files go to CACHE/errors.jsonl with the file, the
    record index and the reason. Exit status: 0 all converted, 1 some inputs failed, 2 usage error.
    Running the same command again resumes an interrupted run.
    """
    from ..pipelines.youtube8m import convert_youtube8m as job

    _run_job(job, "videos", quiet, src=src, out=out, level=level, segments=segments, fmt=fmt,
             workers=workers, scheduler=scheduler, overwrite=overwrite)


@click.group()
def decode():
    """Decode a video dataset into a cache of resized frames."""


@decode.command("kinetics")
@click.option("--src", required=True, type=click.Path(exists=True, file_okay=False),
              help="Folder of clips, <label>/<youtube_id>_<start:06d>_<end:06d>.mp4.")
@click.option("--annotations", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Kinetics CSV (label,youtube_id,time_start,time_end,split). Without it, labels come from class folders.")
@click.option("--split", default=None, metavar="NAME",
              help="Only the CSV rows whose split column is NAME (train, val, test); classes stay those of the whole CSV.")
@click.option("--fps", type=click.FloatRange(min=0, min_open=True), default=25.0, show_default=True,
              help="Resample every clip to this frame rate.")
@click.option("--short-side", type=click.IntRange(min=0), default=256, show_default=True, callback=_short_side,
              help="Resize so the shorter side has this many pixels (even), keeping the aspect ratio (0: keep size).")
@click.option("--codec", type=click.Choice(["jpeg", "raw"]), default="jpeg", show_default=True,
              help="Store one JPEG per frame, or raw uint8 RGB frames [T, H, W, 3].")
@click.option("--quality", type=click.IntRange(2, 31), default=3, show_default=True,
              help="JPEG quality as ffmpeg's -q:v: 2 best and largest, 31 smallest.")
@click.option("--videos-per-shard", type=click.IntRange(min=1), default=64, show_default=True,
              help="Clips per shard (and per task).")
@etl_options
def decode_kinetics(src, annotations, split, fps, short_side, codec, quality, videos_per_shard,
                    out, fmt, workers, scheduler, overwrite, quiet):
    """Kinetics clips to a cache of frames, decoded and resized once by ffmpeg.

    Class index = position of the label in the sorted class names (stored in the manifest).
    Clips listed in the CSV but absent are reported as missing; clips that ffmpeg cannot decode go
    to CACHE/errors.jsonl with the reason. Exit status: 0 nothing failed (missing clips do not
    count), 1 some clips failed, 2 usage error. Running the same command again resumes.
    """
    from ..pipelines.kinetics import decode_kinetics as job

    _run_job(job, "clips", quiet, src=src, out=out, annotations=annotations, split=split, fps=fps, short_side=short_side,
             codec=codec, quality=quality, videos_per_shard=videos_per_shard, fmt=fmt,
             workers=workers, scheduler=scheduler, overwrite=overwrite)


@convert.command("activitynet")
@click.option("--features", required=True, metavar="DIR|FILE.h5",
              help="Feature files, one per video named v_<id> or <id>, or one .h5 file of every video.")
@click.option("--annotations", required=True, metavar="FILE",
              help="ActivityNet 1.3 JSON (version, taxonomy, database) or BSN / BMN's per-video JSON "
                   "(a video_info_new.csv beside it is used too).")
@click.option("--tscale", type=click.IntRange(min=1), default=100, show_default=True,
              help="Rows per video after BSN's rescaling of snippet features; C-TCN scores keep their length.")
@click.option("--videos-per-shard", type=click.IntRange(min=1), default=256, show_default=True,
              help="Videos per shard (and per task).")
@etl_options
def convert_activitynet(features, annotations, tscale, videos_per_shard, out, fmt, workers, scheduler, overwrite,
                        quiet):
    """ActivityNet 1.3 features and annotations to a cache, one record per video.

    \b
    --features holds one of (found from the files):
      BSN's csv_mean_100/v_<id>.csv (header f0..f399) or PaddleVideo's fix_feat_100/v_<id>.npy
      snippet features of any length [T, D]: .npy, .csv or .h5 per video, or one .h5 of all
      C-TCN scores: folders named *rgb* and *flow* of <name>.pkl ({b'scores': [T, C]} each)
    Snippet features are rescaled to --tscale rows by BSN's procedure (interpolation between
    snippet centres, 3 points mean-pooled per bin); features of --tscale rows are kept as they are.
    The rgb and flow scores are cut to the shorter and concatenated, at their own length.

    Ids are stored without v_; labels index the sorted class names in the manifest. Feature files
    without annotations are skipped, annotated videos without features missing, unreadable or
    misshapen features and annotations failed (CACHE/errors.jsonl). Exit status: 0 nothing failed,
    1 some videos failed, 2 usage error. Running the same command again resumes.
    """
    from ..pipelines.activitynet import convert_activitynet as job

    _run_job(job, "videos", quiet, features=features, annotations=annotations, out=out, tscale=tscale,
             videos_per_shard=videos_per_shard, fmt=fmt, workers=workers, scheduler=scheduler, overwrite=overwrite)


@convert.command("anet-captions")
@click.option("--features", required=True, type=click.Path(exists=True, file_okay=False),
              help="Folder of per-video frame features: <id>.npy / .h5 / .pkl or legacy v_<id> pickles, [T, D] each.")
@click.option("--captions", required=True, multiple=True, type=click.Path(exists=True, dir_okay=False),
              metavar="FILE [FILE...]",
              help="ActivityNet Captions JSON files: train.json (builds the vocabulary), val_1.json, val_2.json.")
@click.argument("more_captions", nargs=-1, type=click.Path(exists=True, dir_okay=False), metavar="")
@click.option("--fps", type=click.FloatRange(min=0, min_open=True), default=5.0, show_default=True,
              help="Frame rate of the features (recorded in the manifest; frame t is at t / fps seconds).")
@click.option("--min-count", type=click.IntRange(min=1), default=3, show_default=True,
              help="Training words seen fewer times are <unk>.")
@click.option("--videos-per-shard", type=click.IntRange(min=1), default=32, show_default=True,
              help="Videos per shard (and per task).")
@etl_options
def convert_anet_captions(features, captions, more_captions, fps, min_count, videos_per_shard, out, fmt, workers,
                          scheduler, overwrite, quiet):
    """ActivityNet Captions frame features and captions to a cache, one record per video.

    \b
    The subset comes from each file's name: train.json is 'train'; val_1.json and val_2.json are
    'val', reference sets 1 and 2 (the 'reference' column says which file each event is from; a
    video of both files is one record). Captions are stored raw and tokenised (lower case, PTB
    rules, punctuation dropped); the vocabulary (<s>, <e>, <unk>, then the training words seen
    --min-count times or more, most frequent first) is the manifest's class list.
      vtk convert anet-captions --features feats/ --captions train.json val_1.json val_2.json --out cache

    Captioned videos without features are missing, feature files of no captioned video skipped,
    unreadable features and bad caption entries failed (CACHE/errors.jsonl). Exit status: 0 nothing
    failed, 1 some videos failed, 2 usage error. Running the same command again resumes.
    """
    from ..pipelines.anet_captions import convert_anet_captions as job

    _run_job(job, "videos", quiet, features=features, captions=[*captions, *more_captions], out=out, fps=fps,
             min_count=min_count, videos_per_shard=videos_per_shard, fmt=fmt, workers=workers, scheduler=scheduler,
             overwrite=overwrite)


@convert.command("tacos")
@click.option("--features", required=True, type=click.Path(exists=True, file_okay=False),
              help="Folder of window features <movie>.avi_<start>_<end>.npy (e.g. Interval64_128_256_512_overlap0.8_c3d_fc6).")
@click.option("--annotations", required=True, type=click.Path(exists=True, dir_okay=False),
              help="The subset's sentences: a legacy <subset>_clip-sentvec.pkl, or the JSON vtk synth tacos writes.")
@click.option("--frame-counts", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Legacy video_allframes_info.pkl (movie -> frames) [default: beside the annotations, when there].")
@click.option("--movies-per-shard", type=click.IntRange(min=1), default=8, show_default=True,
              help="Movies per shard (and per task).")
@etl_options
def convert_tacos(features, annotations, frame_counts, movies_per_shard, out, fmt, workers, scheduler, overwrite,
                  quiet):
    """TACoS window features and sentence annotations to a cache, one record per movie.

    \b
    One subset per run, as the legacy files come:
      vtk convert tacos --features Interval64_128_256_512_overlap0.8_c3d_fc6 --annotations train_clip-sentvec.pkl --out cache/train
      vtk convert tacos --features Interval128_256_overlap0.8_c3d_fc6 --annotations test_clip-sentvec.pkl --out cache/test
    A record holds the movie's windows (frame spans and features) and its sentences (frame spans,
    vectors, text when known); training pairs are made from them when training.

    Annotated movies without windows are missing, windows of other movies skipped, unreadable
    windows and bad annotation entries failed (CACHE/errors.jsonl). Exit status: 0 nothing failed,
    1 some movies failed, 2 usage error. Running the same command again resumes.
    """
    from ..pipelines.tacos import convert_tacos as job

    _run_job(job, "movies", quiet, features=features, annotations=annotations, frame_counts=frame_counts, out=out,
             movies_per_shard=movies_per_shard, fmt=fmt, workers=workers, scheduler=scheduler, overwrite=overwrite)
