"""Providers at parity: every request field reaches each provider that supports it, in that
provider's wire form, or the run refuses it with one line naming the field and the model.

The parity test sends one ``ChatRequest`` with every field set through the lean ``openai:``
client, the ``openai`` SDK client and ``anthropic:`` (the installed ``anthropic`` SDK) to local
servers (``posttrain.testing.stub_server``, ``posttrain.testing.anthropic_stub``: stubs, because
the test is about what the clients put on the wire) and compares the bodies field by field;
``hf:`` runs a tiny local model. The Anthropic mapping was also run against ``anthropic``
0.41.0, 0.125.0, 1.0.0 and 2.0.0 (``PYTHONPATH=<unpacked wheel> pytest
tests/test_provider_parity.py``): the range pinned in pyproject.toml.
"""

from __future__ import annotations

import asyncio
import copy
import json
import threading
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from posttrain.cli import main
from posttrain.errors import UserError
from posttrain.models import resolve_model
from posttrain.models.base import (
    CORE_FIELDS,
    FIELD_SUPPORT,
    PROVIDER_KINDS,
    REQUEST_FIELDS,
    SUPPORTS,
    UnsupportedField,
    field_label,
    map_request,
    set_fields,
    support_table,
)
from posttrain.testing import anthropic_stub, stub_server
from posttrain.types import ChatRequest
from tests.conftest import write_eval

ROOT = Path(__file__).parent.parent


class ThreadedApp:
    """An aiohttp app on 127.0.0.1 in its own thread and loop."""

    def __init__(self, app: web.Application) -> None:
        self._loop = asyncio.new_event_loop()
        self._runner = web.AppRunner(app, access_log=None)
        ready = threading.Event()

        def serve() -> None:
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, "127.0.0.1", 0)
            self._loop.run_until_complete(site.start())
            self.port = self._runner.addresses[0][1]
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=serve, daemon=True)
        self._thread.start()
        assert ready.wait(10)
        self.url = f"http://127.0.0.1:{self.port}"

    def stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.url + "/stats", timeout=5) as response:
            return json.loads(response.read())

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


@pytest.fixture
def openai_server() -> Iterator[ThreadedApp]:
    server = ThreadedApp(stub_server.make_app())
    yield server
    server.close()


@pytest.fixture
def anthropic_server() -> Iterator[ThreadedApp]:
    server = ThreadedApp(anthropic_stub.make_app(models={
        "claude-sonnet-4-6": None,
        # an older model as the Models API describes it: no structured outputs, no effort
        "claude-3-5-haiku": {**anthropic_stub.full_capabilities(),
                             "structured_outputs": {"supported": False},
                             "effort": {"supported": False}},
    }))
    yield server
    server.close()


TOOLS = [{"type": "function", "function": {
    "name": "book", "description": "Book a room",
    "parameters": {"type": "object", "properties": {"day": {"type": "string"}},
                   "required": ["day"]}}}]
SCHEMA = {"type": "object", "properties": {"day": {"type": "string"}}, "required": ["day"],
          "additionalProperties": False}
MESSAGES = [
    {"role": "system", "content": "You book rooms."},
    {"role": "user", "content": "Book Monday."},
    {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function",
         "function": {"name": "book", "arguments": "{\"day\": \"mon\"}"}}]},
    {"role": "tool", "tool_call_id": "call_1", "content": "booked"},
    {"role": "user", "content": 'And Tuesday. [[tool:book:{"day": "tue"}]]'},
]


def full_request(**changes: Any) -> ChatRequest:
    """One request with every field the issue names set."""
    extra = {"parallel_tool_calls": False, "reasoning_effort": "high"}
    extra.update(changes.pop("extra", {}))
    fields: dict[str, Any] = dict(
        messages=copy.deepcopy(MESSAGES), tools=copy.deepcopy(TOOLS),
        tool_choice={"type": "function", "function": {"name": "book"}},
        response_format={"type": "json_schema",
                         "json_schema": {"name": "booking", "strict": True, "schema": SCHEMA}},
        stop=["END"], seed=7, temperature=0.3, top_p=0.9, max_tokens=64, extra=extra)
    fields.update(changes)
    return ChatRequest(**fields)


def _generate(model: Any, request: ChatRequest) -> Any:
    async def go() -> Any:
        try:
            return await model.generate(request)
        finally:
            await model.aclose()

    return asyncio.run(go())


# ---- the parity test ---------------------------------------------------------------------------

EXPECTED_OPENAI = {
    "model": "stub", "messages": MESSAGES, "tools": TOOLS,
    "tool_choice": {"type": "function", "function": {"name": "book"}},
    "response_format": {"type": "json_schema",
                        "json_schema": {"name": "booking", "strict": True, "schema": SCHEMA}},
    "stop": ["END"], "seed": 7, "temperature": 0.3, "top_p": 0.9, "max_tokens": 64,
    "parallel_tool_calls": False, "reasoning_effort": "high",
}

EXPECTED_ANTHROPIC = {  # https://docs.anthropic.com/en/api/messages
    "model": "claude-sonnet-4-6",
    "system": "You book rooms.",
    "messages": [
        {"role": "user", "content": "Book Monday."},
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": "call_1", "name": "book", "input": {"day": "mon"}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "call_1", "content": "booked"},
            {"type": "text", "text": 'And Tuesday. [[tool:book:{"day": "tue"}]]'}]},
    ],
    "tools": [{"name": "book", "description": "Book a room",
               "input_schema": TOOLS[0]["function"]["parameters"]}],
    "tool_choice": {"type": "tool", "name": "book", "disable_parallel_tool_use": True},
    "output_config": {"format": {"type": "json_schema", "schema": SCHEMA}, "effort": "high"},
    "stop_sequences": ["END"], "temperature": 0.3, "top_p": 0.9, "max_tokens": 64,
}


def test_one_request_through_every_provider_compared_field_by_field(
        openai_server: ThreadedApp, anthropic_server: ThreadedApp) -> None:
    pytest.importorskip("openai")
    pytest.importorskip("anthropic")
    bodies: dict[str, dict[str, Any]] = {}
    for client in ("lean", "sdk"):
        model = resolve_model(f"openai:stub?base_url={openai_server.url}/v1&client={client}")
        completion = _generate(model, full_request())
        assert completion.tool_calls[0]["function"]["name"] == "book"  # the stub answered
        bodies[client] = openai_server.stats()["last_request"]
    for client, body in bodies.items():
        for field, expected in EXPECTED_OPENAI.items():
            assert body.get(field) == expected, (client, field)
        assert set(body) == set(EXPECTED_OPENAI), client
    assert bodies["lean"] == bodies["sdk"]

    spec = f"anthropic:claude-sonnet-4-6?base_url={anthropic_server.url}"
    model = resolve_model(spec)
    model._api_key = "test-key"
    # the Messages API has no seed: refused before anything is sent, naming field and model
    with pytest.raises(UserError) as refused:
        map_request(model, full_request())
    assert str(refused.value).startswith(f"--model: {spec}: sampling.seed: ")
    assert "\n" not in str(refused.value)
    assert anthropic_server.stats()["requests"] == 0

    completion = _generate(model, full_request(seed=None))
    body = anthropic_server.stats()["last_request"]
    for field, expected in EXPECTED_ANTHROPIC.items():
        assert body.get(field) == expected, field
    assert set(body) == set(EXPECTED_ANTHROPIC)  # nothing else: no seed, no OpenAI names
    # the forced tool came back as a chat-completions tool call, the thinking as reasoning
    assert completion.finish_reason == "tool_calls"
    assert completion.tool_calls[0]["function"]["name"] == "book"
    assert json.loads(completion.tool_calls[0]["function"]["arguments"]) == {"day": "tue"}
    assert completion.reasoning


def test_the_same_request_on_hf_is_honoured_or_refused_field_by_field(tiny_model: Path) -> None:
    from posttrain.models.hf import HFModel

    model = HFModel(f"hf:{tiny_model}", str(tiny_model), batch_size=2)
    # refused, in FIELD_SUPPORT's order of the fields the request sets
    request = full_request()
    refusals = []
    while True:
        try:
            model.to_wire(request)
            break
        except UnsupportedField as exc:
            refusals.append(exc.field)
            if exc.field in request.extra:
                request.extra.pop(exc.field)
            else:
                setattr(request, exc.field, None)
    assert refusals == ["reasoning_effort", "tool_choice", "parallel_tool_calls"]
    with pytest.raises(UserError, match=rf"^--model: hf:{tiny_model}: sampling\.reasoning_effort: "):
        map_request(model, full_request())
    # what is left is honoured: the format as an instruction, sampling and seed, the length cap
    plan = model.to_wire(request)
    assert plan["instruction"] and '"required": ["day"]' in plan["instruction"]
    assert plan["generate"] == {"max_new_tokens": 64, "do_sample": True, "temperature": 0.3,
                                "top_p": 0.9}
    assert plan["seed"] == 7 and plan["stop"] == ["END"]
    assert plan["template"] == {"tools": TOOLS}


# ---- the table: every field either changes what is sent or is refused -----------------------

#: a value for each field, and what a request needs beside it for the field to matter
SAMPLE_VALUES: dict[str, Any] = {
    "tools": TOOLS, "tool_choice": "none", "parallel_tool_calls": False,
    "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": SCHEMA}},
    "temperature": 0.7, "top_p": 0.5, "top_k": 20, "min_p": 0.1, "max_tokens": 33,
    "max_completion_tokens": 44, "stop": ["END"], "seed": 3, "reasoning_effort": "low",
    "presence_penalty": 0.5, "frequency_penalty": 0.5, "repetition_penalty": 1.2,
    "logit_bias": {"42": 5}, "logprobs": True, "top_logprobs": 2, "service_tier": "auto",
    "verbosity": "low", "user": "u-1", "n": 1, "extra_body": {"custom": 1},
}


def _request(field: str | None, value: Any = None) -> ChatRequest:
    """A plain request with tools and temperature 0.5, and ``field`` set (to ``value``, or its
    sample value)."""
    request = ChatRequest(messages=[{"role": "user", "content": "hi"}], tools=TOOLS,
                          temperature=0.5)
    if field is None:
        return request
    value = SAMPLE_VALUES[field] if value is None else value
    if field in CORE_FIELDS:
        setattr(request, field, value)
    else:
        request.extra[field] = value
    return request


def _without(field: str) -> ChatRequest:
    """The same plain request without ``field`` (tools and temperature removed too)."""
    request = _request(None)
    if field in ("tools", "temperature"):
        setattr(request, field, None)
    return request


class _Named:
    def __init__(self, kind: str) -> None:
        self.name = f"{kind}:some-model"
        self.kind = kind

    def to_wire(self, request: ChatRequest) -> Any:
        return wire(self.kind, request)


def wire(kind: str, request: ChatRequest) -> Any:
    if kind == "openai":
        from posttrain.models.openai_compat import openai_body

        return openai_body(request, "m")
    if kind == "anthropic":
        from posttrain.models.anthropic_model import to_anthropic

        return to_anthropic(request, "m")
    if kind == "hf":
        from posttrain.models.hf import hf_settings

        return hf_settings(request)
    from posttrain.models.vllm_model import vllm_settings

    return vllm_settings(request)


def test_sample_values_cover_every_field() -> None:
    assert set(SAMPLE_VALUES) == set(REQUEST_FIELDS) == set(FIELD_SUPPORT)


@pytest.mark.parametrize("kind", PROVIDER_KINDS)
@pytest.mark.parametrize("field", REQUEST_FIELDS)
def test_a_field_changes_what_is_sent_or_is_refused_with_one_line(kind: str, field: str) -> None:
    default_only = field == "n" or (kind in ("hf", "vllm") and field == "parallel_tool_calls")
    request = _request(field, True if field == "parallel_tool_calls" and default_only else None)
    assert field in set_fields(request)
    if field not in SUPPORTS[kind]:
        with pytest.raises(UserError) as refused:
            map_request(_Named(kind), request)
        message = str(refused.value)
        assert message.startswith(f"--model: {kind}:some-model: {field_label(field)}: ")
        assert FIELD_SUPPORT[field][kind][1] in message and "\n" not in message
        return
    sent = map_request(_Named(kind), request)
    if default_only:
        return  # n: 1 is the only value taken; local models take parallel calls, the default
    assert sent != wire(kind, _without(field)), "the field changed nothing: dropped"


def test_values_a_provider_cannot_honour_are_refused() -> None:
    cases = [
        ("anthropic", "tool_choice", {"type": "allowed_tools"}),
        ("anthropic", "reasoning_effort", "minimal"),
        ("anthropic", "service_tier", "flex"),
        ("anthropic", "response_format", {"type": "regex"}),
        ("anthropic", "n", 2), ("openai", "n", 2), ("hf", "n", 3),
        ("hf", "tool_choice", "required"),
        ("hf", "tool_choice", {"type": "function", "function": {"name": "book"}}),
        ("vllm", "tool_choice", "required"),
    ]
    for kind, field, value in cases:
        request = _request(None)
        if field in ("tool_choice", "response_format"):
            setattr(request, field, value)
        else:
            request.extra[field] = value
        with pytest.raises(UserError, match=rf"^--model: {kind}:some-model: "
                                            rf"{field_label(field)}: "):
            map_request(_Named(kind), request)
    # a non-function tool on Anthropic is refused, not filtered out
    request = ChatRequest(messages=[{"role": "user", "content": "hi"}],
                          tools=[{"type": "web_search"}])
    with pytest.raises(UserError, match="tools: a tool of type 'web_search'"):
        map_request(_Named("anthropic"), request)


def test_anthropic_tool_choice_mapping() -> None:
    from posttrain.models.anthropic_model import to_anthropic

    def choice(value: Any, parallel: Any = None) -> Any:
        extra = {} if parallel is None else {"parallel_tool_calls": parallel}
        body = to_anthropic(ChatRequest(messages=[{"role": "user", "content": "x"}],
                                        tools=TOOLS, tool_choice=value, extra=extra))
        return body.get("tool_choice")

    assert choice("auto") == {"type": "auto"}
    assert choice("none") == {"type": "none"}
    assert choice("required") == {"type": "any"}
    assert choice({"type": "function", "function": {"name": "book"}}) == {"type": "tool",
                                                                           "name": "book"}
    assert choice(None) is None
    assert choice(None, False) == {"type": "auto", "disable_parallel_tool_use": True}
    assert choice("required", False) == {"type": "any", "disable_parallel_tool_use": True}
    assert choice("none", False) == {"type": "none"}
    assert choice("auto", True) == {"type": "auto"}


def test_anthropic_reasoning_effort_and_max_tokens_mapping() -> None:
    from posttrain.models.anthropic_model import DEFAULT_MAX_TOKENS, to_anthropic

    def body(**extra: Any) -> dict[str, Any]:
        return to_anthropic(ChatRequest(messages=[{"role": "user", "content": "x"}],
                                        extra=extra))

    assert body()["max_tokens"] == DEFAULT_MAX_TOKENS == 1024
    assert body(max_completion_tokens=9)["max_tokens"] == 9
    for level in ("low", "medium", "high", "xhigh", "max"):
        assert body(reasoning_effort=level)["output_config"] == {"effort": level}
    assert body(reasoning_effort="none")["thinking"] == {"type": "disabled"}
    assert body(user="u-7")["metadata"] == {"user_id": "u-7"}


def test_anthropic_follows_the_models_capabilities(anthropic_server: ThreadedApp) -> None:
    """A model whose Models API entry says it has no structured outputs gets the schema as a
    system instruction; one without effort levels refuses reasoning_effort before sending."""
    pytest.importorskip("anthropic")
    spec = f"anthropic:claude-3-5-haiku?base_url={anthropic_server.url}"
    model = resolve_model(spec)
    model._api_key = "test-key"
    asyncio.run(model.check())
    with pytest.raises(UserError, match=r"sampling\.reasoning_effort: high: this model does not"):
        map_request(model, full_request(seed=None))
    request = full_request(seed=None, extra={"reasoning_effort": None})
    body = map_request(model, request)
    assert "output_config" not in body
    assert body["system"].startswith("You book rooms.\n\nRespond with only a JSON object")
    assert '"required": ["day"]' in body["system"]


def test_lean_and_sdk_send_fields_the_sdk_has_no_keyword_for(openai_server: ThreadedApp) -> None:
    """``top_k``, ``min_p``, ``repetition_penalty`` (vLLM's server reads them) and
    ``extra_body``: the SDK client used to fail with ``unexpected keyword argument 'top_k'``
    and the lean client sent ``extra_body`` as a field of its own."""
    pytest.importorskip("openai")
    extra = {"top_k": 5, "min_p": 0.05, "repetition_penalty": 1.1,
             "extra_body": {"chat_template_kwargs": {"enable_thinking": False}}}
    bodies = []
    for client in ("lean", "sdk"):
        model = resolve_model(f"openai:stub?base_url={openai_server.url}/v1&client={client}")
        _generate(model, ChatRequest(messages=[{"role": "user", "content": "hi"}],
                                     extra=dict(extra)))
        bodies.append(openai_server.stats()["last_request"])
    assert bodies[0] == bodies[1]
    assert bodies[0]["top_k"] == 5 and bodies[0]["min_p"] == 0.05
    assert bodies[0]["chat_template_kwargs"] == {"enable_thinking": False}
    assert "extra_body" not in bodies[0]


# ---- the examples, end to end ---------------------------------------------------------

def _tool_eval(tmp_path: Path, sampling: str, tool_choice: str = "") -> Path:
    rows = [{"id": "t1", "question": 'book it [[tool:book:{"day": "mon"}]] [[answer:ok]]',
             "answer": "book"},
            {"id": "t2", "question": "no directive, the choice forces the call [[answer:ok]]",
             "answer": "book"}]
    graders = ('  - {type: string_check, name: tool, '
               'input: "{{sample.output_tools[0].function.name}}", '
               'reference: "{{item.answer}}", operation: eq}\n')
    extra = ("tools:\n  - {type: function, function: {name: book, description: Book a day, "
             "parameters: {type: object, properties: {day: {type: string}}}}}\n"
             + tool_choice + sampling)
    return write_eval(tmp_path / "ev", rows, graders=graders, extra=extra)


def test_forced_tool_choice_reaches_anthropic(anthropic_server: ThreadedApp, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Forced-tool evals no longer silently become auto: the named function is sent."""
    pytest.importorskip("anthropic")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
    path = _tool_eval(tmp_path, "sampling: {temperature: 0, max_tokens: 50, "
                                "parallel_tool_calls: false}\n",
                      "tool_choice: {type: function, function: {name: book}}\n")
    code = main(["eval", str(path), "--model",
                 f"anthropic:claude-sonnet-4-6?base_url={anthropic_server.url}",
                 "--store", str(tmp_path / "s.db"), "--json"])
    out = capsys.readouterr()
    assert code == 0, out.err
    run = json.loads(out.out)["runs"][0]
    assert run["score"] == 1.0 and run["errors"] == 0
    sent = anthropic_server.stats()["last_request"]
    assert sent["tool_choice"] == {"type": "tool", "name": "book",
                                   "disable_parallel_tool_use": True}
    assert sent["temperature"] == 0 and sent["max_tokens"] == 50


def test_temperature_works_with_the_installed_anthropic_sdk(
        anthropic_server: ThreadedApp, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Every request used to fail with ``unexpected keyword argument 'temperature'`` on the
    SDK ``[all]`` installs (anthropic>=1 has no sampling keywords)."""
    pytest.importorskip("anthropic")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
    path = write_eval(tmp_path / "ev", [{"id": "a", "question": "Capital? [[answer:Paris]]",
                                         "answer": "Paris"}],
                      extra="sampling: {temperature: 0.2, top_p: 0.8, top_k: 40, "
                            "stop: [STOP]}\n")
    code = main(["eval", str(path), "--model",
                 f"anthropic:claude-sonnet-4-6?base_url={anthropic_server.url}",
                 "--store", str(tmp_path / "s.db"), "--json"])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert json.loads(out.out)["runs"][0]["score"] == 1.0
    sent = anthropic_server.stats()["last_request"]
    assert (sent["temperature"], sent["top_p"], sent["top_k"]) == (0.2, 0.8, 40)
    assert sent["stop_sequences"] == ["STOP"]


def test_a_field_anthropic_has_no_form_for_stops_the_run_before_any_request(
        anthropic_server: ThreadedApp, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("anthropic")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "test-key")
    path = write_eval(tmp_path / "ev", [{"id": "a", "question": "q", "answer": "a"}],
                      extra="sampling: {temperature: 0, seed: 1}\n")
    spec = f"anthropic:claude-sonnet-4-6?base_url={anthropic_server.url}"
    code = main(["eval", str(path), "--model", spec, "--store", str(tmp_path / "s.db")])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.splitlines() == [f"posttrain: error: --model: {spec}: sampling.seed: "
                                f"{FIELD_SUPPORT['seed']['anthropic'][1]}"]
    assert anthropic_server.stats()["requests"] == 0


def test_a_forced_tool_on_a_local_model_stops_the_run(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("transformers")
    folder = tmp_path / "weights"
    folder.mkdir()  # what the set-up check looks for (config, weights, tokenizer); never loaded
    (folder / "config.json").write_text('{"model_type": "qwen2"}')
    (folder / "model.safetensors").write_bytes(b"")
    (folder / "tokenizer.json").write_text("{}")
    path = _tool_eval(tmp_path, "", "tool_choice: required\n")
    code = main(["eval", str(path), "--model", f"hf:{folder}", "--store",
                 str(tmp_path / "s.db")])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err == (f"posttrain: error: --model: hf:{folder}: tool_choice: 'required': a local "
                   "model cannot be forced to call a tool (auto and none work)")


# ---- hf: a tiny local model honours what it takes ---------------------------------------------

@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("transformers")
    from posttrain.train.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model", task=None)


def test_hf_honours_length_seed_and_stop(tiny_model: Path) -> None:
    from posttrain.models.hf import HFModel

    model = HFModel("hf:tiny", str(tiny_model), batch_size=4)
    messages = [{"role": "user", "content": "1 + 2 ="}]

    def run(**fields: Any) -> Any:
        extra = fields.pop("extra", {})
        return model.generate_batch([ChatRequest(messages=messages, extra=extra, **fields)])[0]

    assert run(max_tokens=3).output_tokens <= 3
    assert run(extra={"max_completion_tokens": 2}).output_tokens <= 2
    first = run(temperature=1.0, seed=11, max_tokens=24)
    assert run(temperature=1.0, seed=11, max_tokens=24).text == first.text  # seeded
    assert run(temperature=1.0, seed=12, max_tokens=24).text != first.text
    greedy = run(max_tokens=24)
    assert greedy.text == run(max_tokens=24, seed=99).text  # greedy: the seed cannot matter
    cut = greedy.text[len(greedy.text) // 2:][:3]
    assert cut.strip()
    stopped = run(max_tokens=24, stop=[cut])
    assert stopped.text == greedy.text[: greedy.text.index(cut)]
    assert stopped.finish_reason == "stop"
    assert run(max_tokens=24, extra={"repetition_penalty": 3.0}).text != greedy.text


def test_hf_refuses_in_generate_too(tiny_model: Path) -> None:
    """A request that reaches ``generate`` without the preflight (a judge's) fails as that
    sample's error, never answered with the field dropped."""
    from posttrain.models.hf import HFModel

    model = HFModel("hf:tiny", str(tiny_model))
    with pytest.raises(UnsupportedField, match="reasoning_effort"):
        asyncio.run(model.generate(ChatRequest(messages=[{"role": "user", "content": "x"}],
                                               extra={"reasoning_effort": "low"})))


# ---- the table is the documentation -----------------------------------------------------------

def test_readme_shows_the_field_support_table() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert support_table() in readme


def test_every_sampling_key_an_eval_takes_is_in_the_table() -> None:
    from posttrain.eval import SAMPLING_FIELDS

    assert set(SAMPLING_FIELDS) <= set(REQUEST_FIELDS)
    assert set(SUPPORTS["openai"]) == set(REQUEST_FIELDS)
