"""Model specs, the models file, pricing, tool-call pass-through and the Anthropic client path."""

from __future__ import annotations

import asyncio
import json

import pytest
from aiohttp import web

from posttrain.cli import main
from posttrain.errors import UserError
from posttrain.models import load_models_file, model_config, resolve_model
from posttrain.models.openai_compat import parse_retry_after
from posttrain.models.pricing import default_price
from posttrain.models.retry import RetryPolicy
from posttrain.types import ChatRequest
from tests.conftest import write_eval


def test_spec_parsing_and_env(monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    config = model_config("openai:gpt-4.1-mini?client=sdk&concurrency=3")
    assert config.provider == "openai" and config.model == "gpt-4.1-mini"
    assert config.client == "sdk" and config.max_concurrency == 3
    assert config.base_url == "http://127.0.0.1:9/v1"
    assert config.price is not None and config.price.input == 0.40
    assert model_config("hf:/some/dir").provider == "hf"
    with pytest.raises(UserError, match="unknown model"):
        model_config("gpt-4o")


def test_default_price_prefix_match():
    assert default_price("gpt-4.1-mini-2025-04-14").output == 1.60
    assert default_price("gpt-4.1-2025-04-14").input == 2.00
    assert default_price("my-local-model") is None


def test_retry_after_forms():
    assert parse_retry_after("2") == 2.0
    assert parse_retry_after("0.25") == 0.25
    assert parse_retry_after(None) is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past
    assert RetryPolicy(backoff_base_s=0.1).delay(1, 5.0, __import__("random").Random(0)) == 5.0


def test_models_file_errors_name_the_field(tmp_path):
    path = tmp_path / "models.yaml"
    path.write_text("models:\n  a: {provider: openai, model: x, api_key: sk-oops}\n")
    with pytest.raises(UserError) as info:
        load_models_file(path)
    assert info.value.field == "models.a.api_key"
    path.write_text("models:\n  a: {provider: nope}\n")
    with pytest.raises(UserError, match="unknown provider"):
        load_models_file(path)


def test_named_endpoints_compare_with_prices_and_tools(tmp_path, stub_server, capsys, monkeypatch):
    monkeypatch.setenv("STUB_KEY", "sk-live-abcdef123456")
    models = tmp_path / "models.yaml"
    models.write_text(
        "models:\n"
        f"  cheap: {{provider: openai, model: small, base_url: '{stub_server.base_url}', "
        "api_key_env: STUB_KEY, price: {input: 1.0, output: 2.0}, max_concurrency: 2}\n"
        f"  pricey: {{provider: openai, model: big, base_url: '{stub_server.base_url}', "
        "price: {input: 10.0, output: 20.0}}\n")
    rows = [{"id": "t1", "question": 'book it [[tool:book:{"day": "mon"}]]', "answer": "book",
             "category": "tools"}]
    graders = ('  - {type: string_check, name: tool, input: "{{sample.output_tools[0].function.name}}",'
               ' reference: "{{item.answer}}", operation: eq}\n')
    tools = ("tools:\n  - {type: function, function: {name: book, description: Book a day, "
             "parameters: {type: object, properties: {day: {type: string}}}}}\n")
    eval_path = write_eval(tmp_path / "ev", rows, graders=graders, extra=tools)
    code = main(["eval", str(eval_path), "--model", "cheap", "--model", "pricey", "--models-file",
                 str(models), "--store", str(tmp_path / "s.db"), "--json"])
    assert code == 0
    runs = json.loads(capsys.readouterr().out)["runs"]
    assert [r["model"] for r in runs] == ["cheap", "pricey"]
    assert all(r["score"] == 1.0 for r in runs)  # the tool call came back through output_tools
    assert runs[1]["cost_usd"] == pytest.approx(runs[0]["cost_usd"] * 10)
    stats = stub_server.stats()
    assert stats["last_request"]["tools"][0]["function"]["name"] == "book"
    db = (tmp_path / "s.db").read_bytes()
    assert b"sk-live-abcdef123456" not in db


async def _anthropic_stub(received: list[dict]) -> web.AppRunner:
    async def messages(request: web.Request) -> web.Response:
        body = await request.json()
        received.append(body)
        if body.get("tools"):
            content = [{"type": "tool_use", "id": "tu_1", "name": body["tools"][0]["name"],
                        "input": {"day": "mon"}}]
            stop = "tool_use"
        else:
            content = [{"type": "text", "text": "Paris"}]
            stop = "end_turn"
        return web.json_response({
            "id": "msg_1", "type": "message", "role": "assistant", "model": body["model"],
            "content": content, "stop_reason": stop, "stop_sequence": None,
            "usage": {"input_tokens": 11, "output_tokens": 3}})

    app = web.Application()
    app.router.add_post("/v1/messages", messages)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner


def test_anthropic_sdk_translation_round_trip():
    pytest.importorskip("anthropic")

    async def go() -> None:
        received: list[dict] = []
        runner = await _anthropic_stub(received)
        port = runner.addresses[0][1]
        model = resolve_model(f"anthropic:claude-sonnet-4?base_url=http://127.0.0.1:{port}")
        model._api_key = "test-key"
        plain = await model.generate(ChatRequest(messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Capital of France?"}], max_tokens=20))
        assert plain.text == "Paris" and plain.input_tokens == 11
        assert plain.cost_usd == pytest.approx((11 * 3.0 + 3 * 15.0) / 1e6)
        assert received[0]["system"] == "Be brief."
        tools = [{"type": "function", "function": {"name": "book", "parameters": {
            "type": "object", "properties": {"day": {"type": "string"}}}}}]
        called = await model.generate(ChatRequest(messages=[
            {"role": "user", "content": "book"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "c0", "type": "function", "function": {"name": "book", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c0", "content": "error 500"},
        ], tools=tools))
        assert called.finish_reason == "tool_calls"
        assert called.tool_calls[0]["function"]["name"] == "book"
        assert json.loads(called.tool_calls[0]["function"]["arguments"]) == {"day": "mon"}
        sent = received[1]["messages"]
        assert sent[1]["content"][0]["type"] == "tool_use"
        assert sent[2]["content"][0]["type"] == "tool_result"
        await model.aclose()
        await runner.cleanup()

    asyncio.run(go())


def test_response_format_becomes_an_instruction_where_not_native():
    from posttrain.models.anthropic_model import to_anthropic
    from posttrain.models.base import response_format_instruction

    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    fmt = {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}
    text = response_format_instruction(fmt)
    assert text is not None and '"required": ["city"]' in text
    assert response_format_instruction({"type": "text"}) is None
    # Anthropic: structured outputs natively, the instruction where the model has none
    request = ChatRequest(messages=[{"role": "user", "content": "hi"}], response_format=fmt)
    body = to_anthropic(request)
    assert body["output_config"] == {"format": {"type": "json_schema", "schema": schema}}
    assert "system" not in body
    body = to_anthropic(request, capabilities={"structured_outputs": {"supported": False}})
    assert body["system"] == text and "output_config" not in body
    body = to_anthropic(ChatRequest(messages=[{"role": "user", "content": "hi"}],
                                    response_format={"type": "json_object"}))
    assert body["system"] == "Respond with only a JSON object."


def test_an_attempt_is_timed_once_by_the_clients_own_timer_or_by_the_retry_loop():
    """The lean client's total timeout bounds a whole attempt (connect to body), so the retry
    loop adds no second timer when its own limit is no shorter; when the attempt's limit is
    shorter (a smaller ``--timeout`` for the loop, or the deadline nearly spent) the loop
    still times it."""
    import asyncio
    import time

    from posttrain.models.openai_compat import LeanOpenAIModel
    from posttrain.models.retry import RetriesExhausted, call_with_retries
    from tests.conftest import StubServer

    server = StubServer(30.0)  # answers after 30 s: hangs, as far as these calls go
    try:
        model = LeanOpenAIModel("stub", "stub", base_url=server.base_url, timeout_s=0.3)
        assert model.own_timeout_s == 0.3

        async def attempt(policy: RetryPolicy, own: float | None) -> tuple[str, float]:
            started = time.monotonic()
            try:
                await call_with_retries(lambda: model.generate(_request()), policy,
                                        own_timeout_s=own)
            except RetriesExhausted as exc:
                return str(exc), time.monotonic() - started
            finally:
                await model.aclose()
            raise AssertionError("a hung endpoint answered")

        # the client's own timer ends the attempt: its error, within its limit
        reason, took = asyncio.run(attempt(RetryPolicy(max_retries=0, timeout_s=0.3), 0.3))
        assert reason.startswith("timed out after 0.3 s") and took < 2.0
        # the loop's limit is shorter than the client's: the loop times it
        model.timeout_s = model.own_timeout_s = 30.0
        reason, took = asyncio.run(attempt(RetryPolicy(max_retries=0, timeout_s=0.2), 30.0))
        assert reason.startswith("timed out after 0.2 s") and took < 2.0
        # the deadline leaves less than either: still timed, at the deadline
        reason, took = asyncio.run(attempt(
            RetryPolicy(max_retries=0, timeout_s=30.0, deadline_s=0.25), 30.0))
        assert "timed out" in reason and took < 2.0
    finally:
        server.close()


def _request() -> ChatRequest:
    return ChatRequest(messages=[{"role": "user", "content": "hi"}])
