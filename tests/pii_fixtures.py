"""The Presidio analyzer, built once per test session (spaCy's model takes seconds to load)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def presidio_engine() -> str:
    """Skip without the [ingest] extra; otherwise build the analyzer once for the session."""
    for module in ("presidio_analyzer", "presidio_anonymizer", "spacy"):
        pytest.importorskip(module)
    from posttrain.usage.redact import detector, preload

    detector.cache_clear()
    if detector().engine != "presidio":
        pytest.skip(f"no spaCy English model: {detector().reason}")
    preload()
    return detector().model or ""
