"""Synthetic sources made once per test session, with the real writers (TensorFlow, ffmpeg)."""

import os
import shutil

import paddle  # noqa: F401  Paddle must be loaded before TensorFlow in a process: the other order crashes
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session")
def yt8m_frame_src(tmp_path_factory):
    from videotk.pipelines.synth_youtube8m import synth_youtube8m

    out = tmp_path_factory.mktemp("yt8m-frame")
    synth_youtube8m(out, num_files=3, videos_per_file=8, num_classes=10, min_frames=5, max_frames=40, seed=1)
    return out


@pytest.fixture(scope="session")
def yt8m_video_src(tmp_path_factory):
    from videotk.pipelines.synth_youtube8m import synth_youtube8m

    out = tmp_path_factory.mktemp("yt8m-video")
    synth_youtube8m(out, level="video", num_files=2, videos_per_file=8, num_classes=10, seed=2)
    return out


@pytest.fixture(scope="session")
def yt8m_segment_src(tmp_path_factory):
    from videotk.pipelines.synth_youtube8m import synth_youtube8m

    out = tmp_path_factory.mktemp("yt8m-2019")
    synth_youtube8m(out, num_files=2, videos_per_file=6, num_classes=10, min_frames=10, max_frames=30,
                    segments=True, seed=3, prefix="validate")
    return out


@pytest.fixture(scope="session")
def kinetics_src(tmp_path_factory):
    """8 clips of 4 classes (1 s, 25 fps, 160x120) and a CSV with 2 rows whose clip is missing."""
    from videotk.pipelines.synth_kinetics import synth_kinetics

    out = tmp_path_factory.mktemp("kinetics")
    synth_kinetics(out, num_classes=4, clips_per_class=2, duration=1.0, width=160, height=120, missing=2, seed=4)
    return out


@pytest.fixture
def copy_of(tmp_path):
    """``copy_of(src)``: a private copy of a session source that a test may damage."""

    def make(src):
        dst = tmp_path / f"src-{src.name}"
        shutil.copytree(src, dst)
        return dst

    return make
