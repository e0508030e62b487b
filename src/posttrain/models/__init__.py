"""Model specs -> Model objects.

Specs: ``openai:MODEL`` (honours ``OPENAI_BASE_URL`` / ``OPENAI_API_KEY``), ``hf:PATH_OR_REPO``
(also ``hf:FILE.gguf``, ``hf:FOLDER?gguf=FILE`` and ``hf:NAME`` of a pulled model, see
``posttrain.models.local``), ``anthropic:MODEL``, ``vllm:PATH``, or a name from a models file.
Query options after ``?`` (each provider takes its own, see :func:`options_of`; any other name, a
value of the wrong type or a name given twice is an error with a "did you mean"):
``openai:`` ``base_url=URL``, ``api_key_env=VAR``, ``client=sdk|lean``, ``concurrency=N``,
``cache_fingerprint=true|false``; ``anthropic:`` ``base_url``, ``api_key_env``, ``concurrency``;
``hf:`` ``gguf=FILE``, ``batch_size=N``, ``concurrency=N``; ``vllm:`` its engine options (see
``posttrain.models.vllm_model``), ``batch_size``, ``max_tokens``.

Keys: ``openai:`` reads ``OPENAI_API_KEY`` and ``OPENAI_BASE_URL``, ``anthropic:``
``ANTHROPIC_API_KEY`` and ``ANTHROPIC_BASE_URL`` (a models-file entry too, unless it names
``base_url`` or ``api_key_env``; a key that is empty or only spaces is unset). The key goes to
the provider's own API, to the server ``*_BASE_URL`` names, and to servers on this machine or
network; a ``base_url`` written in a spec or models file that names any other host gets no key
unless the spec or entry names it (``api_key_env``), so a third-party host never receives your
OpenAI key by accident.

Models file (``--models-file``, ``$POSTTRAIN_MODELS`` or ``./posttrain.models.yaml``)::

    models:
      mini:
        provider: openai              # openai | anthropic | hf | vllm
        model: gpt-4.1-mini
        base_url: https://api.openai.com/v1
        api_key_env: OPENAI_API_KEY   # the env var's *name*; keys are never stored
        price: {input: 0.40, cached_input: 0.10, output: 1.60}   # USD per million tokens
        max_concurrency: 16
        released: 2025-04-14          # optional, for shelf-life plots
        cache_fingerprint: true       # optional: compare system_fingerprint before cache hits
                                      # (default: only for servers on this machine or network)
      local:
        provider: hf
        model: ./checkpoints/sft
        batch_size: 8                 # hf: also gguf: FILE; vllm: its engine options

An entry takes ``provider``, ``model``, ``price``, ``released``, ``max_concurrency`` (not vllm:
it batches ``batch_size`` requests) and its provider's options (as in a spec's query, with
``max_concurrency`` for ``concurrency``); any other key is an error naming its line.

``price`` takes ``input``, ``output``, ``cached_input`` (prompt tokens read from the provider's
prompt cache) and ``cache_write`` (prompt tokens written to it; Anthropic: 1.25x input), all in
USD per million tokens; an unset cache rate bills those tokens at ``input``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from posttrain.errors import UserError
from posttrain.models.base import (
    FatalError,
    Model,
    ModelError,
    Price,
    RetryableError,
    price_from_dict,
)
from posttrain.models.pricing import default_price

__all__ = ["Model", "ModelError", "RetryableError", "FatalError", "Price", "ModelConfig",
           "resolve_model", "load_models_file", "model_config"]

def providers() -> list[str]:
    """Every provider name: posttrain's own and the plugins' (``posttrain.plugins``), in their
    registered ``order`` (posttrain's: openai, anthropic, hf, vllm)."""
    from posttrain import plugins

    return sorted(plugins.load_all("provider"),
                  key=lambda name: (plugins.meta("provider", name).get("order", 100), name))


def is_provider(name: str) -> bool:
    from posttrain import plugins

    return plugins.has("provider", name)


def provider_meta(provider: str) -> dict[str, Any]:
    """What a provider registered with: ``options`` (name -> kind of value, the query options
    ``openai:M?name=value`` and models-file keys it reads; ``max_concurrency`` in a models file
    for ``concurrency``), ``env`` ((key variable, base URL variable) it reads, or absent),
    ``hosted`` (the URL of the API its key is for), ``priced`` (list prices apply), ``local``
    (weights on this machine), ``order`` (its place in listings)."""
    from posttrain import plugins

    return plugins.meta("provider", provider)


#: models-file keys every provider takes besides its options
ENTRY_KEYS = ("provider", "model", "price", "released")
_KIND_TEXT = {"count": "a whole number of at least 1", "int": "a whole number",
              "number": "a number", "share": "a number above 0 and at most 1",
              "bool": "true or false", "text": "a non-empty string", "url": "an http(s) URL",
              "env": "the name of an environment variable", "client": "lean or sdk"}


def options_of(provider: str) -> dict[str, str]:
    """The options ``provider`` reads (name -> kind)."""
    options = provider_meta(provider).get("options", {})
    return options() if callable(options) else dict(options)


@dataclass
class ModelConfig:
    """One endpoint: what a spec or a models-file entry resolves to (no secrets inside)."""

    name: str
    provider: str
    model: str
    base_url: str | None = None
    api_key_env: str | None = None
    price: Price | None = None
    max_concurrency: int | None = None
    client: str = "lean"
    released: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    #: the key goes to ``base_url`` whatever its host: the user named the variable, or the
    #: base URL came from the provider's own ``*_BASE_URL`` variable (the SDKs' convention)
    key_for_base_url: bool = False

    def public(self) -> dict[str, Any]:
        """What may be written to the store and reports: never a key, only the env var's name."""
        return {"name": self.name, "provider": self.provider, "model": self.model,
                "base_url": self.base_url, "api_key_env": self.api_key_env,
                "price": None if self.price is None else self.price.as_dict(),
                "max_concurrency": self.max_concurrency, "client": self.client,
                "released": self.released}


def _models_file_path(explicit: str | Path | None) -> Path | None:
    if explicit:
        return Path(explicit)
    env = os.environ.get("POSTTRAIN_MODELS")
    if env:
        return Path(env)
    default = Path("posttrain.models.yaml")
    return default if default.exists() else None


def _price(value: Any, source: Path, where: str) -> Price | None:
    if value is not None and not isinstance(value, dict):
        raise UserError("must be {input, output, cached_input, cache_write} in USD per million "
                        "tokens", file=source, field=f"{where}.price")
    try:
        return price_from_dict(value)
    except ValueError as exc:
        raise UserError(str(exc), file=source, field=f"{where}.price") from None


def _flag(value: Any) -> bool | None:
    """A yes/no option from YAML (a bool) or a spec query (a string); None when unset."""
    if value is None or isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise UserError(f"expected true or false, got {value!r}", field="cache_fingerprint")


def check_url(value: Any) -> str:
    """``value`` as a base URL (http or https, a host, a port in range); ValueError saying
    what is wrong otherwise."""
    from urllib.parse import urlsplit

    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"must be an http(s) URL, got {value!r}")
    text = value.strip()
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https"):
        hint = f"; write http://{text}" if "://" not in text else ""
        raise ValueError(f"{text!r} is not an http(s) URL{hint}")
    if not parts.hostname:
        raise ValueError(f"{text!r} has no host")
    try:
        port = parts.port
    except ValueError:
        port = -1
    if port is not None and not 0 < port < 65536:
        raise ValueError(f"{text!r} has no valid port (1 to 65535)")
    return text


def _typed(kind: str, value: Any) -> Any:
    """A spec's query value (a string) or a models-file value as ``kind``; ValueError if not."""
    import math
    import re

    if kind == "url":
        return check_url(value)
    if kind == "bool":
        try:
            flag = _flag(value)
        except UserError:
            flag = None
        if flag is None:
            raise ValueError(f"must be {_KIND_TEXT[kind]}, got {value!r}")
        return flag
    if kind in ("count", "int"):
        number: Any = value
        if isinstance(value, str) and re.fullmatch(r"\s*[-+]?\d+\s*", value):
            number = int(value)
        if isinstance(number, bool) or not isinstance(number, int) or \
                (kind == "count" and number < 1):
            raise ValueError(f"must be {_KIND_TEXT[kind]}, got {value!r}")
        return number
    if kind in ("number", "share"):
        number = value
        if isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                number = None
        if isinstance(number, bool) or not isinstance(number, (int, float)) or \
                not math.isfinite(number) or (kind == "share" and not 0 < number <= 1):
            raise ValueError(f"must be {_KIND_TEXT[kind]}, got {value!r}")
        return number
    if kind == "client":
        if value not in ("lean", "sdk"):
            raise ValueError(f"must be `lean` or `sdk`, got {value!r}")
        return value
    if kind == "env":
        if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
            raise ValueError(f"must be {_KIND_TEXT[kind]} (the key itself is never written "
                             f"here), got {value!r}")
        return value
    if not isinstance(value, (str, int, float)) or isinstance(value, bool) or \
            not str(value).strip():
        raise ValueError(f"must be {_KIND_TEXT[kind]}, got {value!r}")
    return str(value)


def _unknown_option(provider: str, name: str, takes: Any) -> str:
    from posttrain.errors import did_you_mean

    hint = did_you_mean(name, takes)
    owners = [p + ":" for p in providers() if name in options_of(p)]
    whose = f"only {', '.join(owners)} takes it; " if owners and not hint else ""
    return f"unknown {provider} option {name!r}{hint} ({whose}{provider}: takes " \
        f"{', '.join(takes)})"


def _env_value(variable: str) -> str | None:
    """An environment variable's value; empty or only spaces is unset."""
    value = os.environ.get(variable)
    return value.strip() if value is not None and value.strip() else None


def _env_defaults(config: ModelConfig, *, where: str) -> None:
    """``openai``/``anthropic``: the key variable and base URL from the environment, where the
    spec or entry names none (as the providers' SDKs read them)."""
    env = provider_meta(config.provider).get("env")
    if env is None:
        return
    key_env, url_env = env
    if config.api_key_env:
        config.key_for_base_url = True  # the user chose which key goes to this endpoint
    else:
        config.api_key_env = key_env
    if config.base_url is None:
        url = _env_value(url_env)
        if url is not None:
            try:
                config.base_url = check_url(url)
            except ValueError as exc:
                raise UserError(f"{where}: {url_env}: {exc}", field="--model") from None
            config.key_for_base_url = True


def load_models_file(path: str | Path | None = None) -> dict[str, ModelConfig]:
    file = _models_file_path(path)
    if file is None:
        return {}
    from posttrain.loaders import yaml12

    file = file.resolve()  # errors name files by their absolute path, everywhere
    data, text = yaml12.load_file(file, what="models file")
    try:
        return _entries(data or {}, file)
    except UserError as exc:
        if exc.line is None and exc.field and exc.file == str(file):
            from posttrain.loaders.yaml12 import yaml_line

            exc.line = yaml_line(text, exc.field)
        raise


def _entries(data: Any, file: Path) -> dict[str, ModelConfig]:
    entries = data.get("models") if isinstance(data, dict) else None
    if not isinstance(entries, dict):
        raise UserError("expected a `models:` mapping of name -> endpoint", file=file,
                        field="models")
    configs: dict[str, ModelConfig] = {}
    for name, entry in entries.items():
        where = f"models.{name}"
        if not isinstance(entry, dict):
            raise UserError("must be a mapping", file=file, field=where)
        provider = entry.get("provider", "openai")
        if not isinstance(provider, str) or not is_provider(provider):
            from posttrain.errors import did_you_mean

            raise UserError(f"unknown provider {provider!r}{did_you_mean(str(provider), providers())}"
                            f" (one of {', '.join(providers())})",
                            file=file, field=f"{where}.provider")
        if "api_key" in entry:
            raise UserError("put the key in an environment variable and name it with "
                            "`api_key_env`; keys are not read from files", file=file,
                            field=f"{where}.api_key")
        takes = {("max_concurrency" if option == "concurrency" else option): kind
                 for option, kind in options_of(provider).items()}
        options: dict[str, Any] = {}
        for key, value in entry.items():
            if key in ENTRY_KEYS:
                continue
            if key not in takes:
                raise UserError(_unknown_option(provider, str(key), [*ENTRY_KEYS, *takes]),
                                file=file, field=f"{where}.{key}")
            if value is None:
                continue
            try:
                options[key] = _typed(takes[key], value)
            except ValueError as exc:
                raise UserError(str(exc), file=file, field=f"{where}.{key}") from None
        model = entry.get("model", name)
        if not isinstance(model, (str, int, float)) or isinstance(model, bool) or \
                not str(model).strip():
            raise UserError("must be the model's name", file=file, field=f"{where}.model")
        config = ModelConfig(
            name=str(name), provider=provider, model=str(model),
            base_url=options.pop("base_url", None), api_key_env=options.pop("api_key_env", None),
            price=_price(entry.get("price"), file, where),
            max_concurrency=options.pop("max_concurrency", None),
            client=options.pop("client", "lean"),
            released=str(entry["released"]) if entry.get("released") else None, options=options)
        _env_defaults(config, where=f"{file}: {where}")
        configs[str(name)] = config
    return configs


def model_config(spec: str, models_file: str | Path | None = None) -> ModelConfig:
    """Parse a spec (or look up a models-file name) into a ModelConfig."""
    named = load_models_file(models_file)
    if spec in named:
        return named[spec]
    base, _, query = spec.partition("?")
    provider, sep, model = base.partition(":")
    if not sep or not model or not is_provider(provider):
        known = f"; models-file names: {', '.join(named)}" if named else ""
        raise UserError(f"unknown model {spec!r}: use openai:MODEL, anthropic:MODEL, hf:PATH, "
                        f"vllm:PATH or a models-file name{known}", field="--model")
    takes = options_of(provider)
    options: dict[str, Any] = {}
    for name, value in parse_qsl(query, keep_blank_values=True):
        if name not in takes:
            raise UserError(f"{spec}: {_unknown_option(provider, name, takes)}",
                            field="--model")
        if name in options:
            raise UserError(f"{spec}: option {name!r} is given twice", field="--model")
        try:
            options[name] = _typed(takes[name], value)
        except ValueError as exc:
            raise UserError(f"{spec}: {name}: {exc}", field="--model") from None
    config = ModelConfig(name=spec, provider=provider, model=model,
                         base_url=options.pop("base_url", None),
                         api_key_env=options.pop("api_key_env", None),
                         client=options.pop("client", "lean"),
                         max_concurrency=options.pop("concurrency", None), options=options)
    _env_defaults(config, where=spec)
    config.price = default_price(model) if provider_meta(provider).get("priced") else None
    return config


def api_key_for(config: ModelConfig) -> tuple[str | None, str | None]:
    """(the key to send, or None; the variable whose key was withheld, or None).

    A key goes to the provider's own API, to a base URL the user paired with it (the
    ``*_BASE_URL`` variable, or ``api_key_env`` named in the spec or entry) and to servers on
    this machine or network; never, unasked, to another host named by a ``base_url``.
    """
    from urllib.parse import urlsplit

    from posttrain.models.identity import is_self_hosted

    if not config.api_key_env:
        return None, None
    key = _env_value(config.api_key_env)
    if key is None or config.key_for_base_url or config.base_url is None:
        return key, None
    hosted = provider_meta(config.provider).get("hosted")
    host = (urlsplit(config.base_url).hostname or "").lower()
    if (hosted and host == urlsplit(hosted).hostname) or is_self_hosted(config.base_url):
        return key, None
    return None, config.api_key_env


def build_model(config: ModelConfig, *, concurrency: int | None = None,
                timeout_s: float = 120.0) -> Any:
    """A ready Model for ``config``: its provider's registered factory, called as
    ``factory(config, api_key=..., withheld=..., concurrency=..., timeout_s=...)`` (``api_key``:
    the key to send or None; ``withheld``: the variable whose key was kept from a third-party
    host; ``concurrency``: the caller's limit, else the spec's, else None)."""
    from posttrain import plugins

    api_key, withheld = api_key_for(config)
    try:
        factory = plugins.get("provider", config.provider, field_name="--model")
    except ImportError as exc:
        raise UserError(f"{config.provider}: models need a package that is not installed "
                        f"({exc})", field="--model") from None
    return factory(config, api_key=api_key, withheld=withheld,
                   concurrency=concurrency or config.max_concurrency, timeout_s=timeout_s)


def resolve_model(spec: str, models_file: str | Path | None = None, *,
                  concurrency: int | None = None, timeout_s: float = 120.0) -> Any:
    """A ready Model for a spec string (see the module docstring)."""
    return build_model(model_config(spec, models_file), concurrency=concurrency,
                       timeout_s=timeout_s)
