"""``suite:NAME?...&max_tokens=N``: a suite run with a shorter answer budget (small models on CPUs)."""

from __future__ import annotations

from pathlib import Path

import pytest

from posttrain.errors import UserError
from posttrain.eval import load_eval
from posttrain.suites import suite_names
from posttrain.suites.cache import suite_eval_path


def test_max_tokens_replaces_the_suites_own(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POSTTRAIN_CACHE", str(tmp_path))
    for name in suite_names():
        plain = load_eval(suite_eval_path(f"suite:{name}?n=3"))
        short = load_eval(suite_eval_path(f"suite:{name}?n=3&max_tokens=77"))
        a, b = plain.request_for(plain.items[0]), short.request_for(short.items[0])
        assert b.max_tokens == 77 and a.max_tokens != 77, name
        # nothing else changes: same items, messages, tools, response format and graders
        assert [i.data for i in plain.items] == [i.data for i in short.items]
        assert (a.messages, a.tools, a.response_format) == (b.messages, b.tools,
                                                            b.response_format), name
        assert [g.spec() for g in plain.graders] == [g.spec() for g in short.graders]
        assert {k: v for k, v in plain.sampling.items() if k != "max_tokens"} == \
            {k: v for k, v in short.sampling.items() if k != "max_tokens"}


@pytest.mark.parametrize("query", ["max_tokens=0", "max_tokens=x", "max_token=5"])
def test_bad_max_tokens_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                   query: str) -> None:
    monkeypatch.setenv("POSTTRAIN_CACHE", str(tmp_path))
    with pytest.raises(UserError):
        suite_eval_path(f"suite:context_only?n=2&{query}")
