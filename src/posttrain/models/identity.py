"""Which model answers behind a name: the identity the response cache checks before it serves.

A name and a URL do not pin the weights behind them: ``train`` → serve the new checkpoint under
the old name → eval again must not get the old model's answers from the cache. So every cache
entry records what the endpoint *reported* when it answered, and a hit is served only when that
agrees with what the endpoint reports now:

- ``probe``: a digest of the endpoint's own entry in ``GET {base_url}/models`` (OpenAI-compatible
  servers) or ``GET /v1/models/{model}`` (Anthropic, which resolves an alias to its snapshot).
  It costs no tokens and is taken once per process, before the first cache lookup. vLLM reports
  the served folder (``root``), Ollama the model's modification time (``created``), llama.cpp
  the model's size and shape (``meta``); on a server on this machine, a path the entry names is
  read as local weights (file sizes, times and sampled bytes), so retraining into the same folder
  is a new identity. Fields stamped at listing time (vLLM's and llama.cpp's ``created``,
  vLLM's ``permission`` ids) are left out: a ``created`` is a listing stamp when it equals the
  server's own clock (the ``Date`` header of the same response) within
  :data:`LISTING_STAMP_TOLERANCE_S`; any other ``created`` (Ollama's modification time, however
  recent) is the model's and counts.
- ``model`` and ``fingerprint``: the response's ``model`` (the served id: OpenAI's dated
  snapshot behind an alias, a proxy's upstream model) and ``system_fingerprint``. The
  fingerprint is compared only for servers you run (loopback, private and single-label hosts, or
  ``cache_fingerprint: true`` in the models file): public APIs rotate several fingerprints across
  their replicas for one model, so comparing them would only re-buy answers there.

Whatever either side does not know is not compared: an endpoint that reports nothing falls back
to its name and URL, bounded by the cache's expiry.

What only a live answer shows (``model``, ``fingerprint``) is unknown when a run starts from the
cache. On an endpoint whose fingerprints are compared (a server you run) the first cache hit is
held back until one live request, the *canary* (that hit's own request), has said what the
endpoint serves now; entries another model wrote are then not served. Elsewhere hits are served
at once, and the executor answers again any hit that a later live answer shows stale. Local weights (``hf:``, ``vllm:``) need none
of this: their cache id holds a digest of the weight files (``#`` marks such exact ids).
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import ipaddress
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

#: fields of a ``/models`` entry that change on every listing (vLLM permission ids and times)
VOLATILE_FIELDS = frozenset({"permission"})
#: a ``created`` this close (seconds) to the server's clock when it listed the models was stamped
#: by the listing itself (vLLM, llama.cpp), not by the model (Ollama: its modification time).
#: Whole seconds on both sides, and a server may cache its ``Date`` header for up to a second.
LISTING_STAMP_TOLERANCE_S = 2.0
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")
_DIR_SUFFIXES = (".safetensors", ".bin", ".json", ".jinja")  # unchanged: old ids stay valid
_SAMPLES, _SAMPLE_BYTES = 8, 16384


def _digest(value: Any, size: int = 8) -> str:
    return hashlib.blake2b(json.dumps(value, sort_keys=True, default=str).encode(),
                           digest_size=size).hexdigest()


def _sampled_bytes(path: Path, size: int) -> str:
    """A digest of a few blocks spread over a weight file: catches new weights even when a
    copy kept the old file's size and time (``cp -p``, ``rsync -a``)."""
    hasher = hashlib.blake2b(digest_size=8)
    try:
        with path.open("rb") as handle:
            for index in range(_SAMPLES):
                handle.seek(max(0, (size - _SAMPLE_BYTES) * index // max(1, _SAMPLES - 1)))
                hasher.update(handle.read(_SAMPLE_BYTES))
    except OSError:
        return "unreadable"
    return hasher.hexdigest()


def hub_revision(repo_id: str) -> str | None:
    """The commit the local Hugging Face cache resolves ``repo_id`` (``main``) to, or None."""
    if repo_id.count("/") != 1 or repo_id.startswith(("/", ".", "~")):
        return None
    cache = os.environ.get("HF_HUB_CACHE") or os.path.join(
        os.environ.get("HF_HOME") or os.path.join(Path.home(), ".cache", "huggingface"), "hub")
    ref = Path(cache) / ("models--" + repo_id.replace("/", "--")) / "refs" / "main"
    try:
        return ref.read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def local_weights_identity(path: str) -> str:
    """``path`` plus a digest of its weights: a retrained folder is a new model for the cache.

    A folder: names, modification times and sizes of its weight, config and template files (the
    same digest as earlier versions, so stores written by them keep their cache and resume). A
    single file (a GGUF): its size, time and sampled bytes. A Hugging Face repo id: the commit
    the local hub cache holds. Anything else: the path alone (no ``#``, not an exact identity).
    """
    target = Path(path).expanduser()
    if target.is_dir():
        files = [p for p in target.iterdir() if p.is_file()]
        stamps: list[Any] = sorted((p.name, p.stat().st_mtime_ns, p.stat().st_size)
                                   for p in files if p.suffix in _DIR_SUFFIXES)
        # weights earlier versions did not look at (GGUF, torch pickles): only when present,
        # so the digest of an ordinary checkpoint folder is unchanged
        others = sorted((p.name, p.stat().st_mtime_ns, p.stat().st_size,
                         _sampled_bytes(p, p.stat().st_size))
                        for p in files if p.suffix in _WEIGHT_SUFFIXES
                        and p.suffix not in _DIR_SUFFIXES)
        return f"{target.resolve()}#{_digest(stamps + others if others else stamps)}"
    if target.is_file():
        stat = target.stat()
        sampled = _sampled_bytes(target, stat.st_size) if target.suffix in _WEIGHT_SUFFIXES else ""
        return f"{target.resolve()}#{_digest([stat.st_mtime_ns, stat.st_size, sampled])}"
    revision = hub_revision(path)
    if revision:
        return f"{path}#{revision[:16]}"
    return path


def is_exact(cache_id: str) -> bool:
    """Whether a cache id pins the weights themselves (local files or a hub commit)."""
    return "#" in cache_id


def is_self_hosted(base_url: str | None) -> bool:
    """A server you run: loopback, private or link-local address, ``localhost``, or a host name
    without a dot (a machine on your network)."""
    host = (urlparse(base_url or "").hostname or "").lower()
    if not host:
        return False
    if host == "localhost" or host.endswith(".localhost") or "." not in host:
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_private or address.is_link_local


def _path_weights(value: str) -> str | None:
    """A digest of the weights at ``value`` when it names a path on this machine."""
    if "://" in value or len(value) > 4096 or not value.strip():
        return None
    try:
        target = Path(value).expanduser()
        if not target.exists():
            return None
    except OSError:
        return None
    identity = local_weights_identity(value)
    return identity.rsplit("#", 1)[1] if "#" in identity else None


def server_clock(date_header: str | None) -> float | None:
    """The server's time from an HTTP ``Date`` header (None when absent or unreadable)."""
    if not date_header:
        return None
    try:
        return email.utils.parsedate_to_datetime(date_header).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def listing_identity(body: Any, model: str, *, local: bool,
                     server_now: float | None = None) -> str | None:
    """A digest of ``model``'s entry in a ``/models`` listing (None when it is not listed);
    ``server_now`` is the server's clock when it listed (:func:`server_clock` of the response's
    ``Date`` header)."""
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list):
        return None
    entry = next((e for e in data if isinstance(e, dict) and e.get("id") == model), None)
    return None if entry is None else entry_identity(entry, local=local, server_now=server_now)


def is_listing_stamp(created: Any, server_now: float | None) -> bool:
    """Whether a ``/models`` entry's ``created`` is the time of the listing itself.

    vLLM and llama.cpp stamp every listing with the server's current time; Ollama reports the
    model's modification time, which may be a minute old when a freshly created model is
    evaluated. Only a ``created`` equal to the server's own clock at that response (its ``Date``
    header; this machine's clock when the server sends none) within
    :data:`LISTING_STAMP_TOLERANCE_S` is a stamp, so skew between the two machines' clocks does
    not matter, and a model modified a few seconds ago still has an identity of its own.
    """
    if not isinstance(created, (int, float)) or isinstance(created, bool):
        return False
    now = time.time() if server_now is None else server_now
    return abs(created - now) <= LISTING_STAMP_TOLERANCE_S


def entry_identity(entry: dict[str, Any], *, local: bool,
                   server_now: float | None = None) -> str:
    """A digest of one model entry, without the fields a server stamps at listing time."""
    kept = {k: v for k, v in entry.items() if k not in VOLATILE_FIELDS}
    if is_listing_stamp(kept.get("created"), server_now):
        kept.pop("created")
    if local:
        for key, value in entry.items():
            if isinstance(value, str):
                weights = _path_weights(value)
                if weights:
                    kept[f"{key}#weights"] = weights
    return _digest(kept)


def identity_matches(stored: dict[str, Any] | None, current: dict[str, Any] | None) -> bool:
    """Whether a cache entry's recorded identity agrees with the endpoint's current one.

    Only what both sides know is compared (``probe``, ``model``, ``fingerprint``); an entry
    written before identities were recorded has none and matches, within the expiry.
    """
    if not stored or not current:
        return True
    for key in ("probe", "model", "fingerprint"):
        old, new = stored.get(key), current.get(key)
        if old is not None and new is not None and old != new:
            return False
    return True


class EndpointIdentity:
    """What one endpoint reports about the model behind its name, learned as a run goes.

    ``probe`` is an async callable returning the probe digest (or None); it runs once, before
    the first cache lookup. Each live answer updates the served model id and fingerprint.

    ``canary`` (default: ``compare_fingerprint``, i.e. a server you run): before the first cache
    hit whose entry recorded a fingerprint, or a served model other than ``requested`` (an echo
    of the name asked for tells nothing), one live request must say what the endpoint serves
    now (:meth:`confirm`). Without a live answer, a fully cached run could not tell that another
    model now answers with another fingerprint.
    """

    def __init__(self, name: str, probe: Callable[[], Awaitable[str | None]] | None = None, *,
                 compare_fingerprint: bool = False, canary: bool | None = None,
                 requested: str | None = None) -> None:
        self.name = name
        self.compare_fingerprint = compare_fingerprint
        self.canary = compare_fingerprint if canary is None else canary
        self.requested = requested
        self._probe = probe
        self._probed = probe is None
        self._lock: asyncio.Lock | None = None
        self._canary_lock: asyncio.Lock | None = None
        self.probe: str | None = None
        self.served_model: str | None = None
        self.fingerprint: str | None = None
        #: a live answer in this process has said what the endpoint serves
        self.confirmed = False
        #: what the canary showed: ``same``, ``changed`` or ``failed`` (None: none was sent)
        self.canary_outcome: str | None = None
        self._served_from_cache: dict[tuple[str | None, str | None], int] = {}

    async def ensure(self) -> None:
        """Probe the endpoint once (concurrent callers wait for the same probe)."""
        if self._probed:
            return
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._probed:
                return
            try:
                self.probe = await self._probe()  # type: ignore[misc]
            except Exception:  # noqa: BLE001 - a failed probe means "reports nothing"
                self.probe = None
            self._probed = True

    def _served(self, model: str | None, fingerprint: str | None) -> dict[str, str]:
        out: dict[str, str] = {}
        if self.probe is not None:
            out["probe"] = self.probe
        if model:
            out["model"] = model
        if fingerprint and self.compare_fingerprint:
            out["fingerprint"] = fingerprint
        return out

    def current(self) -> dict[str, str]:
        """The identity a cache entry must agree with now."""
        return self._served(self.served_model, self.fingerprint)

    def of_answer(self, served_model: str | None, fingerprint: str | None) -> dict[str, str]:
        """The identity to record with a live answer's cache entry (and the one a cached
        answer's ``served_model`` and ``fingerprint`` stand for)."""
        return self._served(served_model, fingerprint)

    def agrees(self, served_model: str | None, fingerprint: str | None) -> bool:
        """Whether an answer that reported these still agrees with what the endpoint serves."""
        return identity_matches(self.of_answer(served_model, fingerprint), self.current())

    def canary_due(self, served_model: str | None, fingerprint: str | None) -> bool:
        """Whether a hit on an entry that recorded these must wait for a canary."""
        if not self.canary or self.confirmed or self.canary_outcome == "failed":
            return False
        recorded = self.of_answer(served_model, fingerprint)
        return "fingerprint" in recorded or recorded.get("model") not in (None, self.requested)

    async def confirm(self, send: Callable[[], Awaitable[Any]], served_model: str | None,
                      fingerprint: str | None) -> Any:
        """Send the canary (``send``: the live request of the hit being held, which reports its
        answer through :meth:`observe`) unless a live answer has already said what the
        endpoint serves. Concurrent hits wait for the same canary. Returns the canary's answer
        to the hit that sent it, None to the others. A canary that fails for good is reported
        and the hits are served as if none had been sent."""
        if self._canary_lock is None:
            self._canary_lock = asyncio.Lock()
        async with self._canary_lock:
            if self.confirmed or self.canary_outcome == "failed":
                return None
            try:
                answer = await send()
            except Exception as exc:  # noqa: BLE001 - RetriesExhausted, ModelError
                self.canary_outcome = "failed"
                print(f"posttrain: warning: {self.name}: the live request that checks what the "
                      f"endpoint serves before its cached answers failed ({exc}); serving "
                      "them unchecked", file=sys.stderr)
                return None
            self.confirmed = True  # even when the answer reported nothing to compare
            self.canary_outcome = "same" if self.agrees(served_model, fingerprint) else "changed"
            return answer

    def served_from_cache(self, served_model: str | None, fingerprint: str | None) -> None:
        """Note a cache hit (so a later live answer from another model can be reported)."""
        key = (served_model, fingerprint if self.compare_fingerprint else None)
        self._served_from_cache[key] = self._served_from_cache.get(key, 0) + 1

    def stale_served(self) -> int:
        """How many hits served in this process came from entries another model wrote, as
        far as the live answers seen so far tell."""
        return sum(count for (model, print_), count in self._served_from_cache.items()
                   if not self.agrees(model, print_))

    def describe(self) -> str:
        """What the live answers report now (``model M, fingerprint F``)."""
        return ", ".join(f"{k} {v}" for k, v in self.current().items() if k != "probe")

    def observe(self, served_model: str | None, fingerprint: str | None) -> None:
        """Record what a live answer reported."""
        self.confirmed = True
        if served_model:
            self.served_model = served_model
        if fingerprint:
            self.fingerprint = fingerprint
