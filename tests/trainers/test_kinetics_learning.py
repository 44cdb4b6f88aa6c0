"""The Kinetics models learn: a smaller run of ``benchmarks/learn_kinetics.py`` with the tiny configs.

Synthetic clips of 4 classes are made by ffmpeg and decoded by ``decode_kinetics``; every model
trains from scratch for fewer epochs than the benchmark and is scored on the held-out quarter. The
thresholds sit under what was measured, so a pass means "learns", not "lucky" (the figures of the
full benchmark over three seeds are in docs/benchmarks.md).
"""

import pytest

from videotk.trainers.config import load_config
from videotk.trainers.loop import train

CLIPS_PER_CLASS = 80  # 240 training clips, 80 held out
# fewer epochs than the benchmark's 12, the learning rate divided by 10 for the last ones
SCHEDULES = {"tsn": (8, 6), "tsm": (8, 6), "stnet": (8, 6), "non_local": (4, 3)}


def make_split(root, *, motion_pairs: bool):
    from videotk.pipelines.kinetics import decode_kinetics
    from videotk.pipelines.synth_kinetics import synth_kinetics

    csv = synth_kinetics(root / "raw", num_classes=4, clips_per_class=CLIPS_PER_CLASS, duration=2.0, width=160,
                         height=120, motion_pairs=motion_pairs)
    for split in ("train", "val"):
        decode_kinetics(root / "raw", root / split, annotations=csv, split=split, short_side=64, fps=12.5, workers=1)
    return root


@pytest.fixture(scope="module")
def own_look(tmp_path_factory):
    """Every class its own colour, shape and motion."""
    return make_split(tmp_path_factory.mktemp("own-look"), motion_pairs=False)


@pytest.fixture(scope="module")
def motion_pairs(tmp_path_factory):
    """Two pairs of classes; the classes of a pair differ only in the direction of motion."""
    return make_split(tmp_path_factory.mktemp("motion-pairs"), motion_pairs=True)


def held_out_top1(model, data, save_dir) -> list[float]:
    epochs, drop = SCHEDULES[model]
    config = load_config(model, f"{model}_tiny",
                         [f"train.epochs={epochs}", f"lr_scheduler.milestones=[{drop}]"])
    result = train(config, str(data / "train"), valid_shards=str(data / "val"), save_dir=save_dir)
    return [round(result["metrics"][epoch]["video_top1"], 3) for epoch in range(epochs)]


@pytest.mark.parametrize("model", ["tsn", "tsm", "stnet", "non_local"])
def test_kinetics_models_learn_classes_that_look_different(tmp_path, own_look, model):
    top1 = held_out_top1(model, own_look, tmp_path)
    # chance is 0.25; the 8-epoch schedule measured 0.80-0.98 here, the benchmark's 12 epochs 0.91-1.0
    assert top1[-1] >= 0.65, str(top1)


def test_tsm_tells_directions_of_motion_apart_better_than_tsn(tmp_path, motion_pairs):
    tsn = held_out_top1("tsn", motion_pairs, tmp_path / "tsn")
    tsm = held_out_top1("tsm", motion_pairs, tmp_path / "tsm")
    # TSN averages single frames: it tells the pairs apart, hardly the classes within a pair (0.5).
    # Measured here: TSM 0.76, TSN 0.55; in the benchmark over three seeds TSM 0.74-0.84, TSN 0.59-0.68.
    assert tsm[-1] >= 0.7 and tsm[-1] > tsn[-1], f"tsm {tsm}, tsn {tsn}"
