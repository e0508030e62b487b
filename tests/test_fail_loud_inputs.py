"""Fail loud before spending, second pass (issue 12): inputs a new user gets slightly wrong stop
the run with one line naming the file, line and field or the model spec, exit 2, before any
request is sent; and what is read is read as written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from posttrain.cli import main
from posttrain.errors import UserError
from posttrain.models import api_key_for, build_model, load_models_file, model_config
from tests.conftest import StubServer, write_eval

ROWS = [{"id": "a", "question": "[[answer:Paris]]", "answer": "Paris"},
        {"id": "b", "question": "[[answer:Rome]]", "answer": "Rome"}]


def one_line(code: int, capsys: pytest.CaptureFixture[str], expected: int = 2) -> str:
    err = capsys.readouterr().err
    assert code == expected, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]


def run_eval(path: Path, *argv: str) -> int:
    return main(["eval", str(path), "--store", str(path.parent / "s.db"), "--no-progress",
                 *argv])


# ---- A2, B1, B3: model specs and models files ------------------------------------------------
def test_misspelled_spec_options_are_refused_before_any_request(
        tmp_path: Path, stub_server: StubServer, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", stub_server.base_url)  # where a typo used to go
    path = write_eval(tmp_path / "e", ROWS)
    line = one_line(run_eval(path, "--model", "openai:stub?baseurl=http://127.0.0.1:9/v1"
                                              "&clinet=sdk&concurency=2"), capsys)
    assert "unknown openai option 'baseurl'; did you mean 'base_url'?" in line
    for spec, message in [
            ("openai:stub?client=sdk&clinet=lean", "did you mean 'client'?"),
            ("openai:stub?concurency=2", "did you mean 'concurrency'?"),
            ("openai:stub?concurrency=abc", "concurrency: must be a whole number of at least 1,"
                                            " got 'abc'"),
            ("openai:stub?concurrency=0", "must be a whole number of at least 1"),
            ("openai:stub?client=fast", "client: must be `lean` or `sdk`"),
            ("openai:stub?cache_fingerprint=maybe", "must be true or false"),
            ("openai:stub?client=sdk&client=lean", "option 'client' is given twice"),
            ("openai:stub?gguf=x.gguf", "only hf: takes it"),
            ("anthropic:claude?client=sdk", "only openai: takes it"),
            ("hf:some/model?batch_size=abc", "batch_size: must be a whole number"),
            ("hf:some/model?batchsize=4", "did you mean 'batch_size'?"),
            ("vllm:/models/x?tensor_parallel=2", "did you mean 'tensor_parallel_size'?"),
            ("vllm:/models/x?gpu_memory_utilization=1.5", "above 0 and at most 1")]:
        line = one_line(run_eval(path, "--model", spec), capsys)
        assert line.startswith(f"posttrain: error: --model: {spec}: ") and message in line, line
    assert stub_server.stats()["total_attempts"] == 0


@pytest.mark.parametrize(("url", "message"), [
    ("localhost:8000/v1", "'localhost:8000/v1' is not an http(s) URL; write "
                          "http://localhost:8000/v1"),
    ("127.0.0.1:8000", "is not an http(s) URL"),
    ("ftp://127.0.0.1/v1", "is not an http(s) URL"),
    ("http://127.0.0.1:99999/v1", "has no valid port (1 to 65535)"),
    ("http://127.0.0.1:port/v1", "has no valid port"),
    ("http:///v1", "has no host"),
])
def test_base_urls_are_checked_when_read(tmp_path: Path, url: str, message: str,
                                         capsys: pytest.CaptureFixture[str],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_eval(tmp_path / "e", ROWS)
    line = one_line(run_eval(path, "--model", f"openai:m?base_url={url}"), capsys)
    assert "base_url: " in line and message in line, line
    models = tmp_path / "models.yaml"
    models.write_text(f"models:\n  m:\n    provider: openai\n    base_url: '{url}'\n")
    line = one_line(run_eval(path, "--model", "m", "--models-file", str(models)), capsys)
    assert f"{models}:4: models.m.base_url: " in line and message in line, line
    monkeypatch.setenv("OPENAI_BASE_URL", url)
    line = one_line(run_eval(path, "--model", "openai:m"), capsys)
    assert "openai:m: OPENAI_BASE_URL: " in line and message in line, line


def test_models_file_keys_are_checked_with_their_line(tmp_path: Path) -> None:
    models = tmp_path / "models.yaml"
    for entry, where, message in [
            ("provider: openai\n    model: m\n    base_ur: http://127.0.0.1:1/v1\n",
             ":5: models.x.base_ur", "did you mean 'base_url'?"),
            ("provider: openai\n    max_concurency: 4\n", ":4: models.x.max_concurency",
             "did you mean 'max_concurrency'?"),
            ("provider: hf\n    model: /m\n    batch_size: big\n", ":5: models.x.batch_size",
             "must be a whole number of at least 1, got 'big'"),
            ("provider: hf\n    model: /m\n    base_url: http://127.0.0.1:1/v1\n",
             ":5: models.x.base_url", "only openai:, anthropic: takes it"),
            ("provider: anthropic\n    client: sdk\n", ":4: models.x.client",
             "only openai: takes it"),
            ("provider: openai\n    api_key_env: sk-live-123\n", ":4: models.x.api_key_env",
             "must be the name of an environment variable")]:
        models.write_text("models:\n  x:\n    " + entry)
        with pytest.raises(UserError) as info:
            load_models_file(models)
        assert f"{models}{where}: " in str(info.value) and message in str(info.value)
    models.write_text("models:\n  x: {provider: hf, model: /m, batch_size: 4, gguf: f.gguf}\n"
                      "  v: {provider: vllm, model: /m, tensor_parallel_size: 2}\n")
    configs = load_models_file(models)
    assert configs["x"].options == {"batch_size": 4, "gguf": "f.gguf"}
    assert configs["v"].options == {"tensor_parallel_size": 2}


# ---- A11 and where a key goes ----------------------------------------------------------------
def test_models_file_entries_read_the_provider_environment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:7/v1")
    models = tmp_path / "models.yaml"
    models.write_text("models:\n  plain: {provider: openai, model: m}\n"
                      "  named: {provider: openai, model: m, api_key_env: OTHER_KEY}\n"
                      "  there: {provider: openai, model: m, base_url: 'https://llm.example.com/v1'}\n")
    configs = load_models_file(models)
    plain = configs["plain"]
    assert plain.base_url == "http://127.0.0.1:7/v1" and plain.api_key_env == "OPENAI_API_KEY"
    assert api_key_for(plain) == ("sk-env", None)
    assert build_model(plain)._api_key == "sk-env"
    assert configs["named"].api_key_env == "OTHER_KEY"
    assert api_key_for(configs["named"]) == (None, None)  # OTHER_KEY is not set
    # a base URL written in the file, on another host: the OpenAI key is not sent there
    assert api_key_for(configs["there"]) == (None, "OPENAI_API_KEY")


def test_the_key_goes_where_the_user_expects(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    assert api_key_for(model_config("openai:gpt-4.1-mini")) == ("sk-env", None)
    assert api_key_for(model_config("openai:m?base_url=https://api.openai.com/v1"))[0] == "sk-env"
    assert api_key_for(model_config("openai:m?base_url=http://127.0.0.1:8000/v1"))[0] == "sk-env"
    assert api_key_for(model_config("openai:m?base_url=http://gpu-box:8000/v1"))[0] == "sk-env"
    third = "openai:m?base_url=https://llm.example.com/v1"
    assert api_key_for(model_config(third)) == (None, "OPENAI_API_KEY")
    assert api_key_for(model_config(third + "&api_key_env=OPENAI_API_KEY")) == ("sk-env", None)
    monkeypatch.setenv("OPENAI_BASE_URL", "https://llm.example.com/v1")  # paired by the user
    assert api_key_for(model_config("openai:m")) == ("sk-env", None)
    monkeypatch.setenv("OPENAI_API_KEY", "  \n")  # only spaces: unset
    assert api_key_for(model_config("openai:m")) == (None, None)


def test_whitespace_key_is_unset_and_a_withheld_key_is_named(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "   ")
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    path = write_eval(tmp_path / "e", ROWS)
    line = one_line(run_eval(path, "--model", "openai:gpt-4.1-mini"), capsys)
    assert "OPENAI_API_KEY is not set" in line
    server = StubServer(0.0, "--api-key", "sk-right")
    try:  # a third-party host the key was withheld from (api_key_for) answers 401
        import asyncio

        from posttrain.models.openai_compat import LeanOpenAIModel

        model = LeanOpenAIModel("openai:stub?base_url=...", "stub", base_url=server.base_url,
                                api_key=None, withheld_key="OPENAI_API_KEY")
        with pytest.raises(UserError) as info:
            asyncio.run(model.check())
        assert "refused the credentials (HTTP 401" in str(info.value)
        assert "no key was sent: OPENAI_API_KEY goes only to" in str(info.value)
        assert "api_key_env=OPENAI_API_KEY" in str(info.value)
        assert server.stats()["total_attempts"] == 0
    finally:
        server.close()


# ---- C6: what the endpoint check says ---------------------------------------------------------
class OddServer:
    """A server that misbehaves in one way (``mode``), on 127.0.0.1 in a thread."""

    def __init__(self, mode: str) -> None:
        import asyncio
        import threading

        from aiohttp import web

        self.chat = 0

        async def models(_request: web.Request) -> web.StreamResponse:
            if mode == "hang":
                await asyncio.sleep(30)
            if mode == "redirect":
                raise web.HTTPFound("http://127.0.0.1:9/v1/models")
            return web.json_response({"error": "not found"}, status=404)

        async def chat(_request: web.Request) -> web.StreamResponse:
            self.chat += 1
            return web.Response(status=404, text="404: Not Found")

        self.loop = asyncio.new_event_loop()
        app = web.Application()
        app.router.add_get("/v1/models", models)
        app.router.add_get("/models", models)
        app.router.add_post("/chat/completions", chat)
        runner = web.AppRunner(app, access_log=None)
        self.loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        self.loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        threading.Thread(target=self.loop.run_forever, daemon=True).start()

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)


@pytest.mark.parametrize(("mode", "path", "message"), [
    ("hang", "/v1", "connected to http://127.0.0.1:{port}/v1, but GET /models did not answer "
                    "within 1 s"),
    ("redirect", "/v1", "/v1/models redirected to 127.0.0.1:9, which cannot be reached "
                        "(connection refused"),
    ("notfound", "", "does the base URL need /v1? (e.g. http://127.0.0.1:{port}/v1)"),
])
def test_endpoint_check_says_what_went_wrong(mode: str, path: str, message: str) -> None:
    import asyncio

    from posttrain.models.openai_compat import LeanOpenAIModel

    server = OddServer(mode)
    try:
        url = f"http://127.0.0.1:{server.port}{path}"
        model = LeanOpenAIModel(f"openai:m?base_url={url}", "m", base_url=url, timeout_s=1.0)
        with pytest.raises(UserError) as info:
            asyncio.run(model.check())
        assert message.format(port=server.port) in str(info.value), str(info.value)
    finally:
        server.close()


# ---- B2: Anthropic at a base URL without a key -----------------------------------------------
def test_anthropic_base_url_without_a_key_runs(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("anthropic")
    from tests.endpoint_stub import Endpoint

    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    endpoint = Endpoint()
    endpoint.state["anthropic_resolved"] = "claude-x"
    path = write_eval(tmp_path / "e", ROWS[:1])
    try:
        code = run_eval(path, "--model",
                        f"anthropic:claude-x?base_url={endpoint.anthropic_url}", "--json")
    finally:
        endpoint.close()
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "Traceback" not in err and endpoint.chat_requests == 1
    assert json.loads(out)["runs"][0]["answered"] == 1
