"""The caption tokeniser's rules on tricky sentences, and the vocabulary's order, cut and round trip."""

import json

import pytest

from videotk.pipelines.text import (
    END_ID,
    SPECIAL,
    START_ID,
    UNK_ID,
    Vocabulary,
    build_vocabulary,
    tokenize,
    vocabulary_from_manifest,
)


@pytest.mark.parametrize("sentence, tokens", [
    ("A man is playing the drums.", ["a", "man", "is", "playing", "the", "drums"]),
    ("Then, he stops; she claps: twice!", ["then", "he", "stops", "she", "claps", "twice"]),
    ("The man's dog doesn't jump.", ["the", "man", "'s", "dog", "does", "n't", "jump"]),
    ("They're sure we'll win, I'm told, and he'd say they've won.",
     ["they", "'re", "sure", "we", "'ll", "win", "i", "'m", "told", "and", "he", "'d", "say", "they", "'ve", "won"]),
    ("He can't, won't and cannot.", ["he", "ca", "n't", "wo", "n't", "and", "can", "not"]),
    ("The players' shoes", ["the", "players", "shoes"]),
    ("A well-known ice-skating star -- a 10-year-old - skates.",
     ["a", "well-known", "ice-skating", "star", "a", "10-year-old", "skates"]),
    ('She says "hello" and `bye\' (twice) [loudly] {ok}', ["she", "says", "hello", "and", "bye", "twice", "loudly", "ok"]),
    ("\u201cCurly\u201d quotes and a man\u2019s \u2018hat\u2019", ["curly", "quotes", "and", "a", "man", "'s", "hat"]),
    ("He scores 3.5 points, 1,000 fans at 10:30 cheer 2 times.",
     ["he", "scores", "3.5", "points", "1,000", "fans", "at", "10:30", "cheer", "2", "times"]),
    ("The U.S. team plays at 9 a.m.", ["the", "u.s.", "team", "plays", "at", "9", "a.m."]),
    ("A caf\u00e9 na\u00efve ol\u00e9", ["a", "cafe", "naive", "ole"]),
    ("Costs $5 & 20% more...", ["costs", "$", "5", "&", "20", "%", "more"]),
    ("  \n\t ", []),
    ("It's o'clock", ["it", "'s", "o'clock"]),
    ("You gonna, wanna?", ["you", "gon", "na", "wan", "na"]),
])
def test_tokenize(sentence, tokens):
    assert tokenize(sentence) == tokens


def test_tokenize_is_case_and_space_insensitive():
    assert tokenize("A  MAN\tRuns.") == tokenize("a man runs") == ["a", "man", "runs"]


def test_vocabulary_order_cut_and_ties():
    captions = [tokenize(s) for s in ["a dog runs", "a dog jumps", "a cat runs", "a cat runs", "dog runs", "zebra"]]
    vocabulary = build_vocabulary(captions)
    # a: 4, runs: 4, dog: 3, cat: 2 (< 3), jumps: 1, zebra: 1
    assert vocabulary.words == (*SPECIAL, "a", "runs", "dog")
    assert vocabulary.words[:3] == ("<s>", "<e>", "<unk>") and (START_ID, END_ID, UNK_ID) == (0, 1, 2)
    assert build_vocabulary(captions, min_count=2).words == (*SPECIAL, "a", "runs", "dog", "cat")
    assert build_vocabulary(captions, min_count=1).words[-3:] == ("cat", "jumps", "zebra")


def test_encode_and_decode():
    vocabulary = build_vocabulary([["a", "dog"]] * 3)
    assert vocabulary.encode(["a", "cat", "dog"]) == [3, UNK_ID, 4]
    assert vocabulary.decode([START_ID, 3, 4, END_ID, 3]) == ["a", "dog"]
    assert len(vocabulary) == 5 and "dog" in vocabulary and "cat" not in vocabulary


def test_vocabulary_refuses_bad_word_lists():
    with pytest.raises(ValueError, match="starts with"):
        Vocabulary(("a", "b"))
    with pytest.raises(ValueError, match="more than once"):
        Vocabulary((*SPECIAL, "a", "a"))
    with pytest.raises(ValueError, match="min_count"):
        build_vocabulary([], min_count=0)


def test_manifest_round_trip_and_tampering():
    vocabulary = build_vocabulary([["a", "man", "'s", "hat"]] * 3)
    manifest = json.loads(json.dumps({"kind": "anet_captions", "classes": list(vocabulary.words),
                                      "options": {"vocabulary": vocabulary.manifest_entry()}}))
    assert vocabulary_from_manifest(manifest) == vocabulary
    manifest["classes"][3], manifest["classes"][4] = manifest["classes"][4], manifest["classes"][3]
    with pytest.raises(ValueError, match="does not match"):
        vocabulary_from_manifest(manifest)
    with pytest.raises(ValueError, match="no vocabulary"):
        vocabulary_from_manifest({"kind": "kinetics", "classes": ["a"], "options": {}})
