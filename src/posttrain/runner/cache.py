"""The response cache's policy: how long an answer may be served again, and to whom.

An entry is served when all of these hold (else the request is sent and the entry replaced):

- same request: the key hashes the model's cache id (provider, base URL, name, and a digest of
  the weights for local models), the request body, the epoch and the scope;
- same model: the identity the endpoint reported when it answered agrees with what it reports
  now (:mod:`posttrain.models.identity`). On a server you run, whose fingerprints are compared,
  the first hit waits for one live request (the canary: that hit's own request) to say what it
  serves now; a hit that a later live answer shows stale is answered again by the executor;
- young enough: written less than the expiry ago. Default: 7 days for endpoints, whose weights
  posttrain cannot see (a hosted alias moving to a new snapshot, a server reporting nothing
  about what it serves), never for local weights, whose digest is in the key already.

Scopes, as in Inspect AI's cache policy: ``global`` (default) shares an answer between every eval
and run that sends the same request to the same model; ``eval`` keeps each eval's answers to
itself; ``run`` lets only a resumed run replay its own answers, so each new run draws fresh ones.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from posttrain.models.identity import is_exact
from posttrain.types import Completion

CacheScope = Literal["global", "eval", "run"]
SCOPES: tuple[str, ...] = ("global", "eval", "run")
#: the expiry of answers from endpoints (seconds): a week of re-runs stay free, and a hosted
#: model changed behind its name cannot hide behind the cache for longer than that
DEFAULT_EXPIRY_S = 7 * 86400.0
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$", re.I)


def parse_duration(text: str) -> float | None:
    """Seconds in ``30s``, ``15m``, ``12h``, ``7d``, ``2w``; None for ``never``. ValueError else."""
    if text.strip().lower() in ("never", "none", "inf"):
        return None
    match = _DURATION.match(text)
    if not match:
        raise ValueError(f"not a duration: {text!r} (use 30s, 15m, 12h, 7d, 2w or never)")
    return float(match.group(1)) * _UNITS[match.group(2).lower()]


def format_duration(seconds: float | None) -> str:
    """``7d``, ``36h``, ``90s``: the largest whole unit; ``never`` for None."""
    if seconds is None:
        return "never"
    for unit in ("d", "h", "m"):
        if seconds >= _UNITS[unit] and seconds % _UNITS[unit] == 0:
            return f"{int(seconds // _UNITS[unit])}{unit}"
    return f"{seconds:g}s"


def format_age(seconds: float) -> str:
    """A rounded age for listings: ``45s``, ``12m``, ``5h``, ``3d``."""
    for unit in ("d", "h", "m"):
        if seconds >= _UNITS[unit]:
            return f"{seconds / _UNITS[unit]:.0f}{unit}"
    return f"{max(0.0, seconds):.0f}s"


@dataclass(frozen=True)
class CachePolicy:
    """Expiry (seconds; None: never; ``"auto"``: the default above) and scope of the cache."""

    expiry_s: float | None | Literal["auto"] = "auto"
    scope: CacheScope = "global"

    def __post_init__(self) -> None:
        if self.scope not in SCOPES:
            raise ValueError(f"cache scope must be one of {', '.join(SCOPES)}")

    def max_age_s(self, cache_id: str) -> float | None:
        """How old an entry of this model may be to be served."""
        if self.expiry_s != "auto":
            return self.expiry_s  # type: ignore[return-value]
        return None if is_exact(cache_id) else DEFAULT_EXPIRY_S

    def scope_key(self, eval_name: str, run_id: str) -> str | None:
        """What the scope adds to the key (None for ``global``: keys of earlier versions)."""
        if self.scope == "eval":
            return f"eval:{eval_name}"
        if self.scope == "run":
            return f"run:{run_id}"
        return None


async def cache_lookup(store: Any, model: Any, key: str, policy: CachePolicy, *,
                       canary: Callable[[], Awaitable[Completion]] | None = None
                       ) -> Completion | None:
    """The cached answer for ``key`` if the policy lets it be served to ``model`` now.

    ``canary`` is the live call of this same request (it reports its answer through
    :func:`observe_answer`). When the model's endpoint wants a canary (a server you run, not
    keyed on its weights) and no live answer has said yet what it serves, the hit waits for
    one: the first such hit sends its own request, the others wait for that answer. Returns a
    hit (``cached`` True); the canary's live answer (``cached`` False) when this request was the
    canary and showed its entry stale; or None: send the request.
    """
    identity = getattr(model, "identity", None)
    if identity is not None:
        await identity.ensure()
    record = store.cache_get(key, max_age_s=policy.max_age_s(model.cache_id),
                             identity=identity.current() if identity is not None else None)
    if record is None:
        return None
    completion = Completion.from_record(record)
    completion.cached = True
    if identity is None:
        return completion
    served, fingerprint = completion.served_model, completion.fingerprint
    if (canary is not None and not is_exact(model.cache_id)
            and identity.canary_due(served, fingerprint)):
        live = await identity.confirm(canary, served, fingerprint)
        if not identity.agrees(served, fingerprint):
            return live  # None for hits that waited for another request's canary
    identity.served_from_cache(served, fingerprint)
    return completion


def served_stale(model: Any, completions: Iterable[Completion]) -> bool:
    """Whether any of these cache hits came from an entry another model wrote, as far as the
    live answers seen since tell (the executor then answers that sample again)."""
    identity = getattr(model, "identity", None)
    return identity is not None and any(
        not identity.agrees(c.served_model, c.fingerprint) for c in completions)


def observe_answer(model: Any, completion: Completion) -> None:
    """Learn from a live answer what the endpoint serves now."""
    identity = getattr(model, "identity", None)
    if identity is not None:
        identity.observe(completion.served_model, completion.fingerprint)


def entry_meta(model: Any, completion: Completion) -> dict[str, str | None]:
    """What to store beside a live answer's cache entry: ``model`` (the cache id) and
    ``identity`` (JSON of what the endpoint reported), for ``cache_put`` / ``cache_meta``."""
    identity = getattr(model, "identity", None)
    recorded = (identity.of_answer(completion.served_model, completion.fingerprint)
                if identity is not None else {})
    return {"model": model.cache_id,
            "identity": orjson.dumps(recorded, option=orjson.OPT_SORT_KEYS).decode()
            if recorded else None}
