"""Caption text: a deterministic PTB-style tokeniser and the word vocabulary built from it.

Captioning models (ETS) read sentences as word ids, and the captioning metrics compare tokenised
text, so every caption is tokenised once, at conversion time, by :func:`tokenize`:

1. curly quotes and dashes become their ASCII forms; accents are dropped (``café`` -> ``cafe``);
   any other non-ASCII character becomes a space (as the legacy data scripts did);
2. the text is lower-cased;
3. tokens are, in this order of preference: acronyms with periods (``u.s.``, ``a.m.``); numbers
   with inner ``.``, ``,`` or ``:`` (``3.5``, ``1,000``, ``10:30``); words of letters and digits
   with inner hyphens or apostrophes (``ice-skating``, ``o'clock``); the symbols
   ``$ % & # @ + = * / < > ~ ^ | \\`` one at a time;
4. clitics are split off as the Penn Treebank tokeniser does: ``man's`` -> ``man 's``, ``don't``
   -> ``do n't``, ``they're`` -> ``they 're`` (also ``'ve 'll 'd 'm``), ``cannot`` -> ``can not``,
   ``gonna`` -> ``gon na`` (``gotta``, ``wanna`` likewise);
5. everything else is punctuation and is dropped, as coco-caption's PTB tokeniser drops it
   (``. , ; : ! ? ' " ` ( ) [ ] { } - -- ...``).

The vocabulary (:func:`build_vocabulary`) is ``<s>`` (id 0), ``<e>`` (1), ``<unk>`` (2), then every
training token seen at least ``min_count`` (3) times, most frequent first, ties in alphabetical
order. A cache stores it in its manifest: ``classes`` is the word list (word id = position) and
``options["vocabulary"]`` holds ``{"size", "min_count", "sha256"}``;
:func:`vocabulary_from_manifest` reads it back and checks it.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

START, END, UNK = "<s>", "<e>", "<unk>"
SPECIAL = (START, END, UNK)
START_ID, END_ID, UNK_ID = 0, 1, 2
MIN_COUNT = 3

#: names the tokenisation rules; a cache records it, so a change of rules is a change of options
TOKENIZER = "ptb-regex-1"

_ASCII_FORMS = str.maketrans({
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u2032": "'",
    "\u201c": '"', "\u201d": '"', "\u201e": '"',
    "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": " -- ", "\u2026": "...",
})

_TOKEN = re.compile(r"""
      (?:[a-z]\.){2,}                  # acronyms: u.s., a.m.
    | \d+(?:[.,:]\d+)+                 # numbers with inner separators: 3.5, 1,000, 10:30
    | [a-z0-9]+(?:['-][a-z0-9]+)*      # words, with inner hyphens or apostrophes
    | [$%&\#@+=*/<>~^|\\]              # symbols the PTB tokeniser keeps
""", re.VERBOSE)

_CLITIC = re.compile(r"(?<=[a-z0-9])(n't|'s|'re|'ve|'ll|'d|'m)$")
_SPLIT_WORDS = {"cannot": ("can", "not"), "gonna": ("gon", "na"), "gotta": ("got", "ta"), "wanna": ("wan", "na")}


def tokenize(sentence: str) -> list[str]:
    """The tokens of ``sentence`` by the rules above, e.g. ``"A man's hat, don't you think?"`` ->
    ``["a", "man", "'s", "hat", "do", "n't", "you", "think"]``."""
    tokens = []
    for word in _TOKEN.findall(_plain_ascii(sentence).lower()):
        tokens.extend(_split_clitic(word))
    return tokens


def _plain_ascii(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.translate(_ASCII_FORMS))
    return "".join(c if c.isascii() else " " for c in decomposed if not unicodedata.combining(c))


def _split_clitic(word: str) -> tuple[str, ...]:
    if word in _SPLIT_WORDS:
        return _SPLIT_WORDS[word]
    found = _CLITIC.search(word)
    if found is None:
        return (word,)
    return word[: found.start()], found.group(1)


@dataclass(frozen=True)
class Vocabulary:
    """Word ids: ``words[i]`` is the word of id ``i``; the first three are ``<s>``, ``<e>``, ``<unk>``."""

    words: tuple[str, ...]
    min_count: int = MIN_COUNT
    _ids: dict = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "words", tuple(self.words))
        if self.words[: len(SPECIAL)] != SPECIAL:
            raise ValueError(f"a vocabulary starts with {list(SPECIAL)}, got {list(self.words[:3])}")
        if len(set(self.words)) != len(self.words):
            repeated = next(w for w, n in Counter(self.words).items() if n > 1)
            raise ValueError(f"vocabulary word {repeated!r} appears more than once")
        object.__setattr__(self, "_ids", {word: i for i, word in enumerate(self.words)})

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: str) -> bool:
        return word in self._ids

    def encode(self, tokens: Iterable[str]) -> list[int]:
        """Word ids of ``tokens``; a word outside the vocabulary is ``<unk>`` (2)."""
        return [self._ids.get(token, UNK_ID) for token in tokens]

    def decode(self, ids: Iterable[int]) -> list[str]:
        """The words of ``ids`` up to the first ``<e>``, without ``<s>`` and ``<e>``."""
        words = []
        for i in ids:
            if i == END_ID:
                break
            if i != START_ID:
                words.append(self.words[i])
        return words

    @property
    def sha256(self) -> str:
        return hashlib.sha256("\n".join(self.words).encode("utf-8")).hexdigest()

    def manifest_entry(self) -> dict:
        """What a cache's options record of this vocabulary (its words go to the manifest's ``classes``)."""
        return {"size": len(self), "min_count": self.min_count, "sha256": self.sha256}


def build_vocabulary(captions: Iterable[Sequence[str]], min_count: int = MIN_COUNT) -> Vocabulary:
    """The vocabulary of tokenised training ``captions``: the special words, then every token seen
    at least ``min_count`` times, by falling count, then alphabetically."""
    if min_count < 1:
        raise ValueError(f"min_count must be at least 1, got {min_count}")
    counts = Counter(token for tokens in captions for token in tokens)
    kept = sorted((w for w, n in counts.items() if n >= min_count and w not in SPECIAL), key=lambda w: (-counts[w], w))
    return Vocabulary((*SPECIAL, *kept), min_count)


def vocabulary_from_manifest(manifest: dict) -> Vocabulary:
    """The vocabulary a captions cache's manifest stores (``classes`` and ``options["vocabulary"]``);
    ``ValueError`` when it has none or the words do not match the recorded size and digest."""
    entry = (manifest.get("options") or {}).get("vocabulary")
    words = manifest.get("classes")
    if not isinstance(entry, dict) or not isinstance(words, list):
        raise ValueError(f"the {manifest.get('kind')!r} cache has no vocabulary in its manifest")
    vocabulary = Vocabulary(tuple(words), int(entry.get("min_count", MIN_COUNT)))
    if vocabulary.manifest_entry() != entry:
        raise ValueError(f"the manifest's vocabulary ({len(words)} words) does not match its record {entry}; "
                         "convert again to rebuild the cache")
    return vocabulary
