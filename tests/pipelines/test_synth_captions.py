"""Synthetic ActivityNet Captions and TACoS: deterministic, split, every training word frequent, and
learnable: the captions can be read off the features, and sentences find their windows."""

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from videotk.pipelines.synth_captions import VERBS, synth_anet_captions, synth_tacos, window_spans
from videotk.pipelines.text import tokenize


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_anet_same_seed_same_bytes(tmp_path):
    synth_anet_captions(tmp_path / "a", videos=8, feature_dim=4, seed=1)
    synth_anet_captions(tmp_path / "b", videos=8, feature_dim=4, seed=1)
    synth_anet_captions(tmp_path / "c", videos=8, feature_dim=4, seed=2)
    assert tree(tmp_path / "a") == tree(tmp_path / "b") != tree(tmp_path / "c")


def test_anet_splits_and_word_counts(tmp_path):
    paths = synth_anet_captions(tmp_path / "src", videos=20, val_fraction=0.25, feature_dim=4)
    train, val_1, val_2 = (json.loads(paths[name].read_text()) for name in ("train", "val_1", "val_2"))
    assert len(train) == 15 and len(val_1) == 5 and set(val_1) == set(val_2) and not set(train) & set(val_1)
    counts = Counter(t for v in train.values() for s in v["sentences"] for t in tokenize(s))
    assert set(counts) == {"a", "person", "then", *VERBS} and min(counts.values()) >= 3
    for entry in [*train.values(), *val_1.values(), *val_2.values()]:
        assert len(entry["timestamps"]) == len(entry["sentences"]) >= 1
        assert all(0 <= s < e <= entry["duration"] for s, e in entry["timestamps"])
    assert sorted(p.name for p in paths["features"].iterdir()) == sorted(f"{k}.npy" for k in [*train, *val_1])


def test_anet_captions_can_be_read_off_the_features(tmp_path):
    """Each frame of a captioned segment, sliced as the ETS reader slices, is nearest to the
    prototype of its event's verb (or to nothing in a gap); the verbs in order give the caption."""
    dim, seed = 128, 4
    paths = synth_anet_captions(tmp_path / "src", videos=16, feature_dim=dim, seed=seed)
    prototypes = np.random.default_rng(seed).standard_normal((len(VERBS), dim)).astype(np.float32)
    candidates = np.vstack([prototypes, np.zeros((1, dim), np.float32)])
    read, total = 0, 0
    for name in ("train", "val_1", "val_2"):
        for key, entry in json.loads(paths[name].read_text()).items():
            frames = np.load(paths["features"] / f"{key}.npy")
            for (start, end), sentence in zip(entry["timestamps"], entry["sentences"]):
                segment = frames[int(start * 5) : int(end * 5 + 0.5)]
                nearest = np.argmin(((segment[:, None] - candidates[None]) ** 2).sum(-1), axis=1)
                runs = [VERBS[k] for i, k in enumerate(nearest) if k < len(VERBS) and (i == 0 or nearest[i - 1] != k)]
                said = [w for w in tokenize(sentence) if w in VERBS]
                read += runs == [w for i, w in enumerate(said) if i == 0 or said[i - 1] != w]
                total += 1
    assert read / total > 0.95


def test_anet_refusals(tmp_path):
    with pytest.raises(ValueError, match="every word appears 3 times"):
        synth_anet_captions(tmp_path / "few", videos=3, val_fraction=0.34, feature_dim=4)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "old.json").write_text("{}")
    with pytest.raises(ValueError, match="is not empty"):
        synth_anet_captions(tmp_path / "full", feature_dim=4)
    with pytest.raises(ValueError, match="both splits"):
        synth_anet_captions(tmp_path / "one", videos=2, val_fraction=0.1, feature_dim=4)


def test_window_spans():
    assert window_spans(300, (128,)) == [(0, 128), (26, 154), (51, 179), (77, 205), (102, 230), (128, 256),
                                         (154, 282)]
    assert window_spans(100, (128,)) == []


@pytest.fixture(scope="module")
def tacos(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth-tacos")
    return synth_tacos(root / "src", movies=8, min_frames=600, max_frames=900, feature_dim=16, sentence_dim=32,
                       legacy=True, seed=6)


def test_tacos_same_seed_same_bytes(tmp_path, tacos):
    again = synth_tacos(tmp_path / "again", movies=8, min_frames=600, max_frames=900, feature_dim=16,
                        sentence_dim=32, legacy=True, seed=6)
    assert tree(tacos["train"].parent) == tree(again["train"].parent)


def test_tacos_layout(tacos):
    train, test = (json.loads(tacos[name].read_text()) for name in ("train", "test"))
    assert len(train["movies"]) == 6 and len(test["movies"]) == 2 and not set(train["movies"]) & set(test["movies"])
    lengths = {subset: {int(p.stem.split("_")[2]) - int(p.stem.split("_")[1]) for p in tacos[f"{subset}_windows"].iterdir()}
               for subset in ("train", "test")}
    assert lengths == {"train": {64, 128, 256, 512}, "test": {128, 256}}
    for document in (train, test):
        vectors = np.load(tacos[f"{document['subset']}_vectors"])
        rows = [s["vector"] for m in document["movies"].values() for s in m["sentences"]]
        assert sorted(rows) == list(range(len(vectors))) and vectors.shape[1] == 32
        for movie in document["movies"].values():
            spans = sorted({tuple(s["span"]) for s in movie["sentences"]})
            assert spans[0][0] == 0 and spans[-1][1] == movie["num_frames"]
            assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))  # the intervals cover the movie
    legacy = {name for name in (p.name for p in tacos["train"].parent.iterdir()) if name.endswith(".pkl")}
    assert legacy == {"train_clip-sentvec.pkl", "test_clip-sentvec.pkl", "video_allframes_info.pkl"}


def iou(a, b):
    inter = max(0, min(a[1], b[1]) - max(a[0], b[0]))
    return inter / (max(a[1], b[1]) - min(a[0], b[0]))


def movie_windows(folder: Path):
    found = {}
    for path in sorted(folder.iterdir()):
        movie, start, end = path.stem.split(".avi_")[0], *map(int, path.stem.split("_")[1:])
        found.setdefault(movie, []).append(((start, end), np.load(path)))
    return found


def test_tacos_sentences_find_their_windows(tacos):
    """A linear map from sentence vectors to window features, fitted on the training movies,
    ranks the test windows: R@1 at IoU 0.5 is far above chance."""
    sentences, features = [], []
    train, vectors = json.loads(tacos["train"].read_text()), np.load(tacos["train_vectors"])
    windows = movie_windows(tacos["train_windows"])
    for movie, entry in train["movies"].items():
        for sentence in entry["sentences"]:
            best = max(windows[movie], key=lambda w: iou(w[0], sentence["span"]))
            sentences.append(vectors[sentence["vector"]])
            features.append(best[1])
    mapping, *_ = np.linalg.lstsq(np.array(sentences), np.array(features), rcond=None)

    test, vectors = json.loads(tacos["test"].read_text()), np.load(tacos["test_vectors"])
    windows = movie_windows(tacos["test_windows"])
    hits, chance = [], []
    for movie, entry in test["movies"].items():
        spans = [span for span, _ in windows[movie]]
        stacked = np.stack([feature for _, feature in windows[movie]])
        for sentence in entry["sentences"]:
            scores = -((stacked - vectors[sentence["vector"]] @ mapping) ** 2).sum(1)
            hits.append(iou(spans[int(np.argmax(scores))], sentence["span"]) >= 0.5)
            chance.append(np.mean([iou(span, sentence["span"]) >= 0.5 for span in spans]))
    assert np.mean(hits) > 0.6 and np.mean(hits) > 4 * np.mean(chance)
