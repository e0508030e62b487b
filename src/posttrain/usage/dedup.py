"""Exact and near-duplicate removal: a normalised-text hash, then MinHash over word shingles.

Near duplicates are found with MinHash (64 hashes) and LSH banding (16 bands of 4), and each
candidate pair is confirmed with the exact Jaccard similarity of the shingle sets (as sets of
64-bit hashes), so the threshold means what it says. The index is kept in a temporary SQLite
file (``Deduper``): memory does not grow with the number of texts. A bucket indexes at most ``_BUCKET_CAP`` texts, so the work per
text is bounded and the whole pass is linear in the number of texts. Texts are kept in the order given: put preferred rows first.
"""

from __future__ import annotations

import hashlib
import re
import struct
import unicodedata
from collections.abc import Iterable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any

_NUM_HASHES = 64
_BANDS = 16
_ROWS = _NUM_HASHES // _BANDS
_MERSENNE = (1 << 61) - 1
#: kept texts indexed per LSH bucket. Logs written from one template (same words, another
#: number or name) fall into the same buckets without being near duplicates; unbounded, every
#: new text was checked against all of them, so dedup grew with n^2 (5,000 templated lines
#: 3.4 s, 20,000 37.7 s). With the cap, each text is checked against at most
#: _BANDS x _BUCKET_CAP earlier ones. A true near duplicate (Jaccard >= 0.8) shares ~6.6 of the
#: 16 bands with its original on average, so it is still found unless every band it shares
#: is already full.
_BUCKET_CAP = 32


#: sentence-final punctuation, dropped at the end of a text
_FINAL = re.compile(r"[.!?\u2026]+$")


def normalise(text: str) -> str:
    """NFKC, case-folded, runs of whitespace as one space, the sentence's final full stop,
    question or exclamation marks dropped. Every other character counts: "Is 7 > 3?" and
    "Is 7 < 3?", "C++" and "C#", "print('x')" and "print(x)", "type([1, 2])" and
    "type((1, 2))", "5'" and "5\"" are different texts."""
    text = " ".join(unicodedata.normalize("NFKC", text).casefold().split())
    return _FINAL.sub("", text).rstrip()


def words_only(text: str) -> str:
    """:func:`normalise` with every punctuation mark and symbol dropped too: only for texts
    already known to ask the same thing in other words (``grow`` compares short cousins that
    share a reference answer this way); "12 + 4" and "12 - 4" read alike here."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(re.sub(r"[^\w\s]", " ", text).split())


_TOKEN = re.compile(r"\w+[^\w\s]*|[^\w\s]+")


def tokens(text: str) -> list[str]:
    """The normalised text's words, each with the symbols that follow it ("c++", "c#"), and
    symbols standing alone ("7 > 3": 7, >, 3)."""
    return _TOKEN.findall(normalise(text))


def shingles(text: str, size: int = 3) -> set[str]:
    """Word ``size``-shingles over :func:`tokens` (a symbol is a word: an operator or a
    language's name changes the shingles it is in)."""
    words = tokens(text)
    if len(words) < size:
        return {" ".join(words)} if words else set()
    return {" ".join(words[i:i + size]) for i in range(len(words) - size + 1)}


def jaccard(a: AbstractSet[Any], b: AbstractSet[Any]) -> float:
    if not a and not b:
        return 1.0
    common = len(a & b)
    return common / (len(a) + len(b) - common)  # |a | b|, without building the union


def _hash64(token: str) -> int:
    digest = hashlib.blake2b(token.encode(errors="surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def _signature(hashes: list[int], coeffs: list[tuple[int, int]]) -> tuple[int, ...]:
    if not hashes:
        return tuple([0] * _NUM_HASHES)
    return tuple(min((a * h + b) % _MERSENNE for h in hashes) for a, b in coeffs)


@dataclass
class DedupResult:
    keep: list[int] = field(default_factory=list)
    # index of a dropped text -> (index of the kept text it duplicates, "exact" | "near")
    dropped: dict[int, tuple[int, str]] = field(default_factory=dict)

    @property
    def exact(self) -> int:
        return sum(1 for _, kind in self.dropped.values() if kind == "exact")

    @property
    def near(self) -> int:
        return sum(1 for _, kind in self.dropped.values() if kind == "near")


#: shingle sets of kept texts held in memory at once (the most recently read); the others
#: are read back from the index file when a text is compared with them
_CACHED_SETS = 8192


class Deduper:
    """Texts one at a time, in the order given (put preferred rows first): :meth:`add` says
    whether a text duplicates an earlier kept one. Memory stays bounded whatever the number of
    texts: the index (each kept text's normalised-text digest, its LSH buckets and its
    shingles as 64-bit hashes) lives in a temporary SQLite file with a small page cache, and
    only the shingle sets compared most recently are held as sets. The same results as holding
    everything in memory (a 64-bit digest or shingle hash that collides would only add a
    candidate, which the Jaccard test then checks)."""

    def __init__(self, threshold: float = 0.8, seed: int = 0) -> None:
        import random
        import sqlite3

        rng = random.Random(seed)
        self.threshold = threshold
        self.coeffs = [(rng.randrange(1, _MERSENNE), rng.randrange(0, _MERSENNE))
                       for _ in range(_NUM_HASHES)]
        self.conn = sqlite3.connect("", isolation_level=None)  # a private temporary file
        self.conn.execute("PRAGMA cache_size = -8000")  # 8 MB of pages; the rest on disk
        self.conn.execute("PRAGMA journal_mode = OFF")
        self.conn.execute("PRAGMA synchronous = OFF")
        self.conn.execute("BEGIN")
        self.conn.execute("CREATE TABLE exact (key INTEGER PRIMARY KEY, idx INTEGER NOT NULL)")
        self.conn.execute("CREATE TABLE bucket (band INTEGER NOT NULL, idx INTEGER NOT NULL, "
                          "PRIMARY KEY (band, idx)) WITHOUT ROWID")
        self.conn.execute("CREATE TABLE shingles (idx INTEGER PRIMARY KEY, hashes BLOB NOT NULL)")
        self._sets: dict[int, frozenset[int]] = {}  # the oldest first out

    def close(self) -> None:
        self.conn.close()

    def _kept_set(self, index: int) -> frozenset[int]:
        cached = self._sets.get(index)
        if cached is not None:
            return cached
        blob = self.conn.execute("SELECT hashes FROM shingles WHERE idx = ?",
                                 (index,)).fetchone()[0]
        found = frozenset(struct.unpack(f"<{len(blob) // 8}Q", blob))
        self._remember(index, found)
        return found

    def _remember(self, index: int, hashes: frozenset[int]) -> None:
        self._sets[index] = hashes
        if len(self._sets) > _CACHED_SETS:
            del self._sets[next(iter(self._sets))]

    def add(self, index: int, text: str, context: str = "") -> tuple[int, str] | None:
        """None when ``text`` is kept (indexed under ``index``), else (the kept index it
        duplicates, ``exact`` | ``near``). ``context``: what else makes two texts different
        items however alike they read (ingest: the system prompt and the tools offered); only
        texts with the same context are compared."""
        conn = self.conn
        scope = hashlib.sha1(context.encode(errors="surrogatepass")).digest()
        digest = hashlib.sha1(scope + normalise(text).encode(errors="surrogatepass")).digest()
        key = int.from_bytes(digest[:8], "little", signed=True)
        within = int.from_bytes(scope[:8], "little")
        row = conn.execute("SELECT idx FROM exact WHERE key = ?", (key,)).fetchone()
        if row is not None:
            return row[0], "exact"
        hashes = frozenset(_hash64(t) for t in shingles(text))
        signature = _signature(list(hashes), self.coeffs)
        bands = [hash((within, b, *signature[b * _ROWS:(b + 1) * _ROWS]))
                 for b in range(_BANDS)]
        sizes: dict[int, int] = {}
        candidates: set[int] = set()
        for band, member in conn.execute(
                f"SELECT band, idx FROM bucket WHERE band IN ({','.join('?' * _BANDS)})", bands):
            sizes[band] = sizes.get(band, 0) + 1
            candidates.add(member)
        for candidate in sorted(candidates):
            if jaccard(hashes, self._kept_set(candidate)) >= self.threshold:
                return candidate, "near"
        conn.execute("INSERT INTO exact VALUES (?, ?)", (key, index))
        room = [(band, index) for band in dict.fromkeys(bands)
                if sizes.get(band, 0) < _BUCKET_CAP]
        if room:  # a text in no bucket is no one's candidate: its shingles are not kept
            conn.executemany("INSERT INTO bucket VALUES (?, ?)", room)
            conn.execute("INSERT INTO shingles VALUES (?, ?)",
                         (index, struct.pack(f"<{len(hashes)}Q", *sorted(hashes))))
            self._remember(index, hashes)
        return None


def dedup(texts: Iterable[str], threshold: float = 0.8, seed: int = 0,
          progress: Any = None) -> DedupResult:
    """Indices to keep (first of each group) and what each dropped index duplicates.
    ``progress``: told of every text done (``advance``)."""
    result = DedupResult()
    deduper = Deduper(threshold, seed)
    try:
        for index, text in enumerate(texts):
            if progress is not None:
                progress.advance()
            found = deduper.add(index, text)
            if found is None:
                result.keep.append(index)
            else:
                result.dropped[index] = found
    finally:
        deduper.close()
    return result
