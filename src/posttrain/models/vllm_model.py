"""``vllm:PATH_OR_REPO``: offline vLLM engine in this process (GPU machines).

Options (models file keys or spec query, e.g. ``vllm:/models/qwen?tensor_parallel_size=2``):
``tensor_parallel_size``, ``pipeline_parallel_size``, ``gpu_memory_utilization``,
``max_model_len``, ``max_num_seqs``, ``dtype``, ``quantization``, ``enforce_eager``,
``trust_remote_code``, ``seed`` (passed to ``vllm.LLM``), and ``batch_size`` (most requests per
engine call, default 256) and ``max_tokens`` (default answer length, 256).

The runner sends many concurrent ``generate`` calls; they are gathered for a few milliseconds
and handed to one ``LLM.chat`` call (the model's chat template, continuous batching inside
vLLM), one call at a time in a worker thread. ``import vllm`` happens only on the first request,
so this module imports anywhere; without vLLM each request fails with a clear, non-retryable error.

Request fields map to ``vllm.SamplingParams`` (https://docs.vllm.ai/en/latest/api/vllm/
sampling_params.html) and ``LLM.chat`` in :func:`vllm_settings`; a field with no form there
(``reasoning_effort``, ``tool_choice: required``, logprobs posttrain does not read) is refused
before the first request (``posttrain.models.base.FIELD_SUPPORT``), never dropped.
"""

from __future__ import annotations

import json
import time
from typing import Any

from posttrain.errors import UserError
from posttrain.models.base import (
    SUPPORTS,
    FatalError,
    Price,
    UnsupportedField,
    max_tokens_of,
    supported_fields,
)
from posttrain.models.batching import BatchingModel
from posttrain.models.hf import (
    TOOLS_PROMPT_FORMAT,
    local_model_identity,
    local_tools,
    parse_tool_calls,
    stop_list,
    template_renders_tools,
    tools_in_messages,
)
from posttrain.plugins import register_provider
from posttrain.types import ChatRequest, Completion

_ENGINE_OPTIONS: dict[str, type] = {
    "tensor_parallel_size": int, "pipeline_parallel_size": int, "gpu_memory_utilization": float,
    "max_model_len": int, "max_num_seqs": int, "dtype": str, "quantization": str,
    "enforce_eager": bool, "trust_remote_code": bool, "seed": int,
}
_OWN_OPTIONS: dict[str, type] = {"batch_size": int, "max_tokens": int}


def _coerce(name: str, value: Any, kind: type) -> Any:
    """Spec query values arrive as strings: ``?tensor_parallel_size=2&enforce_eager=true``."""
    if kind is bool:
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("1", "true", "yes"):
            return True
        if str(value).lower() in ("0", "false", "no"):
            return False
    else:
        try:
            return kind(value)
        except (TypeError, ValueError):
            pass
    raise UserError(f"vllm option {name}={value!r} must be {kind.__name__}", field="--model")


def engine_options(options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split and type-check options: (``vllm.LLM`` kwargs, this wrapper's own settings)."""
    engine: dict[str, Any] = {}
    own: dict[str, Any] = {}
    for name, value in options.items():
        if name in _ENGINE_OPTIONS:
            engine[name] = _coerce(name, value, _ENGINE_OPTIONS[name])
        elif name in _OWN_OPTIONS:
            own[name] = _coerce(name, value, _OWN_OPTIONS[name])
        else:
            known = ", ".join(sorted({**_ENGINE_OPTIONS, **_OWN_OPTIONS}))
            raise UserError(f"unknown vllm option {name!r} (known: {known})", field="--model")
    return engine, own


#: request fields that are ``SamplingParams`` fields of the same name and meaning
_SAMPLING_SAME = ("top_p", "top_k", "min_p", "seed", "presence_penalty", "frequency_penalty",
                  "repetition_penalty")


def vllm_settings(request: ChatRequest, default_max_tokens: int = 256) -> dict[str, Any]:
    """How a request runs on vLLM: ``sampling`` (``SamplingParams`` keyword arguments),
    ``structured`` (a JSON schema, ``True`` for any JSON object, or None: guided decoding),
    ``tools`` (for ``LLM.chat``, None under ``tool_choice: none``). Greedy unless
    ``temperature`` is set, like ``hf:``. UnsupportedField for a field vLLM cannot honour."""
    fields = supported_fields(request, "vllm")
    tools = local_tools(fields)
    sampling: dict[str, Any] = {"temperature": fields.get("temperature") or 0.0,
                                "max_tokens": max_tokens_of(fields) or default_max_tokens}
    sampling.update((name, fields[name]) for name in _SAMPLING_SAME if name in fields)
    if "stop" in fields:
        sampling["stop"] = stop_list(fields)
    if "logit_bias" in fields:
        try:
            sampling["logit_bias"] = {int(k): float(v) for k, v in fields["logit_bias"].items()}
        except (TypeError, ValueError):
            raise UnsupportedField("logit_bias", "keys must be token ids") from None
    structured: dict[str, Any] | bool | None = None
    response_format = fields.get("response_format")
    kind = response_format.get("type") if response_format is not None else None
    if kind == "json_schema":
        structured = _json_schema(response_format)
        if structured is None:
            raise UnsupportedField("response_format", "json_schema needs json_schema.schema")
    elif kind == "json_object":
        structured = True
    elif kind not in (None, "text"):
        raise UnsupportedField("response_format", f"type {kind!r} (json_schema, json_object "
                               "and text work)")
    return {"sampling": sampling, "structured": structured, "tools": tools or None}


class VLLMModel(BatchingModel):
    """A vLLM engine serving one model; ``tensor_parallel_size`` GPUs per replica."""

    SUPPORTS = SUPPORTS["vllm"]
    tools_prompt_format = TOOLS_PROMPT_FORMAT

    def __init__(self, name: str, model: str, *, options: dict[str, Any] | None = None,
                 price: Price | None = None) -> None:
        self.name = name
        self.path = model
        self.price = price
        self.engine_kwargs, own = engine_options(dict(options or {}))
        self.tensor_parallel_size = self.engine_kwargs.get("tensor_parallel_size", 1)
        self.batch_size = own.get("batch_size", 256)
        self.default_max_tokens = own.get("max_tokens", 256)
        self.max_concurrency = self.batch_size
        # parallelism settings change speed, not answers: not part of the cache identity
        self.cache_id = f"vllm:{local_model_identity(model)}"
        self._llm: Any = None
        self._template_tools: bool | None = None
        self.gather_s = 0.005
        super().__init__()

    async def check(self) -> None:
        """Before the first request: vLLM installed and a local path that exists."""
        from posttrain.models.checks import require_packages, require_path

        require_packages(self.name, "vllm")
        require_path(self.name, self.path)

    # ---- loading -----------------------------------------------------------------------------
    def load(self) -> Any:
        if self._llm is not None:
            return self._llm
        try:
            import vllm
        except ImportError as exc:
            raise FatalError(
                f"vllm: models need the vllm package on a GPU machine ({exc}); install it in "
                "its own environment (it pins its own torch): pip install 'posttrain[vllm]'"
            ) from None
        try:
            self._llm = vllm.LLM(model=self.path, **self.engine_kwargs)
        except (OSError, ValueError, RuntimeError) as exc:
            raise FatalError(f"cannot start vLLM for {self.path!r}: {exc}") from None
        return self._llm

    def _renders_tools(self, llm: Any) -> bool:
        """Whether the model's chat template shows ``tools`` (as :class:`HFModel` checks); an
        engine without ``get_tokenizer`` is trusted to."""
        if self._template_tools is None:
            try:
                tokenizer = llm.get_tokenizer()
            except Exception:  # noqa: BLE001 - no tokenizer to ask: leave the tools to vLLM
                self._template_tools = True
            else:
                self._template_tools = template_renders_tools(tokenizer)
        return self._template_tools

    # ---- one engine call ---------------------------------------------------------------------
    def to_wire(self, request: ChatRequest) -> dict[str, Any]:
        """How ``request`` runs here (:func:`vllm_settings`); UnsupportedField if it cannot."""
        return vllm_settings(request, self.default_max_tokens)

    def sampling_params(self, request: ChatRequest) -> Any:
        import vllm

        settings = self.to_wire(request)
        kwargs = dict(settings["sampling"])
        if settings["structured"] is not None:
            kwargs.update(_structured(settings["structured"]))
        return vllm.SamplingParams(**kwargs)

    async def generate(self, request: ChatRequest) -> Completion:
        self.to_wire(request)  # a field this model cannot honour fails here, alone
        return await super().generate(request)

    def generate_batch(self, requests: list[ChatRequest]) -> list[Completion]:
        """Requests sharing one tools list, in one ``LLM.chat`` call (synchronous)."""
        llm = self.load()
        started = time.perf_counter()
        kwargs: dict[str, Any] = {"use_tqdm": False, "add_generation_prompt": True}
        tools = self.to_wire(requests[0])["tools"]  # one tools list per batch (batch_key)
        conversations = [r.messages for r in requests]
        if tools and not self._renders_tools(llm):  # the template would drop them silently
            conversations = [tools_in_messages(messages, tools) for messages in conversations]
        elif tools:
            kwargs["tools"] = tools
        outputs = llm.chat(conversations, [self.sampling_params(r) for r in requests], **kwargs)
        latency = time.perf_counter() - started
        completions = []
        for output in outputs:
            choice = output.outputs[0]
            text = choice.text
            finish = choice.finish_reason or "stop"
            tool_calls: list[dict[str, Any]] = []
            if tools:
                text, tool_calls = parse_tool_calls(text)
                if tool_calls:
                    finish = "tool_calls"
            input_tokens = len(output.prompt_token_ids or [])
            output_tokens = len(choice.token_ids or [])
            completions.append(Completion(
                text=text, tool_calls=tool_calls, finish_reason=finish,
                input_tokens=input_tokens, output_tokens=output_tokens, latency_s=latency,
                cost_usd=self.price.cost(input_tokens, output_tokens) if self.price else 0.0,
            ))
        return completions

    def batch_key(self, request: ChatRequest) -> Any:
        return json.dumps(self.to_wire(request)["tools"], sort_keys=True, default=str)


def _json_schema(response_format: dict[str, Any] | None) -> dict[str, Any] | None:
    if not response_format or response_format.get("type") != "json_schema":
        return None
    spec = response_format.get("json_schema") or {}
    return spec.get("schema") if isinstance(spec, dict) else None


def _structured(schema: dict[str, Any] | bool) -> dict[str, Any]:
    """Guided JSON decoding across vLLM versions (``structured_outputs`` since 0.10.2): a
    schema, or ``True`` for any JSON object (``json_object``)."""
    spec = {"json_object": True} if schema is True else {"json": schema}
    try:
        from vllm.sampling_params import StructuredOutputsParams

        return {"structured_outputs": StructuredOutputsParams(**spec)}
    except ImportError:
        from vllm.sampling_params import GuidedDecodingParams

        return {"guided_decoding": GuidedDecodingParams(**spec)}


def _options() -> dict[str, str]:
    kinds = {int: "int", float: "number", str: "text", bool: "bool"}
    options = {name: kinds[kind] for name, kind in {**_ENGINE_OPTIONS, **_OWN_OPTIONS}.items()}
    options.update({"tensor_parallel_size": "count", "pipeline_parallel_size": "count",
                    "max_model_len": "count", "max_num_seqs": "count", "batch_size": "count",
                    "max_tokens": "count", "gpu_memory_utilization": "share"})
    return options


@register_provider("vllm", order=3, local=True, options=_options())
def build(config: Any, *, api_key: str | None, withheld: str | None, concurrency: int | None,
          timeout_s: float) -> Any:
    """``vllm:PATH``: vLLM's offline engine on this machine (a GPU)."""
    return VLLMModel(config.name, config.model, options=config.options, price=config.price)
