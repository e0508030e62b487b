"""Exact and near-duplicate removal: a normalised-text hash, then MinHash over word shingles.

Near duplicates are found with MinHash (64 hashes) and LSH banding (16 bands of 4), and each
candidate pair is confirmed with the exact Jaccard similarity of the shingle sets, so the
threshold means what it says. A bucket indexes at most ``_BUCKET_CAP`` texts, so the work per
text is bounded and the whole pass is linear in the number of texts. Texts are kept in the order given: put preferred rows first.
"""

from __future__ import annotations

import hashlib
import re
import struct
import unicodedata
from dataclasses import dataclass, field
from typing import Any

_NUM_HASHES = 64
_BANDS = 16
_ROWS = _NUM_HASHES // _BANDS
_MERSENNE = (1 << 61) - 1
_BAND = struct.Struct(f"<B{_ROWS}Q")  # a band's number and its hashes (each below 2**61)
#: kept texts indexed per LSH bucket. Logs written from one template (same words, another
#: number or name) fall into the same buckets without being near duplicates; unbounded, every
#: new text was checked against all of them, so dedup grew with n^2 (5,000 templated lines
#: 3.4 s, 20,000 37.7 s). With the cap, each text is checked against at most
#: _BANDS x _BUCKET_CAP earlier ones. A true near duplicate (Jaccard >= 0.8) shares ~6.6 of the
#: 16 bands with its original on average, so it is still found unless every band it shares
#: is already full.
_BUCKET_CAP = 32


def normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).lower()
    text = re.sub(r"[^\w\s]", " ", text)
    return " ".join(text.split())


def shingles(text: str, size: int = 3) -> set[str]:
    words = normalise(text).split()
    if len(words) < size:
        return {" ".join(words)} if words else set()
    return {" ".join(words[i:i + size]) for i in range(len(words) - size + 1)}


def jaccard(a: set[str], b: set[str]) -> float:
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


def _hash64(token: str) -> int:
    return int.from_bytes(hashlib.blake2b(token.encode(), digest_size=8).digest(), "little")


def _signature(tokens: set[str], coeffs: list[tuple[int, int]]) -> tuple[int, ...]:
    if not tokens:
        return tuple([0] * _NUM_HASHES)
    hashes = [_hash64(t) for t in tokens]
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


def dedup(texts: list[str], threshold: float = 0.8, seed: int = 0,
          progress: Any = None) -> DedupResult:
    """Indices to keep (first of each group) and what each dropped index duplicates.
    ``progress``: told of every text done (``advance``)."""
    import random

    rng = random.Random(seed)
    coeffs = [(rng.randrange(1, _MERSENNE), rng.randrange(0, _MERSENNE))
              for _ in range(_NUM_HASHES)]
    result = DedupResult()
    exact: dict[str, int] = {}
    # an LSH bucket: the band's number and its 4 hashes packed into 33 bytes (a tuple of them
    # is ~270 bytes, and every kept text opens ~16 buckets); its one text as an int, a list
    # from the second on
    buckets: dict[bytes, int | list[int]] = {}
    kept_shingles: dict[int, set[str]] = {}
    for index, text in enumerate(texts):
        if progress is not None:
            progress.advance()
        key = hashlib.sha1(normalise(text).encode()).hexdigest()
        if key in exact:
            result.dropped[index] = (exact[key], "exact")
            continue
        tokens = shingles(text)
        signature = _signature(tokens, coeffs)
        bands = [_BAND.pack(b, *signature[b * _ROWS:(b + 1) * _ROWS]) for b in range(_BANDS)]
        match = None
        candidates: set[int] = set()
        for band in bands:
            members = buckets.get(band)
            if isinstance(members, int):
                candidates.add(members)
            elif members is not None:
                candidates.update(members)
        for candidate in sorted(candidates):
            if jaccard(tokens, kept_shingles[candidate]) >= threshold:
                match = candidate
                break
        if match is not None:
            result.dropped[index] = (match, "near")
            continue
        exact[key] = index
        indexed = False
        for band in bands:
            bucket = buckets.get(band)
            if bucket is None:
                buckets[band] = index
            elif isinstance(bucket, int):
                buckets[band] = [bucket, index]
            elif len(bucket) < _BUCKET_CAP:
                bucket.append(index)
            else:
                continue
            indexed = True
        if indexed:  # a text in no bucket is no one's candidate: its shingles are not kept
            kept_shingles[index] = tokens
        result.keep.append(index)
    return result
