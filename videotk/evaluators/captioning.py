"""Captioning metrics of ActivityNet Captions: METEOR 1.5, BLEU-1..4, ROUGE-L and CIDEr-D as the
ActivityNet-Captions evaluator (densevid_eval, 2019) computes them, with coco-caption's scorers
(``pycocoevalcap``).

For each tIoU threshold of 0.3, 0.5, 0.7 and 0.9, every predicted segment of a video is paired with
each reference sentence, from every reference set (``val_1`` and ``val_2``), whose segment has
tIoU >= the threshold with it, one reference per pair; a prediction that overlaps none is paired
with a random string of 10 to 20 letters (seeded here, unseeded there). Each metric is computed
over one video's pairs at a time (the scorer's aggregate: the METEOR jar's over those pairs, BLEU
over them as a corpus, CIDEr-D with document frequencies from them), averaged over the videos, a
video without predictions scoring 0, and then averaged over the thresholds. With ground-truth
segments as the predictions (ETS's setting) every prediction matches at least its own reference.

Text is made ASCII (other characters become spaces) and tokenised by Stanford's PTB tokenizer, as
coco-caption does it (lower case, its punctuation tokens removed). METEOR 1.5 and the tokenizer are
Java jars shipped with ``pycocoevalcap``; ``java`` is taken from ``PATH``. Without Java the evaluator
says so in :attr:`CaptioningEvaluator.warning`, leaves METEOR out and tokenises with
:func:`python_tokenize`, an approximation of the PTB tokenizer: the other scores are then close to,
not equal to, the reference ones.

Units are pycocoevalcap's: fractions in [0, 1], CIDEr-D on its own scale (0 to 10). The densevid
evaluator prints 100 x these, so the seed's "METEOR 9.8" is ``meteor`` 0.098 here.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import re
import shutil
import string
import subprocess
from collections.abc import Iterator, Sequence
from typing import NamedTuple

import numpy as np
from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.meteor.meteor import Meteor
from pycocoevalcap.rouge.rouge import Rouge
from pycocoevalcap.tokenizer import ptbtokenizer

from .base import MeanLoss

log = logging.getLogger(__name__)

TIOUS = (0.3, 0.5, 0.7, 0.9)
BLEU_KEYS = ("bleu_1", "bleu_2", "bleu_3", "bleu_4")
JAVA_MISSING = ("java is not on PATH: captioning METEOR is left out and sentences are tokenised by a Python "
                "approximation of the PTB tokenizer; install a Java runtime (e.g. openjdk-17-jre-headless) for "
                "the reference metrics")
JAVA_OFF = ("Java is switched off (eval.java false): captioning METEOR is left out and sentences are tokenised by "
            "a Python approximation of the PTB tokenizer")
PTB_JAR = os.path.join(os.path.dirname(ptbtokenizer.__file__), ptbtokenizer.STANFORD_CORENLP_3_4_1_JAR)
PUNCTUATION = frozenset(ptbtokenizer.PUNCTUATIONS)


class Reference(NamedTuple):
    """One reference set's annotation of a video: segments ``[R, 2]`` (start, end) and their sentences."""

    timestamps: np.ndarray
    sentences: tuple[str, ...]


def java_available() -> bool:
    return shutil.which("java") is not None


def ascii_only(text: str) -> str:
    return "".join(ch if ord(ch) < 128 else " " for ch in text)


def ptb_tokenize(sentences: Sequence[str]) -> list[str]:
    """Sentences through Stanford's PTB tokenizer (one Java call), lower case, punctuation tokens
    removed, as coco-caption's ``PTBTokenizer``."""
    text = "\n".join(s.replace("\n", " ") for s in sentences)
    done = subprocess.run(["java", "-cp", PTB_JAR, "edu.stanford.nlp.process.PTBTokenizer", "-preserveLines",
                           "-lowerCase"], input=text.encode(), capture_output=True, check=False)
    lines = done.stdout.decode().split("\n")
    if done.returncode or len(lines) < len(sentences):
        raise RuntimeError(f"the PTB tokenizer ({PTB_JAR}) failed with exit status {done.returncode}: "
                           f"{done.stderr.decode().strip()[-500:]}")
    return [_without_punctuation(line.split(" ")) for line in lines[: len(sentences)]]


_BRACKETS = {"(": " -lrb- ", ")": " -rrb- ", "[": " -lsb- ", "]": " -rsb- ", "{": " -lcb- ", "}": " -rcb- "}
_CLITIC = re.compile(r"(?<=\w)(n't|'s|'re|'ve|'ll|'d|'m)\b")
_SEPARATE = re.compile(r"(\.\.\.|--|[,;:!?`]+|[$%#])")
_ABBREVIATION = re.compile(r"(?:[a-z]\.)+")


def python_tokenize(sentence: str) -> str:
    """The PTB tokenizer approximated without Java: lower case; brackets as ``-lrb-`` ... (kept, as the
    jar's lower-cased output keeps them); double quotes dropped; clitics split (``do n't``, ``it 's``); runs of ``,;:!?``,
    ``...``, ``--``, ``$``, ``%`` and ``#`` split off; a final period split off unless the word is an abbreviation
    (``u.s.``); then coco-caption's punctuation tokens removed."""
    text = sentence.lower().replace("\n", " ").replace('"', " ")
    for bracket, token in _BRACKETS.items():
        text = text.replace(bracket, token)
    text = _SEPARATE.sub(r" \1 ", _CLITIC.sub(r" \1", text))
    tokens = []
    for token in text.split():
        if token.endswith(".") and token[:-1][-1:].isalnum() and not _ABBREVIATION.fullmatch(token):
            tokens += [token[:-1], "."]
        else:
            tokens.append(token)
    return _without_punctuation(tokens)


def _without_punctuation(tokens: list[str]) -> str:
    return " ".join(t for t in tokens if t and t not in PUNCTUATION)


def tiou(a: Sequence[float], b: Sequence[float]) -> float:
    """Temporal IoU of two segments as the densevid evaluator computes it (``+ 1e-8`` in the union)."""
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    union = min(max(a[1], b[1]) - min(a[0], b[0]), (a[1] - a[0]) + (b[1] - b[0]))
    return inter / (union + 1e-8)


def video_pairs(timestamps: np.ndarray, sentences: Sequence[str], references: Sequence[Reference], threshold: float,
                rng: random.Random) -> list[tuple[str, str]]:
    """(prediction, reference) sentence pairs of one video at tIoU ``threshold`` (see the module)."""
    pairs = []
    for span, sentence in zip(timestamps, sentences):
        matches = [ref for reference in references for ref_span, ref in zip(reference.timestamps, reference.sentences)
                   if tiou(span, ref_span) >= threshold]
        if not matches:
            matches = ["".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(10, 20)))]
        pairs += [(sentence, ref) for ref in matches]
    return pairs


def pair_scores(pairs: list[tuple[str, str]], meteor: Meteor | None) -> dict[str, float]:
    """Every metric over one video's tokenised (prediction, reference) pairs; METEOR when a jar is given."""
    res = {i: [hyp] for i, (hyp, _) in enumerate(pairs)}
    gts = {i: [ref] for i, (_, ref) in enumerate(pairs)}
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    scores = dict(zip(BLEU_KEYS, bleu))
    if meteor is not None:
        scores["meteor"] = meteor.compute_score(gts, res)[0]
    scores["rouge_l"] = Rouge().compute_score(gts, res)[0]
    scores["cider"] = Cider().compute_score(gts, res)[0]
    return {key: float(value) for key, value in scores.items()}


@contextlib.contextmanager
def meteor_jar(enabled: bool) -> Iterator[Meteor | None]:
    """The METEOR 1.5 jar running for the ``with`` block (None when not ``enabled``)."""
    if not enabled:
        yield None
        return
    scorer = Meteor()
    try:
        yield scorer
    finally:
        scorer.__del__()  # ends the jar's process now rather than whenever the scorer is collected


class CaptioningEvaluator:
    """METEOR, BLEU-1..4, ROUGE-L and CIDEr-D of predicted captions against reference sets (see the module).

    Call :meth:`update` for every ground-truth video, with no predictions for a video the model did
    not caption (it scores 0); a video's predictions may come over several updates. ``java``: None
    uses Java when it is on ``PATH``, False never does (no METEOR, Python tokenisation).
    """

    def __init__(self, *, tious: Sequence[float] = TIOUS, seed: int = 0, java: bool | None = None):
        self.tious, self.seed = tuple(tious), seed
        self.java = java_available() if java is None else java
        self._asked_off = java is False
        self.reset()

    @property
    def warning(self) -> str | None:
        """One line to show the user when the metrics are not the reference ones, else None."""
        if self.java:
            return None
        return JAVA_OFF if self._asked_off else JAVA_MISSING

    def reset(self) -> None:
        """Forget every video seen."""
        self._predictions: dict[object, tuple[list, list[str]]] = {}
        self._references: dict[object, tuple[Reference, ...]] = {}
        self._loss = MeanLoss()

    def update(self, video_id, timestamps: np.ndarray, sentences: Sequence[str],
               references: Sequence[tuple[np.ndarray, Sequence[str]]], loss: float | None = None) -> None:
        """Add predictions of one video: ``timestamps`` ``[P, 2]`` (start, end, seconds), ``sentences`` ``P``
        strings (``P`` may be 0), ``references`` one ``(timestamps [R, 2], R sentences)`` per reference
        set; ``loss``: the mean loss over these ``P`` segments."""
        spans = np.asarray(timestamps, np.float64).reshape(-1, 2) if len(sentences) else np.zeros((0, 2))
        if len(spans) != len(sentences):
            raise ValueError(f"video {video_id!r}: {len(spans)} timestamps and {len(sentences)} sentences")
        refs = tuple(self._reference(video_id, r) for r in references)
        known = self._references.setdefault(video_id, refs)
        if not _same_references(known, refs):
            raise ValueError(f"video {video_id!r}: references differ from those given before for this video")
        stored_spans, stored_sentences = self._predictions.setdefault(video_id, ([], []))
        stored_spans += spans.tolist()
        stored_sentences += list(sentences)
        if loss is not None and len(sentences):
            self._loss.add(loss, len(sentences))

    def summary(self) -> dict:
        """``meteor`` (with Java only), ``bleu_1`` .. ``bleu_4``, ``rouge_l``, ``cider``, averaged over the
        videos and the tIoUs; ``num_videos``, ``num_segments``; ``avg_loss`` when losses were given."""
        if self.warning:
            log.warning(self.warning)
        rng = random.Random(self.seed)
        pairs = {(video, threshold): video_pairs(np.asarray(spans).reshape(-1, 2), sentences,
                                                 self._references[video], threshold, rng)
                 for threshold in self.tious for video, (spans, sentences) in self._predictions.items()}
        tokens = self._tokenizer({text for video_pairs_ in pairs.values() for pair in video_pairs_ for text in pair})
        keys = (*BLEU_KEYS, *(("meteor",) if self.java else ()), "rouge_l", "cider")
        totals = dict.fromkeys(keys, 0.0)
        with meteor_jar(self.java) as meteor:
            for video_pairs_ in pairs.values():
                if video_pairs_:
                    tokenised = [(tokens[hyp], tokens[ref]) for hyp, ref in video_pairs_]
                    for key, value in pair_scores(tokenised, meteor).items():
                        totals[key] += value
        count = max(len(pairs), 1)
        out = {key: total / count for key, total in totals.items()}
        out["num_videos"] = len(self._predictions)
        out["num_segments"] = sum(len(sentences) for _, sentences in self._predictions.values())
        return self._loss.into(out)

    def _tokenizer(self, texts: set[str]) -> dict[str, str]:
        """Each text -> its tokenised form."""
        if not texts:
            return {}
        texts = sorted(texts)
        clean = [ascii_only(t) for t in texts]
        tokenised = ptb_tokenize(clean) if self.java else [python_tokenize(t) for t in clean]
        return dict(zip(texts, tokenised))

    @staticmethod
    def _reference(video_id, reference) -> Reference:
        spans, sentences = reference
        sentences = tuple(sentences)
        spans = np.asarray(spans, np.float64).reshape(-1, 2) if sentences else np.zeros((0, 2))
        if len(spans) != len(sentences):
            raise ValueError(f"video {video_id!r}: a reference set has {len(spans)} timestamps and "
                             f"{len(sentences)} sentences")
        return Reference(spans, sentences)


def _same_references(a: tuple[Reference, ...], b: tuple[Reference, ...]) -> bool:
    return len(a) == len(b) and all(x.sentences == y.sentences and np.array_equal(x.timestamps, y.timestamps)
                                    for x, y in zip(a, b))
