"""The small set of types every part of posttrain speaks.

Plain slotted dataclasses rather than pydantic models: they are built once per sample on the hot
path, and validation happens where user input enters (eval files, grader specs), not here.

Vocabulary, following OpenAI's grader format:
- an *item* is one dataset row (a dict); graders see it as ``item.*``;
- a *sample* is what the model produced, as the grader format's sample object
  (``output_text``, ``output_json``, ``output_tools``, ``choices``); graders see it as ``sample.*``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

from posttrain.reasoning import split_reasoning

ScoreStatus = Literal["scored", "unscored", "error"]


@dataclass(slots=True)
class Item:
    """One dataset row with its stable id and tags."""

    id: str
    data: dict[str, Any]
    tags: list[str] = field(default_factory=list)
    line: int = 0  # 1-based line in the dataset file, for error messages


@dataclass(slots=True)
class ChatRequest:
    """A provider-neutral chat request (the chat-completions shape)."""

    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] | None = None
    tool_choice: Any = None
    response_format: dict[str, Any] | None = None
    temperature: float | None = None
    max_tokens: int | None = None
    top_p: float | None = None
    seed: int | None = None
    stop: list[str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_payload(self) -> dict[str, Any]:
        """The request body fields (without ``model``), omitting unset ones."""
        body: dict[str, Any] = {"messages": self.messages}
        for key in ("tools", "tool_choice", "response_format", "temperature", "max_tokens",
                    "top_p", "seed", "stop"):
            value = getattr(self, key)
            if value is not None:
                body[key] = value
        body.update(self.extra)
        return body


@dataclass(slots=True)
class Completion:
    """What a model returned for one request.

    Token counts are normalised across providers: ``input_tokens`` is every prompt token the
    request was billed for, cached and cache-written ones included (OpenAI ``prompt_tokens``;
    Anthropic ``input_tokens + cache_read_input_tokens + cache_creation_input_tokens``), and
    ``output_tokens`` every generated token, reasoning included. ``cached_input_tokens``,
    ``cache_write_tokens`` and ``reasoning_tokens`` are the parts of those billed at other rates
    or worth showing; :meth:`posttrain.models.base.Price.cost` prices them.
    """

    text: str
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    finish_reason: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    latency_s: float = 0.0
    cost_usd: float = 0.0
    cached: bool = False
    cached_input_tokens: int = 0  # read from the provider's prompt cache (part of input_tokens)
    cache_write_tokens: int = 0  # written to the provider's prompt cache (part of input_tokens)
    reasoning_tokens: int = 0  # spent on reasoning (part of output_tokens, billed as output)
    # what the endpoint said answered: the response's ``model`` and ``system_fingerprint``
    served_model: str | None = None
    fingerprint: str | None = None
    # extra turns for multi-turn solvers (tool-use environments): the whole transcript
    transcript: list[dict[str, Any]] | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    #: reasoning the provider returned in its own field (``reasoning_content``, thinking blocks)
    reasoning: str | None = None

    def to_sample(self, response_format: dict[str, Any] | None = None, *,
                  reasoning: str = "strip") -> dict[str, Any]:
        """The grader format's sample object.

        ``reasoning``: ``strip`` (default) splits reasoning blocks (``<think>…</think>`` and
        the other shapes in ``posttrain.reasoning``) out of the text, so ``output_text`` and
        ``output_json`` are the answer alone and ``sample.reasoning`` holds the reasoning;
        ``keep`` grades the text as the model wrote it. Either way the answer's surrounding
        whitespace is not part of it (``" Paris\n"`` is ``"Paris"``): providers and tokenizers
        differ in the spaces and newlines they leave around a reply, and the eval score and the
        RFT reward of the same answer must not differ by them.
        """
        text = self.text
        thought = ""
        if reasoning == "strip":
            thought, text = split_reasoning(text)
        text = text.strip()
        if self.reasoning:
            thought = f"{self.reasoning}\n{thought}" if thought else self.reasoning
        output_json: Any = None
        if response_format is None or response_format.get("type") in ("json_schema", "json_object"):
            output_json = parse_json_output(text)
        message: dict[str, Any] = {"role": "assistant", "content": text}
        if self.tool_calls:
            message["tool_calls"] = self.tool_calls
        sample: dict[str, Any] = {
            "output_text": text,
            "output_json": output_json,
            "output_tools": self.tool_calls,
            "reasoning": thought,
            "choices": [{"index": 0, "message": message, "finish_reason": self.finish_reason}],
        }
        if self.transcript is not None:
            sample["transcript"] = self.transcript
        if self.meta:
            sample["meta"] = self.meta
        return sample

    def to_record(self) -> dict[str, Any]:
        return {
            "text": self.text, "tool_calls": self.tool_calls, "finish_reason": self.finish_reason,
            "input_tokens": self.input_tokens, "output_tokens": self.output_tokens,
            "latency_s": self.latency_s,  # of the original request, for answers from the cache
            "transcript": self.transcript, "meta": self.meta,
            **{key: getattr(self, key) for key in _USAGE_EXTRAS if getattr(self, key)},
            **({"reasoning": self.reasoning} if self.reasoning else {}),
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Completion:
        return cls(
            text=record.get("text") or "", tool_calls=record.get("tool_calls") or [],
            finish_reason=record.get("finish_reason"),
            input_tokens=record.get("input_tokens") or 0,
            output_tokens=record.get("output_tokens") or 0,
            transcript=record.get("transcript"), meta=record.get("meta") or {},
            cached_input_tokens=record.get("cached_input_tokens") or 0,
            cache_write_tokens=record.get("cache_write_tokens") or 0,
            reasoning_tokens=record.get("reasoning_tokens") or 0,
            served_model=record.get("served_model"), fingerprint=record.get("fingerprint"),
            reasoning=record.get("reasoning"), latency_s=record.get("latency_s") or 0.0,
        )


#: Completion fields written to a record only when set (records of older versions lack them)
_USAGE_EXTRAS = ("cached_input_tokens", "cache_write_tokens", "reasoning_tokens", "served_model",
                 "fingerprint")


def parse_json_output(text: str) -> Any:
    """Best-effort JSON parse of a model's text (a ```json fence is tolerated); None if not JSON."""
    stripped = text.strip()
    if stripped.startswith("```"):
        stripped = stripped.split("\n", 1)[1] if "\n" in stripped else ""
        if stripped.rstrip().endswith("```"):
            stripped = stripped.rstrip()[:-3]
    if not stripped or stripped[0] not in "{[":
        return None
    try:
        return json.loads(stripped)
    except ValueError:
        return None


@dataclass(slots=True)
class Score:
    """A grade: value in [0, 1] (or the grader's range), pass/fail, and why.

    ``status`` is ``scored`` when the grader produced a value, ``unscored`` when it could not
    (a judge reply that does not parse, a missing reference), ``error`` when the grader failed
    (an exception in user code, a sandbox limit). Only scored values enter averages.
    """

    value: float | None
    passed: bool | None = None
    status: ScoreStatus = "scored"
    explanation: str = ""
    sub_scores: dict[str, float] = field(default_factory=dict)
    name: str = ""
    #: what grading cost: a judge's uncached requests (count) and their USD
    cost_usd: float = 0.0
    requests: int = 0  # attempts, retries included
    retries: int = 0
    #: where model-written code ran for this grade (the sandbox layer), None when none ran
    confinement: str | None = None

    @classmethod
    def unscored(cls, reason: str, name: str = "") -> Score:
        return cls(value=None, passed=None, status="unscored", explanation=reason, name=name)

    @classmethod
    def error(cls, reason: str, name: str = "") -> Score:
        return cls(value=None, passed=None, status="error", explanation=reason, name=name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "score": self.value, "passed": self.passed, "status": self.status,
            "explanation": self.explanation, "sub_scores": self.sub_scores,
            **({"confinement": self.confinement} if self.confinement else {}),
        }
