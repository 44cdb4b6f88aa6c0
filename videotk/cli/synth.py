"""``vtk synth``: small synthetic datasets in the real source formats."""

from __future__ import annotations

import click

from .errors import Problem
from .options import ProgressBar


@click.group()
def synth():
    """Write small synthetic datasets in the real source formats (for trying things out and tests)."""


@synth.command("youtube8m")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Folder for the tfrecords.")
@click.option("--level", type=click.Choice(["frame", "video"]), default="frame", show_default=True)
@click.option("--files", type=click.IntRange(min=1), default=4, show_default=True)
@click.option("--videos-per-file", type=click.IntRange(min=1), default=32, show_default=True)
@click.option("--classes", "num_classes", type=click.IntRange(min=1), default=20, show_default=True,
              help="Size of the label space: labels are class ids 0..CLASSES-1 (YouTube-8M has 3862).")
@click.option("--active", "active_classes", type=click.IntRange(min=1), default=None, show_default="all",
              help="Draw the labels from only this many class ids, spread over 0..CLASSES-1 and fixed by --seed.")
@click.option("--min-frames", type=click.IntRange(min=1), default=30, show_default=True)
@click.option("--max-frames", type=click.IntRange(min=1), default=120, show_default=True)
@click.option("--segments", is_flag=True, help="Add the 2019 segment fields.")
@click.option("--prefix", default="train", show_default=True,
              help="File name prefix (train, validate, test); with the same --seed, another prefix gives other "
                   "videos of the same classes.")
@click.option("--seed", type=int, default=0, show_default=True,
              help="Fixes the classes, their features and the videos.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def synth_youtube8m(out, level, files, videos_per_file, num_classes, active_classes, min_frames, max_frames, segments,
                    prefix, seed, quiet):
    """YouTube-8M tfrecords written by TensorFlow; features depend on the labels.

    \b
    A held-out split shares the training classes when it is made with the same --seed (and
    --classes, --active) and another --prefix:
      vtk synth youtube8m --out raw --classes 3862 --active 16 --files 8 --videos-per-file 128
      vtk synth youtube8m --out raw --classes 3862 --active 16 --files 1 --prefix validate
    """
    from ..pipelines.synth_youtube8m import synth_youtube8m as make

    if min_frames > max_frames:
        raise click.BadParameter("--min-frames must not exceed --max-frames")
    if active_classes is not None and active_classes > num_classes:
        raise click.BadParameter(
            f"--active {active_classes} exceeds --classes {num_classes}; give at most {num_classes}")
    bar = ProgressBar("videos", "video", quiet)
    try:
        paths = make(out, level=level, num_files=files, videos_per_file=videos_per_file, num_classes=num_classes,
                     active_classes=active_classes, min_frames=min_frames, max_frames=max_frames, segments=segments,
                     seed=seed, prefix=prefix, progress=bar)
    except ValueError as exc:
        raise Problem(str(exc)) from exc
    finally:
        bar.close()
    click.echo(f"wrote {len(paths)} {level}-level tfrecords ({files * videos_per_file} videos) to {out}")


@synth.command("kinetics")
@click.option("--out", required=True, type=click.Path(file_okay=False), help="Folder for the clips and kinetics.csv.")
@click.option("--classes", "num_classes", type=click.IntRange(min=2), default=4, show_default=True,
              help="Each class is a shape of its own colour moving its own way.")
@click.option("--motion-pairs", is_flag=True,
              help="Instead, classes in pairs that look alike and differ only by the direction of motion.")
@click.option("--clips-per-class", type=click.IntRange(min=1), default=6, show_default=True)
@click.option("--duration", type=click.FloatRange(min=0.2), default=2.0, show_default=True, help="Seconds per clip.")
@click.option("--fps", type=click.IntRange(min=1), default=25, show_default=True)
@click.option("--size", default="320x240", show_default=True, metavar="WxH")
@click.option("--missing", type=click.IntRange(min=0), default=0, show_default=True,
              help="Extra CSV rows whose clip is not written, as in real Kinetics.")
@click.option("--bad", is_flag=True,
              help="Also write broken clips (empty, not a video, audio only, truncated), listed in the CSV.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def synth_kinetics(out, num_classes, motion_pairs, clips_per_class, duration, fps, size, missing, bad, seed, quiet):
    """H.264 clips made with ffmpeg in the Kinetics layout, plus kinetics.csv.

    \b
    The CSV's split column holds the held-out split: the last quarter of each class's clips is
    'val', the rest 'train', so both share the classes. Decode them apart:
      vtk decode kinetics --src DIR --annotations DIR/kinetics.csv --split train --out cache/train
      vtk decode kinetics --src DIR --annotations DIR/kinetics.csv --split val --out cache/val
    """
    from ..pipelines.synth_kinetics import synth_kinetics as make

    try:
        width, height = (int(v) for v in size.lower().split("x"))
    except ValueError:
        raise click.BadParameter(f"--size {size!r}: expected WxH, e.g. 320x240") from None
    bar = ProgressBar("clips", "clip", quiet)
    try:
        csv_path = make(out, num_classes=num_classes, clips_per_class=clips_per_class, duration=duration, fps=fps,
                        width=width, height=height, missing=missing, bad=bad, motion_pairs=motion_pairs, seed=seed,
                        progress=bar)
    except ValueError as exc:
        raise Problem(str(exc)) from exc
    finally:
        bar.close()
    extra = " (+ broken clips, listed in the CSV)" if bad else ""
    click.echo(f"wrote {num_classes * clips_per_class} clips{extra} and {csv_path}")


@synth.command("activitynet")
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Folder for the annotations and the feature folders.")
@click.option("--videos", "num_videos", type=click.IntRange(min=4), default=64, show_default=True)
@click.option("--classes", "num_classes", type=click.IntRange(min=1), default=4, show_default=True)
@click.option("--tscale", type=click.IntRange(min=1), default=100, show_default=True,
              help="Rows of the rescaled csv_mean_<T> / fix_feat_<T> features.")
@click.option("--feature-dim", type=click.IntRange(min=2), default=400, show_default=True)
@click.option("--segments", type=(click.IntRange(min=1), click.IntRange(min=1)), default=(1, 3), show_default=True,
              metavar="LOW HIGH", help="Action segments per video.")
@click.option("--segment-length", type=(float, float), default=(0.05, 0.6), show_default=True, metavar="LOW HIGH",
              help="Length of each segment, as a fraction of the video.")
@click.option("--seed", type=int, default=0, show_default=True)
def synth_activitynet(out, num_videos, num_classes, tscale, feature_dim, segments, segment_length, seed):
    """ActivityNet 1.3 localization data: annotations and features in the real layouts.

    \b
    Writes the official JSON, BMN's and BSN's per-video JSONs (with video_info_new.csv), raw
    snippet features (snippets/), BSN's csv_mean_<T>/, PaddleVideo's fix_feat_<T>/ and C-TCN's
    rgb / flow score pickles (ctcn/). Actions differ from background and classes from each other
    in the features; a few videos are 'testing' (no annotations), a quarter of the rest 'validation':
      vtk synth activitynet --out raw
      vtk convert activitynet --features raw/csv_mean_100 --annotations raw/activity_net.v1-3.min.json --out cache
    """
    from ..pipelines.synth_activitynet import synth_activitynet as make

    try:
        made = make(out, num_videos=num_videos, num_classes=num_classes, tscale=tscale, feature_dim=feature_dim,
                    segments=segments, segment_length=segment_length, seed=seed)
    except ValueError as exc:
        raise Problem(str(exc)) from exc
    counts = ", ".join(f"{count} {subset}" for subset, count in made.subsets.items())
    click.echo(f"wrote {num_videos} videos of {num_classes} classes ({counts}) to {out}: 3 annotation layouts, "
               f"snippets/, {made.csv_dir.name}/, {made.npy_dir.name}/, ctcn/")


@synth.command("anet-captions")
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="New or empty folder for train.json, val_1.json, val_2.json and features/.")
@click.option("--videos", type=click.IntRange(min=2), default=48, show_default=True)
@click.option("--val-fraction", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.25,
              show_default=True, help="Share of the videos in val_1.json / val_2.json.")
@click.option("--feature-dim", type=click.IntRange(min=1), default=2048, show_default=True,
              help="Feature size (the ResNet-152 features have 2048; small values train faster).")
@click.option("--feature-format", type=click.Choice(["npy", "h5", "pickle"]), default="npy", show_default=True,
              help="features/v_<id>.npy, .h5, or the legacy extension-less pickle v_<id>.")
@click.option("--seed", type=int, default=0, show_default=True)
def synth_anet_captions(out, videos, val_fraction, feature_dim, feature_format, seed):
    """ActivityNet Captions: captions JSON and 5 fps frame features whose captions name the events.

    \b
    A captioned segment is 2-3 events of six kinds, and its caption names them in order
    ("A person runs then jumps."); every training word appears at least 3 times.
      vtk synth anet-captions --out raw
      vtk convert anet-captions --features raw/features --captions raw/train.json raw/val_1.json raw/val_2.json --out cache
    """
    from ..pipelines.synth_captions import synth_anet_captions as make

    try:
        paths = make(out, videos=videos, val_fraction=val_fraction, feature_dim=feature_dim,
                     feature_format=feature_format, seed=seed)
    except ValueError as exc:
        raise Problem(str(exc)) from exc
    click.echo(f"wrote {videos} videos to {out}: {', '.join(p.name for p in paths.values())}")


@synth.command("tacos")
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="New or empty folder for train/, test/, train.json, test.json and the sentence vectors.")
@click.option("--movies", type=click.IntRange(min=2), default=48, show_default=True)
@click.option("--test-fraction", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.25,
              show_default=True)
@click.option("--min-frames", type=click.IntRange(min=512), default=1000, show_default=True)
@click.option("--max-frames", type=click.IntRange(min=512), default=2000, show_default=True)
@click.option("--feature-dim", type=click.IntRange(min=1), default=4096, show_default=True,
              help="Window feature size (C3D fc6 has 4096).")
@click.option("--sentence-dim", type=click.IntRange(min=1), default=4800, show_default=True,
              help="Sentence vector size (skip-thought has 4800).")
@click.option("--legacy", is_flag=True,
              help="Also write the legacy pickles: <subset>_clip-sentvec.pkl and video_allframes_info.pkl.")
@click.option("--seed", type=int, default=0, show_default=True)
def synth_tacos(out, movies, test_fraction, min_frames, max_frames, feature_dim, sentence_dim, legacy, seed):
    """TACoS: sliding-window features of movies of topics, and sentence vectors naming the topics.

    \b
    Train windows are 64/128/256/512 frames, test windows 128/256, at 80% overlap; a window's
    feature mixes the topics it overlaps.
      vtk synth tacos --out raw
      vtk convert tacos --features raw/train --annotations raw/train.json --out cache/train
      vtk convert tacos --features raw/test --annotations raw/test.json --out cache/test
    """
    from ..pipelines.synth_captions import synth_tacos as make

    if min_frames > max_frames:
        raise click.BadParameter("--min-frames must not exceed --max-frames")
    try:
        paths = make(out, movies=movies, test_fraction=test_fraction, min_frames=min_frames, max_frames=max_frames,
                     feature_dim=feature_dim, sentence_dim=sentence_dim, legacy=legacy, seed=seed)
    except ValueError as exc:
        raise Problem(str(exc)) from exc
    click.echo(f"wrote {movies} movies to {out}: {', '.join(sorted({p.name for p in paths.values()}))}")
