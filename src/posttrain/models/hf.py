"""Local Hugging Face models: batched generation with the model's chat template.

Concurrent ``generate`` calls are gathered into batches (same sampling settings), run one batch
at a time in a worker thread so the event loop stays free. torch and transformers are imported
only when the first request arrives.

Static batching (a batch left-padded into one ``model.generate``), chosen by measurement over
transformers' continuous batching (``model.generate_batch``): on CPU, without flash attention,
that packs the batch into one sequence under a block-diagonal mask and was 0.74-0.92x as fast
on SmolLM2-135M at batch 1-32, same answers (``bench/bench_hf_batching.py``, bench/RESULTS.md).

Request fields map to ``apply_chat_template`` and ``GenerationConfig`` (``generate`` keyword
arguments, https://huggingface.co/docs/transformers/main_classes/text_generation) in
:func:`hf_settings`; a field with no local form (``reasoning_effort``, ``tool_choice:
required``, penalties transformers lacks) is refused before the first request
(``posttrain.models.base.FIELD_SUPPORT``), never dropped.
"""

from __future__ import annotations

import json
import re
import sys
import threading
import time
from typing import Any

from posttrain.errors import UserError
from posttrain.models.base import (
    SUPPORTS,
    FatalError,
    Price,
    UnsupportedField,
    max_tokens_of,
    response_format_instruction,
    supported_fields,
)
from posttrain.models.batching import BatchingModel
from posttrain.models.identity import local_weights_identity
from posttrain.models.local import resolve_spec
from posttrain.plugins import register_provider
from posttrain.types import ChatRequest, Completion

# transformers' lazy modules are not safe to import from two threads at once (two local models
# loading side by side): loads go one at a time
_LOAD_LOCK = threading.Lock()
_TOOL_CALL = re.compile(r"<tool_call>\s*(\{.*?\})\s*</tool_call>", re.S)


def local_model_identity(path: str) -> str:
    """Path plus a digest of its weights: a retrained folder is a new model for the cache
    (see :func:`posttrain.models.identity.local_weights_identity`)."""
    return local_weights_identity(path)


def parse_tool_calls(text: str) -> tuple[str, list[dict[str, Any]]]:
    """Qwen/Hermes-style ``<tool_call>{"name", "arguments"}</tool_call>`` blocks in the text."""
    calls: list[dict[str, Any]] = []
    for index, match in enumerate(_TOOL_CALL.finditer(text)):
        try:
            payload = json.loads(match.group(1))
        except ValueError:
            continue
        if not isinstance(payload, dict) or not isinstance(payload.get("name"), str):
            continue  # not a call (a name that is not text, e.g. {"name": {...}}, included)
        arguments = payload.get("arguments", {})
        calls.append({
            "id": f"call_{index}", "type": "function",
            "function": {"name": payload["name"],
                         "arguments": arguments if isinstance(arguments, str)
                         else json.dumps(arguments)},
        })
    if calls:
        text = _TOOL_CALL.sub("", text).strip()
    return text, calls


def local_tools(fields: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The tools a local chat template gets under ``tool_choice`` and ``parallel_tool_calls``.

    ``auto`` (or unset) offers them, ``none`` leaves them out of the prompt (no tool calls are
    parsed then); ``required`` and a named function need constrained decoding, which local
    generation here does not do, and ``parallel_tool_calls: false`` cannot be enforced: both
    are refused.
    """
    choice = fields.get("tool_choice")
    if choice not in (None, "auto", "none"):
        raise UnsupportedField("tool_choice", f"{choice!r}: a local model cannot be forced to "
                               "call a tool (auto and none work)")
    if fields.get("parallel_tool_calls") is False:
        raise UnsupportedField("parallel_tool_calls", "false: a local model cannot be held to "
                               "one tool call")
    return None if choice == "none" else fields.get("tools")


# Hermes-style tool use (the format of Qwen2.5's template, which parse_tool_calls reads back),
# for chat templates that render role and content only (SmolLM2, the tiny test model)
TOOLS_INSTRUCTION = (
    "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>\n"
    "{tools}\n</tools>\n\nFor each function call, return a json object with function name and "
    "arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n"
    '{{"name": <function-name>, "arguments": <args-json-object>}}\n</tool_call>'
)
_PROBE_TOOL = {"type": "function", "function": {
    "name": "posttrain_probe_tool", "description": "probe",
    "parameters": {"type": "object", "properties": {}}}}


#: the version of :func:`tools_in_messages`' rendering, part of the cache key of every request
#: with tools to a local engine (``posttrain.runner.store.request_key``): bump it when the
#: rendering changes, so no answer to the old prompt is served for the new one.
TOOLS_PROMPT_FORMAT = "tools-in-system/1"


def template_renders_tools(tokenizer: Any) -> bool:
    """Whether the tokenizer's chat template puts ``tools`` in the prompt at all."""
    probe = [{"role": "user", "content": "x"}]
    try:
        text = tokenizer.apply_chat_template(probe, tools=[_PROBE_TOOL], tokenize=False,
                                             add_generation_prompt=True)
    except Exception:  # noqa: BLE001 - a template that fails on tools does not render them
        return False
    return "posttrain_probe_tool" in text


def _call_text(call: dict[str, Any]) -> str:
    function = call.get("function") or {}
    arguments = function.get("arguments", {})
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except ValueError:
            pass  # kept as the model wrote it
    payload = {"name": function.get("name"), "arguments": arguments}
    return f"<tool_call>\n{json.dumps(payload, ensure_ascii=False)}\n</tool_call>"


def tools_in_messages(messages: list[dict[str, Any]],
                      tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The conversation for a template without tools: the tools described in the system
    message (joined to the first one, or a new one), each assistant tool call as
    ``<tool_call>`` text, consecutive tool results as one user turn of ``<tool_response>``s."""
    described = "\n".join(json.dumps(tool.get("function", tool), ensure_ascii=False)
                          for tool in tools)
    instruction = TOOLS_INSTRUCTION.format(tools=described)
    out: list[dict[str, Any]] = []
    for message in messages:
        role = message.get("role")
        content = message.get("content")
        text = content if isinstance(content, str) else ("" if content is None else content)
        if role == "assistant" and message.get("tool_calls"):
            calls = "\n".join(_call_text(call) for call in message["tool_calls"])
            out.append({"role": "assistant",
                        "content": f"{text}\n{calls}" if isinstance(text, str) and text.strip()
                        else calls})
        elif role == "tool":
            response = f"<tool_response>\n{text}\n</tool_response>"
            if out and out[-1].get("role") == "user" and out[-1].get("_tool_results"):
                out[-1]["content"] += "\n" + response
            else:
                out.append({"role": "user", "content": response, "_tool_results": True})
        else:
            out.append({k: v for k, v in message.items() if k != "tool_calls"})
    for message in out:
        message.pop("_tool_results", None)
    if out and out[0].get("role") in ("system", "developer") and isinstance(
            out[0].get("content"), str):
        out[0] = {**out[0], "content": f"{out[0]['content']}\n\n{instruction}"}
    else:
        out.insert(0, {"role": "system", "content": instruction})
    return out


def stop_list(fields: dict[str, Any]) -> list[str]:
    """``stop`` as a list (the eval may give one string)."""
    stop = fields.get("stop") or []
    return [stop] if isinstance(stop, str) else list(stop)


def cut_at_stop(text: str, stops: list[str]) -> str | None:
    """``text`` up to the earliest stop sequence in it (None: no stop occurs)."""
    found = [text.index(stop) for stop in stops if stop and stop in text]
    return text[: min(found)] if found else None


def hf_settings(request: ChatRequest, default_max_tokens: int = 256) -> dict[str, Any]:
    """How a request runs on a local transformers model: ``template`` (extra
    ``apply_chat_template`` arguments), ``instruction`` (a system message asking for the
    response format: no constrained decoding here), ``generate`` (``generate`` keyword
    arguments, before the context-window cap) and ``stop`` (the answer is cut at the first).

    Greedy unless ``temperature`` > 0; ``top_p``/``top_k``/``min_p`` apply when sampling (at
    temperature 0 they cannot change the greedy token), ``seed`` seeds torch before sampling,
    ``repetition_penalty`` applies either way. UnsupportedField for anything else.
    """
    fields = supported_fields(request, "hf")
    tools = local_tools(fields)
    response_format = fields.get("response_format")
    if response_format is not None and response_format.get("type") not in (
            "json_schema", "json_object", "text"):
        raise UnsupportedField("response_format", f"type {response_format.get('type')!r} "
                               "(json_schema, json_object and text work)")
    generate: dict[str, Any] = {"max_new_tokens": max_tokens_of(fields) or default_max_tokens}
    temperature = fields.get("temperature") or 0.0
    if temperature > 0:
        generate.update(do_sample=True, temperature=temperature,
                        top_p=fields.get("top_p", 1.0))
        for name in ("top_k", "min_p"):
            if name in fields:
                generate[name] = fields[name]
    else:
        generate.update(do_sample=False, temperature=None, top_p=None, top_k=None)
    if "repetition_penalty" in fields:
        generate["repetition_penalty"] = fields["repetition_penalty"]
    return {"template": {"tools": tools} if tools else {},
            "instruction": response_format_instruction(response_format),
            "generate": generate, "seed": fields.get("seed") if temperature > 0 else None,
            "stop": stop_list(fields), "parse_tools": bool(tools)}


def _say(message: str) -> None:
    print(f"posttrain: {message}", file=sys.stderr, flush=True)


class ContextTooLong(FatalError):
    """The prompt does not fit the model's context window: an error for that sample."""


class HFModel(BatchingModel):
    """``hf:PATH_OR_REPO``: a transformers causal LM on this machine.

    Also ``hf:PATH.gguf`` / ``hf:FOLDER?gguf=FILE`` (``gguf=``): a GGUF file, converted once
    into a cached folder keyed by its SHA-256; and ``hf:NAME``: a model pulled with
    ``posttrain models pull NAME`` (see :mod:`posttrain.models.local`).
    """

    SUPPORTS = SUPPORTS["hf"]
    tools_prompt_format = TOOLS_PROMPT_FORMAT

    def __init__(self, name: str, path: str, *, batch_size: int = 16,
                 default_max_tokens: int = 256, price: Price | None = None,
                 max_concurrency: int | None = None, gguf: str | None = None) -> None:
        self.name = name
        self.path = path
        self.gguf = gguf
        self.source = resolve_spec(path, gguf, spec=name)  # reads no weights
        self.batch_size = batch_size
        self.default_max_tokens = default_max_tokens
        self.price = price
        self.max_concurrency = max_concurrency or batch_size * 2
        self.cache_id = f"hf:{self.source.identity()}"
        self._model: Any = None
        self._tokenizer: Any = None
        self._template_tools: bool | None = None
        super().__init__()

    async def check(self) -> None:
        """Before the first request: torch and transformers installed (gguf for a GGUF file),
        a local path that exists and holds a model (config, weights, tokenizer; or a GGUF), a
        name that is pulled, a hub id that is cached or reachable (UserError naming the spec;
        see :func:`posttrain.models.checks.require_model_files`)."""
        import asyncio

        from posttrain.models.checks import require_model_files, require_packages, require_path

        require_packages(self.name, "torch", "transformers",
                         *(("gguf",) if self.source.is_gguf else ()))
        require_path(self.name, self.path, gguf=self.gguf, names=True)
        await asyncio.to_thread(require_model_files, self.name, self.source)

    # ---- loading ---------------------------------------------------------------------------------
    def load(self) -> None:
        if self._model is not None:
            return
        with _LOAD_LOCK:
            if self._model is None:
                self._load()

    def _load(self) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        try:  # a GGUF is converted here, once (cached); a pulled name is its folder
            target = self.source.materialize(log=_say)
            self._tokenizer = AutoTokenizer.from_pretrained(target)
            self._model = AutoModelForCausalLM.from_pretrained(target, dtype=torch.float32)
        except UserError as exc:
            raise FatalError(str(exc)) from None
        except (OSError, ValueError) as exc:
            raise FatalError(f"cannot load hf model {self.path!r}: {exc}") from None
        self._model.eval()
        self._tokenizer.padding_side = "left"
        if self._tokenizer.pad_token is None:
            self._tokenizer.pad_token = self._tokenizer.eos_token

    # ---- generation --------------------------------------------------------------------------------
    def generate_batch(self, requests: list[ChatRequest]) -> list[Completion]:
        """Generate for requests sharing sampling settings (synchronous; runs in a thread)."""
        import torch

        self.load()
        tokenizer, model = self._tokenizer, self._model
        plans = [self.to_wire(request) for request in requests]
        first = plans[0]
        started = time.perf_counter()
        texts = [self._prompt(request, plan) for request, plan in zip(requests, plans,
                                                                        strict=True)]
        encoded = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        window = getattr(model.config, "max_position_embeddings", None)
        longest = int(encoded["attention_mask"].sum(dim=1).max())
        generate_kwargs: dict[str, Any] = {
            **first["generate"],
            "pad_token_id": tokenizer.pad_token_id,
            "eos_token_id": tokenizer.eos_token_id,
        }
        if window is not None:
            if longest >= window:
                raise ContextTooLong(f"prompt of {longest} tokens does not fit the model's "
                                     f"context of {window} tokens")
            generate_kwargs["max_new_tokens"] = min(generate_kwargs["max_new_tokens"],
                                                    window - encoded["input_ids"].shape[1])
        if first["seed"] is not None:
            torch.manual_seed(first["seed"])
        from transformers import StoppingCriteria, StoppingCriteriaList

        abandoned = self.abandoned

        class CallersGone(StoppingCriteria):  # nobody waits for this batch any more
            def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
                return torch.full((input_ids.shape[0],), abandoned(), dtype=torch.bool,
                                  device=input_ids.device)

        with torch.inference_mode():
            output = model.generate(**encoded, **generate_kwargs,
                                    stopping_criteria=StoppingCriteriaList([CallersGone()]))
        prompt_length = encoded["input_ids"].shape[1]
        latency = time.perf_counter() - started
        completions = []
        for row, plan in enumerate(plans):
            new_tokens = output[row, prompt_length:].tolist()
            finish = "length"
            if tokenizer.eos_token_id in new_tokens:
                new_tokens = new_tokens[: new_tokens.index(tokenizer.eos_token_id)]
                finish = "stop"
            while new_tokens and new_tokens[-1] == tokenizer.pad_token_id:
                new_tokens.pop()
                finish = "stop"
            text = tokenizer.decode(new_tokens, skip_special_tokens=True)
            tool_calls: list[dict[str, Any]] = []
            if plan["parse_tools"]:
                text, tool_calls = parse_tool_calls(text)
                if tool_calls:
                    finish = "tool_calls"
            cut = cut_at_stop(text, plan["stop"])
            if cut is not None:
                text, finish = cut, "stop"
            input_tokens = int(encoded["attention_mask"][row].sum())
            completions.append(Completion(
                text=text, tool_calls=tool_calls, finish_reason=finish,
                input_tokens=input_tokens, output_tokens=len(new_tokens), latency_s=latency,
                cost_usd=self.price.cost(input_tokens, len(new_tokens)) if self.price else 0.0,
            ))
        return completions

    def prompt_text(self, request: ChatRequest) -> str:
        """The prompt this model is given for ``request`` (loads the tokenizer)."""
        self.load()
        return self._prompt(request, self.to_wire(request))

    def _prompt(self, request: ChatRequest, plan: dict[str, Any]) -> str:
        tokenizer = self._tokenizer
        template = dict(plan["template"])
        messages = request.messages
        tools = template.get("tools")
        if tools and not self._renders_tools():  # the template would drop them silently
            messages = tools_in_messages(messages, tools)
            template.pop("tools")
        if plan["instruction"]:  # no constrained decoding here: ask for the format instead
            messages = [{"role": "system", "content": plan["instruction"]}, *messages]
        return tokenizer.apply_chat_template(messages, add_generation_prompt=True,
                                             tokenize=False, **template)

    def _renders_tools(self) -> bool:
        if self._template_tools is None:
            self._template_tools = template_renders_tools(self._tokenizer)
            if not self._template_tools:
                _say(f"{self.name}: its chat template has no tools: they are given in the "
                     "system message (<tool_call> format)")
        return self._template_tools

    def to_wire(self, request: ChatRequest) -> dict[str, Any]:
        """How ``request`` runs here (:func:`hf_settings`); UnsupportedField if it cannot."""
        return hf_settings(request, self.default_max_tokens)

    async def generate(self, request: ChatRequest) -> Completion:
        self.to_wire(request)  # a field this model cannot honour fails here, alone
        return await super().generate(request)

    def batch_key(self, request: ChatRequest) -> Any:
        """Requests batch together when their ``generate`` settings and seed agree."""
        plan = self.to_wire(request)
        return json.dumps([plan["generate"], plan["seed"]], sort_keys=True, default=str)

    def retry_alone(self, exc: Exception) -> bool:
        return isinstance(exc, ContextTooLong)  # one long prompt: the others still get answers


@register_provider("hf", order=2, local=True,
                   options={"gguf": "text", "batch_size": "count", "concurrency": "count"})
def build(config: Any, *, api_key: str | None, withheld: str | None, concurrency: int | None,
          timeout_s: float) -> Any:
    """``hf:PATH_OR_REPO`` (also ``hf:FILE.gguf``, ``hf:FOLDER?gguf=FILE``, a pulled name):
    transformers on this machine."""
    from posttrain.models import _typed

    batch = _typed("count", config.options.get("batch_size", 16))
    gguf = config.options.get("gguf")  # hf:FOLDER?gguf=FILE
    return HFModel(config.name, config.model, batch_size=batch, price=config.price,
                   max_concurrency=concurrency, gguf=str(gguf) if gguf else None)
