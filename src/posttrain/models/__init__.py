"""Model specs -> Model objects.

Specs: ``openai:MODEL`` (honours ``OPENAI_BASE_URL`` / ``OPENAI_API_KEY``), ``hf:PATH_OR_REPO``
(also ``hf:FILE.gguf``, ``hf:FOLDER?gguf=FILE`` and ``hf:NAME`` of a pulled model, see
``posttrain.models.local``), ``anthropic:MODEL``, ``vllm:PATH``, or a name from a models file.
Query options after ``?``: ``client=sdk|lean``, ``concurrency=N``, ``base_url=URL``, ``gguf=FILE``.

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

PROVIDERS = ("openai", "anthropic", "hf", "vllm")


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


def load_models_file(path: str | Path | None = None) -> dict[str, ModelConfig]:
    file = _models_file_path(path)
    if file is None:
        return {}
    from posttrain.data import yaml12

    data = yaml12.load_file(file, what="models file")[0] or {}
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
        if provider not in PROVIDERS:
            raise UserError(f"unknown provider {provider!r} (one of {', '.join(PROVIDERS)})",
                            file=file, field=f"{where}.provider")
        if "api_key" in entry:
            raise UserError("put the key in an environment variable and name it with "
                            "`api_key_env`; keys are not read from files", file=file,
                            field=f"{where}.api_key")
        concurrency = entry.get("max_concurrency")
        if concurrency is not None and (not isinstance(concurrency, int) or concurrency < 1):
            raise UserError("must be a positive integer", file=file,
                            field=f"{where}.max_concurrency")
        client = entry.get("client", "lean")
        if client not in ("lean", "sdk"):
            raise UserError("must be `lean` or `sdk`", file=file, field=f"{where}.client")
        configs[str(name)] = ModelConfig(
            name=str(name), provider=provider, model=str(entry.get("model", name)),
            base_url=entry.get("base_url"), api_key_env=entry.get("api_key_env"),
            price=_price(entry.get("price"), file, where), max_concurrency=concurrency,
            client=client, released=str(entry["released"]) if entry.get("released") else None,
            options={k: v for k, v in entry.items() if k not in {
                "provider", "model", "base_url", "api_key_env", "price", "max_concurrency",
                "client", "released"}},
        )
    return configs


def model_config(spec: str, models_file: str | Path | None = None) -> ModelConfig:
    """Parse a spec (or look up a models-file name) into a ModelConfig."""
    named = load_models_file(models_file)
    if spec in named:
        return named[spec]
    base, _, query = spec.partition("?")
    options = dict(parse_qsl(query))
    provider, sep, model = base.partition(":")
    if not sep or provider not in PROVIDERS or not model:
        known = f"; models-file names: {', '.join(named)}" if named else ""
        raise UserError(f"unknown model {spec!r}: use openai:MODEL, anthropic:MODEL, hf:PATH, "
                        f"vllm:PATH or a models-file name{known}", field="--model")
    client = options.pop("client", "lean")
    if client not in ("lean", "sdk"):
        raise UserError("client must be lean or sdk", field="--model")
    concurrency = options.pop("concurrency", None)
    config = ModelConfig(name=spec, provider=provider, model=model,
                         base_url=options.pop("base_url", None), client=client,
                         max_concurrency=int(concurrency) if concurrency else None,
                         options=options)
    if provider == "openai":
        config.base_url = config.base_url or os.environ.get("OPENAI_BASE_URL")
        config.api_key_env = "OPENAI_API_KEY"
    elif provider == "anthropic":
        config.base_url = config.base_url or os.environ.get("ANTHROPIC_BASE_URL")
        config.api_key_env = "ANTHROPIC_API_KEY"
    config.price = default_price(model) if provider in ("openai", "anthropic") else None
    return config


def build_model(config: ModelConfig, *, concurrency: int | None = None,
                timeout_s: float = 120.0) -> Any:
    api_key = os.environ.get(config.api_key_env) if config.api_key_env else None
    limit = concurrency or config.max_concurrency
    if config.provider == "openai":
        from posttrain.models.openai_compat import LeanOpenAIModel, SDKOpenAIModel

        cls = SDKOpenAIModel if config.client == "sdk" else LeanOpenAIModel
        return cls(config.name, config.model, base_url=config.base_url, api_key=api_key,
                   max_concurrency=limit or 16, price=config.price, timeout_s=timeout_s,
                   compare_fingerprint=_flag(config.options.get("cache_fingerprint")))
    if config.provider == "anthropic":
        from posttrain.models.anthropic_model import AnthropicModel

        return AnthropicModel(config.name, config.model, api_key=api_key,
                              base_url=config.base_url, max_concurrency=limit or 8,
                              price=config.price, timeout_s=timeout_s)
    if config.provider == "hf":
        from posttrain.models.hf import HFModel

        batch = int(config.options.get("batch_size", 16))
        gguf = config.options.get("gguf")  # hf:FOLDER?gguf=FILE
        return HFModel(config.name, config.model, batch_size=batch, price=config.price,
                       max_concurrency=limit, gguf=str(gguf) if gguf else None)
    if config.provider == "vllm":
        try:
            from posttrain.models.vllm_model import VLLMModel
        except ImportError as exc:
            raise UserError(f"vllm: models need vLLM on a GPU machine ({exc})",
                            field="--model") from None
        return VLLMModel(config.name, config.model, options=config.options, price=config.price)
    raise UserError(f"unknown provider {config.provider!r}", field="--model")


def resolve_model(spec: str, models_file: str | Path | None = None, *,
                  concurrency: int | None = None, timeout_s: float = 120.0) -> Any:
    """A ready Model for a spec string (see the module docstring)."""
    return build_model(model_config(spec, models_file), concurrency=concurrency,
                       timeout_s=timeout_s)
