"""Cost that matches the bill: prompt-cache reads and writes and reasoning tokens, per provider,
priced by one formula, shown in the report, and used by ``pick``."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest

from posttrain.cli import main
from posttrain.errors import UserError
from posttrain.models import load_models_file, resolve_model
from posttrain.models.base import Price
from posttrain.models.openai_compat import completion_from_body, usage_from_openai
from posttrain.models.pricing import default_price
from posttrain.types import ChatRequest, Completion
from tests.conftest import write_eval
from tests.endpoint_stub import Endpoint, anthropic_body, openai_body

# what OpenAI returns for o4-mini when 1,920 of 2,048 prompt tokens came from the prompt cache
# and 512 of 600 completion tokens were reasoning (shape of the API reference's example)
O4_MINI_USAGE = {
    "prompt_tokens": 2048, "completion_tokens": 600, "total_tokens": 2648,
    "prompt_tokens_details": {"cached_tokens": 1920, "audio_tokens": 0},
    "completion_tokens_details": {"reasoning_tokens": 512, "audio_tokens": 0,
                                  "accepted_prediction_tokens": 0,
                                  "rejected_prediction_tokens": 0},
}
# Anthropic: ``input_tokens`` excludes the tokens read from and written to the prompt cache
SONNET_USAGE = {"input_tokens": 50, "cache_read_input_tokens": 2000,
                "cache_creation_input_tokens": 1000, "output_tokens": 300,
                "cache_creation": {"ephemeral_5m_input_tokens": 1000,
                                   "ephemeral_1h_input_tokens": 0},
                "service_tier": "standard"}


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    server = Endpoint()
    yield server
    server.close()


def test_openai_cached_and_reasoning_tokens_are_read_and_priced():
    openai = pytest.importorskip("openai")
    body = openai_body(model="o4-mini-2025-04-16", text="42", usage=O4_MINI_USAGE,
                       fingerprint="fp_35c19d8d2b")
    sdk = openai.types.chat.ChatCompletion.model_validate(body)  # the real response type
    completion = completion_from_body(body, 0.1, default_price("o4-mini"))
    assert completion.input_tokens == sdk.usage.prompt_tokens == 2048
    assert completion.cached_input_tokens == sdk.usage.prompt_tokens_details.cached_tokens
    assert completion.output_tokens == 600  # reasoning is inside completion_tokens: not twice
    assert completion.reasoning_tokens == 512
    assert completion.served_model == "o4-mini-2025-04-16"
    assert completion.fingerprint == "fp_35c19d8d2b"
    # 128 fresh at $1.10, 1,920 cached at $0.275, 600 out at $4.40 per million
    assert completion.cost_usd == pytest.approx((128 * 1.10 + 1920 * 0.275 + 600 * 4.40) / 1e6)


def test_reasoning_reported_beside_completion_tokens_is_billed_as_output():
    # Gemini's OpenAI-compatible bridges: total = prompt + completion + reasoning
    usage = {"prompt_tokens": 20, "completion_tokens": 198, "total_tokens": 623,
             "completion_tokens_details": {"reasoning_tokens": 405}}
    tokens = usage_from_openai(usage)
    assert tokens["output_tokens"] == 603 and tokens["reasoning_tokens"] == 405
    # OpenAI's own convention (reasoning inside completion_tokens) is not counted twice
    assert usage_from_openai(O4_MINI_USAGE)["output_tokens"] == 600
    # DeepSeek names its cache hits at the top level
    assert usage_from_openai({"prompt_tokens": 100, "completion_tokens": 5,
                              "prompt_cache_hit_tokens": 64,
                              "prompt_cache_miss_tokens": 36})["cached_input_tokens"] == 64


def test_anthropic_cache_reads_and_writes_are_input_and_priced_at_their_rates():
    anthropic = pytest.importorskip("anthropic")
    from posttrain.models.anthropic_model import from_anthropic

    message = anthropic.types.Message.model_validate(anthropic_body(
        model="claude-sonnet-4-20250514", text="Paris", usage=SONNET_USAGE))
    completion = from_anthropic(message, 0.2, default_price("claude-sonnet-4"))
    assert completion.input_tokens == 3050  # 50 + 2,000 read + 1,000 written
    assert completion.cached_input_tokens == 2000 and completion.cache_write_tokens == 1000
    assert completion.served_model == "claude-sonnet-4-20250514"
    # $3 input, $0.30 cache read (0.1x), $3.75 cache write (1.25x), $15 output per million
    assert completion.cost_usd == pytest.approx(
        (50 * 3.0 + 2000 * 0.30 + 1000 * 3.75 + 300 * 15.0) / 1e6)


def test_price_table_and_formula():
    price = default_price("gpt-4.1-mini-2025-04-14")
    assert (price.input, price.cached_input, price.output) == (0.40, 0.10, 1.60)
    sonnet = default_price("claude-sonnet-4-20250514")
    assert sonnet.cached_input == pytest.approx(0.30) and sonnet.cache_write == pytest.approx(3.75)
    # no cache rates: cached tokens are billed as plain input (never below the bill)
    assert Price(1.0, 2.0).cost(1000, 10, cached_input_tokens=900) == pytest.approx(1020 / 1e6)
    assert Price(1.0, 2.0, cached_input=0.1).cost(1000, 10, cached_input_tokens=900) \
        == pytest.approx((100 + 90 + 20) / 1e6)


def test_models_file_takes_cache_rates_and_names_a_bad_one(tmp_path):
    path = tmp_path / "models.yaml"
    path.write_text("models:\n  m: {provider: openai, model: x, "
                    "price: {input: 1.0, cached_input: 0.25, cache_write: 1.25, output: 4.0}}\n")
    assert load_models_file(path)["m"].price == Price(1.0, 4.0, 0.25, 1.25)
    assert load_models_file(path)["m"].public()["price"]["cached_input"] == 0.25
    path.write_text("models:\n  m: {provider: openai, model: x, "
                    "price: {input: 1.0, cached_inptu: 0.25, output: 4.0}}\n")
    with pytest.raises(UserError, match="cached_inptu") as info:
        load_models_file(path)
    assert info.value.field == "models.m.price"


@pytest.mark.parametrize("client", ["lean", "sdk"])
def test_both_clients_read_the_same_usage_from_a_server(endpoint, client):
    pytest.importorskip("openai")
    endpoint.state["usage"] = O4_MINI_USAGE
    model = resolve_model(f"openai:o4-mini?client={client}&base_url={endpoint.base_url}")

    async def go() -> Completion:
        try:
            return await model.generate(ChatRequest(messages=[{"role": "user", "content": "hi"}]))
        finally:
            await model.aclose()

    completion = asyncio.run(go())
    assert (completion.input_tokens, completion.cached_input_tokens, completion.output_tokens,
            completion.reasoning_tokens) == (2048, 1920, 600, 512)
    assert completion.cost_usd == pytest.approx((128 * 1.10 + 1920 * 0.275 + 600 * 4.40) / 1e6)


def test_anthropic_client_reads_cache_usage_from_a_server(endpoint):
    pytest.importorskip("anthropic")
    endpoint.state["anthropic_usage"] = SONNET_USAGE
    model = resolve_model(f"anthropic:claude-sonnet-4?base_url={endpoint.anthropic_url}")
    model._api_key = "test-key"

    async def go() -> Completion:
        try:
            return await model.generate(ChatRequest(messages=[{"role": "user", "content": "hi"}]))
        finally:
            await model.aclose()

    completion = asyncio.run(go())
    assert (completion.input_tokens, completion.cached_input_tokens,
            completion.cache_write_tokens) == (3050, 2000, 1000)


def test_report_shows_cached_tokens_and_old_records_still_load(endpoint, tmp_path, capsys):
    endpoint.state["usage"] = O4_MINI_USAGE
    eval_path = write_eval(tmp_path / "ev", [
        {"id": "a", "question": "q1", "answer": "Paris", "category": "c"},
        {"id": "b", "question": "q2", "answer": "Paris", "category": "c"}])
    argv = ["eval", str(eval_path), "--model", f"openai:o4-mini?base_url={endpoint.base_url}",
            "--store", str(tmp_path / "s.db"), "--no-progress"]
    assert main(argv + ["--json"]) == 0
    run = json.loads(capsys.readouterr().out)["runs"][0]
    assert run["input_tokens"] == 4096 and run["cached_input_tokens"] == 3840
    assert run["reasoning_tokens"] == 1024 and run["output_tokens"] == 1200
    assert run["cost_usd"] == pytest.approx(2 * (128 * 1.10 + 1920 * 0.275 + 600 * 4.40) / 1e6,
                                            abs=1e-6)
    assert main(["report", "latest", "--store", str(tmp_path / "s.db")]) == 0
    assert "4,096 in (3,840 read from the prompt cache, 0 written to it), 1,200 out " \
           "(1,024 reasoning)" in capsys.readouterr().out
    # a record written before these fields existed still loads (zeros)
    old = Completion.from_record({"text": "x", "input_tokens": 5, "output_tokens": 1})
    assert (old.cached_input_tokens, old.reasoning_tokens, old.served_model) == (0, 0, None)
    assert "cached_input_tokens" not in old.to_record()  # nothing written when there is none


def test_pick_prices_cached_input_at_its_rate(endpoint, tmp_path, capsys):
    """`cachey` lists at $1 input but its prompts come from the provider's cache at $0.10;
    `plain` lists at $0.50 with no cache. The bill makes `cachey` the cheaper one, both on the
    run that paid and on a re-run served from posttrain's cache (priced from stored tokens)."""
    models = tmp_path / "models.yaml"
    models.write_text(
        "models:\n"
        f"  cachey: {{provider: openai, model: cachey, base_url: '{endpoint.base_url}', "
        "price: {input: 1.0, cached_input: 0.1, output: 1.0}}\n"
        f"  plain: {{provider: openai, model: plain, base_url: '{endpoint.base_url}', "
        "price: {input: 0.5, output: 0.5}}\n")
    rows = [{"id": f"i{i}", "question": f"q{i}", "answer": "Paris", "category": "c"}
            for i in range(30)]
    eval_path = write_eval(tmp_path / "ev", rows)
    store = str(tmp_path / "s.db")
    common = ["--models-file", str(models), "--store", store, "--no-progress", "--json"]
    cached_usage = {"prompt_tokens": 1000, "completion_tokens": 10, "total_tokens": 1010,
                    "prompt_tokens_details": {"cached_tokens": 900}}
    endpoint.state["usage"] = cached_usage
    assert main(["eval", str(eval_path), "--model", "cachey", *common]) == 0
    endpoint.state["usage"] = {"prompt_tokens": 1000, "completion_tokens": 10,
                               "total_tokens": 1010}
    assert main(["eval", str(eval_path), "--model", "plain", *common]) == 0
    capsys.readouterr()
    pick_argv = ["pick", str(eval_path), "--bar", "0.5", "--models", "cachey", "plain", "--models-file", str(models), "--store", store, "--json"]
    assert main(pick_argv) == 0
    report = json.loads(capsys.readouterr().out)
    costs = {c["model"]: c["cost_usd_per_item"] for c in report["candidates"]}
    assert costs["cachey"] == pytest.approx((100 * 1.0 + 900 * 0.1 + 10 * 1.0) / 1e6)
    assert costs["plain"] == pytest.approx((1000 * 0.5 + 10 * 0.5) / 1e6)
    assert report["choice"] == "cachey"
    # served from posttrain's cache this time: no stored cost, priced from the stored tokens
    assert main(["eval", str(eval_path), "--model", "cachey", *common]) == 0
    rerun = json.loads(capsys.readouterr().out)["runs"][0]
    assert rerun["requests"] == 0 and rerun["cost_usd"] == 0
    assert main(pick_argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["choice"] == "cachey"
    chosen = next(c for c in report["candidates"] if c["model"] == "cachey")
    assert chosen["run"] == rerun["run_id"]
    assert chosen["cost_usd_per_item"] == pytest.approx((100 + 90 + 10) / 1e6)
