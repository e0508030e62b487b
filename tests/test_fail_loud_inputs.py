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
            if mode.startswith("chat"):  # lists the model; every chat request fails
                return web.json_response({"object": "list", "data": [{"id": "m"}]})
            return web.json_response({"error": "not found"}, status=404)

        async def chat(_request: web.Request) -> web.StreamResponse:
            self.chat += 1
            if mode.startswith("chat"):
                return web.json_response({"error": {"message": "no"}}, status=int(mode[4:]))
            return web.Response(status=404, text="404: Not Found")

        self.loop = asyncio.new_event_loop()
        app = web.Application()
        app.router.add_get("/v1/models", models)
        app.router.add_get("/models", models)
        app.router.add_post("/chat/completions", chat)
        app.router.add_post("/v1/chat/completions", chat)
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


# ---- A3, A5, A6, A7, A8, C4, C5: the eval file ------------------------------------------------
def eval_error(tmp_path: Path, capsys: pytest.CaptureFixture[str], stub_server: StubServer,
               extra: str = "", rows: list[dict] | None = None, *, messages: str | None = None,
               data: str | None = None) -> str:
    path = write_eval(tmp_path / "e", rows or ROWS, extra=extra)
    if messages is not None:
        text = path.read_text().replace(
            'messages:\n  - {role: user, content: "{{item.question}}"}\n', messages)
        path.write_text(text)
    if data is not None:
        (path.parent / "data.jsonl").write_text(data)
    line = one_line(run_eval(path, "--model", f"openai:stub?base_url={stub_server.base_url}"),
                    capsys)
    assert stub_server.stats()["total_attempts"] == 0
    return line


@pytest.mark.parametrize(("messages", "where", "message"), [
    ('messages:\n  - {role: user, contnet: "{{item.question}}"}\n', "eval.yaml:4: "
     "messages[0].contnet", "unknown message field; did you mean 'content'?"),
    ('messages:\n  - {role: usr, content: "{{item.question}}"}\n', "eval.yaml:4: "
     "messages[0].role", "unknown role 'usr'; did you mean 'user'?"),
    ("messages:\n  - {role: user}\n", "messages[0].content", "required"),
    ('messages:\n  - role: user\n    content:\n      - {type: txt, text: "{{item.question}}"}\n',
     "eval.yaml:6: messages[0].content[0].type", "did you mean 'text'?"),
    ('messages:\n  - role: user\n    content:\n      - {type: text, txt: "{{item.question}}"}\n',
     "messages[0].content[0].txt", "did you mean 'text'?"),
    ('messages:\n  - {role: tool, content: "{{item.question}}"}\n', "messages[0].tool_call_id",
     "needs the `tool_call_id`"),
])
def test_message_keys_and_roles_are_checked(tmp_path: Path, stub_server: StubServer,
                                            capsys: pytest.CaptureFixture[str], messages: str,
                                            where: str, message: str) -> None:
    line = eval_error(tmp_path, capsys, stub_server, messages=messages)
    assert where in line and message in line, line


def test_dataset_rows_carrying_messages_are_checked_at_their_line(
        tmp_path: Path, stub_server: StubServer, capsys: pytest.CaptureFixture[str]) -> None:
    good = {"id": "a", "messages": [{"role": "user", "content": "[[answer:x]]"}], "answer": "x"}
    for bad, where, message in [
            ({"role": "usr", "content": "hi"}, "data.jsonl:2: messages[0].role",
             "did you mean 'user'?"),
            ({"role": "user", "contnet": "hi"}, "data.jsonl:2: messages[0].contnet",
             "did you mean 'content'?")]:
        data = json.dumps(good) + "\n" + json.dumps({"id": "b", "messages": [bad]}) + "\n"
        line = eval_error(tmp_path, capsys, stub_server, messages="", data=data)
        assert where in line and message in line, line
    data = json.dumps(good) + "\n" + json.dumps({"id": "c", "answer": "y"}) + "\n"
    line = eval_error(tmp_path, capsys, stub_server, messages="", data=data)
    assert "data.jsonl:2: messages: the eval has no `messages` template" in line, line
    assert "this row has no `messages`" in line
    data = json.dumps(good) + "\n" + json.dumps({"id": "c", "messages": "not a list"}) + "\n"
    line = eval_error(tmp_path, capsys, stub_server, messages="", data=data)
    assert "data.jsonl:2: messages: " in line and "'not a list'" in line


@pytest.mark.parametrize(("extra", "where", "message"), [
    ("sampling: {extra_body: {model: other}}\n", "sampling.extra_body.model",
     "posttrain builds this part of the request itself"),
    ("sampling: {extra_body: {messages: []}}\n", "sampling.extra_body.messages", "itself"),
    ("sampling: {extra_body: {n: 3}}\n", "sampling.extra_body.n", "set it as sampling.n"),
    ("sampling: {extra_body: {stream: true}}\n", "sampling.extra_body.stream", "itself"),
    ("sampling: {extra_body: {tools: []}}\n", "sampling.extra_body.tools", "itself"),
    ("sampling: {extra_body: {temperature: 2}}\n", "sampling.extra_body.temperature",
     "set it as sampling.temperature"),
    ("sampling: {temperature: .nan}\n", "eval.yaml:7: sampling.temperature",
     "must be a finite number, got nan"),
    ("sampling: {top_p: .inf}\n", "sampling.top_p", "must be a finite number"),
    ("sampling: {extra_body: {guided: {w: -.inf}}}\n", "sampling.extra_body.guided.w",
     "finite"),
    ("sampling: {seed: 123456789012345678901234}\n", "sampling.seed", "does not fit in 64 bits"),
    ("sampling: {max_tokens: 1.5}\n", "sampling.max_tokens", "must be an integer, got 1.5"),
    ('sampling: {stop: ["{{item.answer}}"]}\n', "sampling.stop[0]",
     "sampling is not a template"),
    ('variants:\n  v: {sampling: {stop: "{{item.answer}}"}}\n', "variants.v.sampling.stop",
     "sampling is not a template"),
    ("dataset: data.jsonl\nitems: [{id: a, question: q, answer: a}]\n", "items",
     "not both"),
    ("pass_bar: 80\n", "eval.yaml:7: pass_bar", "got 80: write 0.8 for 80%"),
    ("pass_bar: .nan\n", "pass_bar", "must be a number from 0 to 1"),
    ("pass_bar: -0.1\n", "pass_bar", "must be a share from 0 to 1"),
])
def test_sampling_pass_bar_and_sources_are_checked(tmp_path: Path, stub_server: StubServer,
                                                   capsys: pytest.CaptureFixture[str],
                                                   extra: str, where: str, message: str) -> None:
    if extra.startswith("dataset:"):
        path = write_eval(tmp_path / "e", ROWS)
        path.write_text(path.read_text().replace("dataset: data.jsonl\n", extra))
        line = one_line(run_eval(path, "--model", f"openai:stub?base_url={stub_server.base_url}"),
                        capsys)
    else:
        line = eval_error(tmp_path, capsys, stub_server, extra=extra)
    assert where in line and message in line, line


TOOL = "{type: function, function: {name: book, parameters: {type: object}}}"


@pytest.mark.parametrize(("extra", "where", "message"), [
    (f"tools: [{TOOL}]\ntool_choice: requried\n", "tool_choice",
     "got 'requried'; did you mean 'required'?"),
    ("tool_choice: required\n", "tool_choice", "needs `tools` to choose from"),
    (f"tools: [{TOOL}]\ntool_choice: {{type: function, function: {{name: bok}}}}\n",
     "tool_choice", "names no tool: 'bok'; did you mean 'book'?"),
    ("tools: [{type: function, function: {nam: book}}]\n", "tools[0].function.nam",
     "did you mean 'name'?"),
    ("tools: [{type: function, function: {description: d}}]\n", "tools[0].function.name",
     "required"),
    ("tools: [{type: fnction, function: {name: f}}]\n", "tools[0].type",
     "did you mean 'function'?"),
    ("tools: [{type: function, function: {name: f, parameters: [x]}}]\n",
     "tools[0].function.parameters", "JSON schema"),
    ("response_format: {type: jsonobject}\n", "eval.yaml:7: response_format.type",
     "did you mean 'json_object'?"),
    ("response_format: {type: json_schema, json_schema: {schema: {type: object}}}\n",
     "response_format.json_schema.name", "required"),
    ("response_format: {type: json_schema, json_schema: {name: x, shema: {}}}\n",
     "response_format.json_schema.shema", "did you mean 'schema'?"),
    ('response_format: "{{item.fmt}}"\n', "response_format",
     "as the first row renders it: "),
])
def test_tools_tool_choice_and_response_format_shapes(tmp_path: Path, stub_server: StubServer,
                                                      capsys: pytest.CaptureFixture[str],
                                                      extra: str, where: str,
                                                      message: str) -> None:
    rows = [{**row, "fmt": {"type": "json"}} for row in ROWS]
    line = eval_error(tmp_path, capsys, stub_server, extra=extra, rows=rows)
    assert f"{where}: " in line and message in line, line


def test_duplicate_ids_say_when_an_id_came_from_the_line(tmp_path: Path) -> None:
    from posttrain.eval import load_eval

    path = write_eval(tmp_path / "e", [{"question": "q", "answer": "a"},
                                       {"id": "1", "question": "q", "answer": "a"}])
    with pytest.raises(UserError) as info:
        load_eval(path)
    text = str(info.value)
    assert "data.jsonl:2: id: duplicate item id '1' (first on line 1)" in text
    assert "line 1 has no `id`, so its id is its line number" in text


# ---- A4: with several models, one that got nothing fails the run ------------------------------
@pytest.mark.parametrize(("status", "code"), [(500, 1), (400, 2)])
def test_a_model_whose_every_request_failed_fails_the_run(
        tmp_path: Path, stub_server: StubServer, capsys: pytest.CaptureFixture[str],
        status: int, code: int) -> None:
    broken = OddServer(f"chat{status}")
    try:
        path = write_eval(tmp_path / "e", ROWS)
        bad = f"openai:m?base_url=http://127.0.0.1:{broken.port}/v1"
        result = run_eval(path, "--model", f"openai:stub?base_url={stub_server.base_url}",
                          "--model", bad, "--max-retries", "0", "--json")
    finally:
        broken.close()
    out, err = capsys.readouterr()
    assert result == code, err
    runs = json.loads(out)["runs"]
    assert [r["answered"] for r in runs] == [2, 0]  # the first model answered everything
    assert f"posttrain: {bad}: no sample got an answer (error: HTTP {status}" in err


# ---- C3, C4: command-line numbers --------------------------------------------------------------
@pytest.mark.parametrize(("argv", "message"), [
    (("--timeout", "0"), "--timeout: must be a number of seconds above 0, got 0"),
    (("--timeout", "-1"), "--timeout: must be a number of seconds above 0"),
    (("--deadline", "0"), "--deadline: must be a number of seconds above 0"),
    (("--deadline", "-3"), "--deadline: must be a number of seconds above 0"),
    (("--timeout", "nan"), "--timeout: must be a number of seconds above 0"),
    (("--fail-under", "80"), "--fail-under: must be a share from 0 to 1, got 80: write 0.8 "
                             "for 80%"),
    (("--fail-under", "-0.5"), "--fail-under: must be a share from 0 to 1"),
])
def test_command_line_numbers_are_checked(tmp_path: Path, stub_server: StubServer,
                                          capsys: pytest.CaptureFixture[str],
                                          argv: tuple[str, ...], message: str) -> None:
    path = write_eval(tmp_path / "e", ROWS)
    line = one_line(run_eval(path, "--model", f"openai:stub?base_url={stub_server.base_url}",
                             *argv), capsys)
    assert message in line, line
    assert stub_server.stats()["total_attempts"] == 0


# ---- A9: CSV rows and columns ------------------------------------------------------------------
@pytest.mark.parametrize(("text", "where", "message"), [
    ("id,question,answer\na,q1,x\nb,q2\n", "data.csv:3: ", "2 fields, the header has 3"),
    ("id,question,answer\na,q1,x\nc,q3,z,EXTRA\n", "data.csv:3: ", "4 fields, the header has 3"),
    ('id,question,answer\na,"two\nlines",x\nb,q\n', "data.csv:4: ", "2 fields, the header has 3"),
    ("id,question,answer,answer\na,q1,x,y\n", "data.csv:1: ", "duplicate column 'answer' "
                                                              "(columns 3 and 4)"),
    ("id,question,,answer\na,q1,,x\n", "data.csv:1: ", "column 3 has no name in the header"),
])
def test_ragged_csv_rows_and_duplicate_columns(tmp_path: Path, text: str, where: str,
                                               message: str) -> None:
    from posttrain.loaders.datasets import load_rows

    path = tmp_path / "data.csv"
    path.write_text(text)
    with pytest.raises(UserError) as info:
        load_rows(path)
    assert str(info.value) == f"{path}:{where.split(':')[1]}: {message}"


def test_semicolon_csv_is_read_as_written(tmp_path: Path) -> None:
    from posttrain.loaders.datasets import load_rows

    path = tmp_path / "data.csv"
    path.write_bytes("\ufeffid;question;answer\na;Café?;1,5\n".encode())
    assert load_rows(path) == [(2, {"id": "a", "question": "Café?", "answer": "1,5"})]


# ---- A10/B5: integers beyond 64 bits ----------------------------------------------------------
BIG = 12345678901234567890123


@pytest.mark.parametrize("kind", ["jsonl", "json", "yaml", "items"])
def test_big_integers_keep_their_text_and_the_run_stores(tmp_path: Path, stub_server: StubServer,
                                                         capsys: pytest.CaptureFixture[str],
                                                         kind: str) -> None:
    from posttrain.eval import load_eval
    from posttrain.runner.store import Store

    folder = tmp_path / "e"
    row = {"id": "a", "question": f"[[answer:{BIG}]]", "answer": BIG, "huge": 1}
    path = write_eval(folder, [row])
    text = json.dumps(row).replace('"huge": 1', '"huge": 1e400')
    if kind == "jsonl":
        (folder / "data.jsonl").write_text(text + "\n")
    elif kind == "json":
        (folder / "data.json").write_text(f"[{text}]")
        path.write_text(path.read_text().replace("data.jsonl", "data.json"))
    elif kind == "yaml":
        (folder / "data.yaml").write_text(f"- {text}\n")
        path.write_text(path.read_text().replace("data.jsonl", "data.yaml"))
    else:
        path.write_text(path.read_text().replace("dataset: data.jsonl\n",
                                                 f"items:\n  - {text}\n"))
    data = load_eval(path).items[0].data
    assert data["answer"] == str(BIG) and data["huge"] == "1e400"
    code = run_eval(path, "--model", f"openai:stub?base_url={stub_server.base_url}", "--json")
    out, err = capsys.readouterr()
    assert code == 0 and json.loads(out)["runs"][0]["score"] == 1.0, err
    with Store(folder / "s.db") as store:
        assert store.list_runs()


def test_big_integers_are_found_in_every_block_of_lines(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """JSON Lines are searched for long digit runs a block of lines at a time: a big integer
    in a later block, or on a block's last line, keeps its text; a block without one is
    parsed as plain JSON."""
    from posttrain.loaders import datasets

    monkeypatch.setattr(datasets, "_BLOCK", 64)  # a few lines a block
    rows = [{"id": f"r{i}", "n": BIG if i in (7, 40) else i} for i in range(60)]
    path = tmp_path / "data.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    loaded = datasets.load_jsonl(path)
    assert [number for number, _row in loaded] == list(range(1, 61))
    assert [row["n"] for _number, row in loaded] == [
        str(BIG) if i in (7, 40) else i for i in range(60)]


@pytest.mark.parametrize("kind", ["jsonl", "jsonl-big-integer", "json"])
def test_half_a_surrogate_pair_is_refused_naming_its_line(tmp_path: Path,
                                                          stub_server: StubServer,
                                                          capsys: pytest.CaptureFixture[str],
                                                          kind: str) -> None:
    """A string escape that is half of a UTF-16 pair (``"\\ud800"`` alone) is not text: Python's
    JSON parser (the loaders' fallback) reads it, and storing the item then failed with a
    traceback after the run began. Refused where it is read, naming the file and line, exit 2,
    before any request; both halves of a pair are one character and load."""
    folder = tmp_path / "e"
    path = write_eval(folder, ROWS)
    pair = '{"id": "p", "question": "[[answer:x]]", "answer": "ok \\ud83d\\ude00"}'
    lone = ('{"id": "s", "question": "[[answer:x]]", "answer": "\\ud800"'
            + (', "n": 12345678901234567890123}' if kind == "jsonl-big-integer" else "}"))
    if kind == "json":
        (folder / "data.json").write_text(f"[{pair},\n{lone}]\n")
        path.write_text(path.read_text().replace("data.jsonl", "data.json"))
        where = "data.json:2"
    else:
        (folder / "data.jsonl").write_text(f"{pair}\n{pair.replace('p', 'q', 1)}\n{lone}\n")
        where = "data.jsonl:3"
    spec = f"openai:stub?base_url={stub_server.base_url}"
    line = one_line(run_eval(path, "--model", spec), capsys)
    assert f"{where}: \\ud800 is half of a UTF-16 surrogate pair" in line, line
    assert stub_server.stats()["total_attempts"] == 0
    assert not (folder / "s.db").exists()
    from posttrain.eval import load_eval

    lines = (folder / ("data.json" if kind == "json" else "data.jsonl")).read_text()
    (folder / ("data.json" if kind == "json" else "data.jsonl")).write_text(
        lines.replace("\\ud800", "\\ud800\\udc00"))  # a whole pair: 𐀀
    assert load_eval(path).items[-1].data["answer"] == "\U00010000"


def test_json_that_parses_but_cannot_be_stored_is_refused_where_it_is_read(
        tmp_path: Path, stub_server: StubServer, capsys: pytest.CaptureFixture[str]) -> None:
    """The first lone half in a .json file is named at its own line, past an escaped
    backslash that only looks like an escape (``\\\\ud800`` is text) and past a whole pair;
    rows nested deeper than the store writes (orjson reads 1,024 levels and writes 254) are
    refused, in .json and .jsonl, before any request (storing the item crashed)."""
    folder = tmp_path / "e"
    path = write_eval(folder, ROWS)
    spec = f"openai:stub?base_url={stub_server.base_url}"
    rows = ['{"id": "a", "question": "see \\\\ud800 docs", "answer": "x"}',
            '{"id": "b", "question": "\\ud83d\\ude00", "answer": "x"}',
            '{"id": "c", "question": "q", "answer": "x"}',
            '{"id": "d", "question": "q", "answer": "\\udc00"}']
    (folder / "data.json").write_text("[\n" + ",\n".join(rows) + "\n]\n")
    path.write_text(path.read_text().replace("data.jsonl", "data.json"))
    line = one_line(run_eval(path, "--model", spec), capsys)
    assert "data.json:5: \\udc00 is half of a UTF-16 surrogate pair" in line, line
    deep = "[" * 300 + "]" * 300
    for name, text, where in [
            ("data.json", f'[{{"id": "a", "question": "q", "deep": {deep}}}]', "data.json"),
            ("data.jsonl", f'{{"id": "a", "question": "q"}}\n'
                           f'{{"id": "b", "question": "q", "deep": {deep}}}\n', "data.jsonl:2")]:
        (folder / name).write_text(text)
        path.write_text(path.read_text().replace("data.json\n", f"{name}\n"))
        line = one_line(run_eval(path, "--model", spec), capsys)
        assert f"{where}: nested too deep to store (over 254 levels" in line, line
    assert stub_server.stats()["total_attempts"] == 0
    assert not (folder / "s.db").exists()


def test_rows_built_in_python_keep_big_integers_exact() -> None:
    from posttrain.eval import eval_from_dict

    ev = eval_from_dict({"name": "py", "items": [{"id": "x", "n": BIG, "m": float("nan")}],
                         "messages": [{"role": "user", "content": "{{item.n}}"}],
                         "graders": [{"type": "string_check", "name": "g",
                                      "input": "{{sample.output_text}}",
                                      "reference": "{{item.n}}", "operation": "eq"}]})
    assert ev.items[0].data == {"id": "x", "n": str(BIG), "m": "nan"}
    assert ev.request_for(ev.items[0]).messages[0]["content"] == str(BIG)


# ---- B6: --store that is not a store -----------------------------------------------------------
def test_store_that_is_not_a_database_or_is_a_folder(tmp_path: Path, stub_server: StubServer,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    path = write_eval(tmp_path / "e", ROWS)
    spec = f"openai:stub?base_url={stub_server.base_url}"
    not_db = tmp_path / "notes.db"
    not_db.write_text('{"id": "a"}\n')
    for store, message in [(not_db, "not a posttrain store (not an SQLite database)"),
                           (tmp_path, "is a folder: --store takes a store file")]:
        line = one_line(main(["eval", str(path), "--model", spec, "--store", str(store)]),
                        capsys)
        assert f"{store}: {message}" in line, line
        line = one_line(main(["report", "--store", str(store)]), capsys)
        assert message in line, line
    assert stub_server.stats()["total_attempts"] == 0


# ---- C1: an hf: folder that is not a model ------------------------------------------------------
def test_hf_paths_that_are_not_models_stop_at_the_check(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("transformers")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    path = write_eval(tmp_path / "e", ROWS)
    (tmp_path / "empty").mkdir()
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "config.json").write_text('{"model_type": "qwen2"}')
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "config.json").write_text("{}")
    (tmp_path / "notes" / "readme.txt").write_text("hi")
    (tmp_path / "gg").mkdir()
    (tmp_path / "gg" / "m.gguf").write_bytes(b"GGUF\x03\x00\x00\x00")
    (tmp_path / "notes.txt").write_text("hi")
    (tmp_path / "fake.gguf").write_text("not a gguf")
    (tmp_path / "notok").mkdir()
    (tmp_path / "notok" / "config.json").write_text('{"model_type": "qwen2"}')
    (tmp_path / "notok" / "model.safetensors").write_bytes(b"")
    for spec, message in [
            ("hf:empty", "empty is an empty folder, not a model"),
            ("hf:half", "half has a config.json but no weights"),
            ("hf:notes", "notes/config.json is not a model config (no model_type)"),
            ("hf:gg", "gg has no config.json, so it is not a transformers model folder; for its "
                      "GGUF file write hf:gg?gguf=m.gguf"),
            ("hf:notes.txt", "notes.txt is a file, not a model"),
            ("hf:fake.gguf", "fake.gguf is not a GGUF file"),
            ("hf:notok", "notok has no tokenizer")]:
        line = one_line(run_eval(path, "--model", spec), capsys)
        assert line.startswith(f"posttrain: error: --model: {spec}: {tmp_path}/")
        assert message in line, line
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    line = one_line(run_eval(path, "--model", "hf:some-org/not-cached"), capsys)
    assert ("some-org/not-cached is not in the local Hugging Face cache and the hub is off "
            "(HF_HUB_OFFLINE)") in line
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # no hub here: refused at once
    line = one_line(run_eval(path, "--model", "hf:some-org/not-cached"), capsys)
    assert ("is not in the local Hugging Face cache and the hub cannot be reached" in line
            or "no model 'some-org/not-cached' on the Hugging Face hub" in line), line


# ---- C2: judge request fields ---------------------------------------------------------------
def judge_grader(model: str, sampling: str) -> str:
    return ('  - {type: score_model, name: judge, model: "' + model + '", input: "Rate '
            '{{sample.output_text}}", range: [0, 1], sampling_params: ' + sampling + "}\n")


def test_a_judge_field_its_provider_cannot_take_stops_before_any_request(
        tmp_path: Path, stub_server: StubServer, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("anthropic")
    from tests.endpoint_stub import Endpoint

    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    endpoint = Endpoint()
    endpoint.state["anthropic_resolved"] = "claude-x"
    judge = f"anthropic:claude-x?base_url={endpoint.anthropic_url}"
    path = write_eval(tmp_path / "e", ROWS, graders=judge_grader(judge, "{seed: 3}"))
    try:
        line = one_line(run_eval(path, "--model",
                                 f"openai:stub?base_url={stub_server.base_url}"), capsys)
    finally:
        endpoint.close()
    assert f"eval.yaml:6: graders[0]: judge {judge}: sampling_params.seed: the Messages API " \
           "has no seed" in line, line
    assert stub_server.stats()["total_attempts"] == 0 and endpoint.chat_requests == 0


@pytest.mark.parametrize(("sampling", "where", "message"), [
    ("{temprature: 0}", "graders[0].sampling_params.temprature",
     "unknown sampling parameter; did you mean 'temperature'?"),
    ("{temperature: .nan}", "graders[0].sampling_params.temperature", "must be a finite number"),
    ("{max_tokens: lots}", "graders[0].sampling_params.max_tokens", "must be an integer"),
])
def test_judge_sampling_params_are_typed(tmp_path: Path, stub_server: StubServer,
                                         capsys: pytest.CaptureFixture[str], sampling: str,
                                         where: str, message: str) -> None:
    graders = judge_grader(f"openai:stub?base_url={stub_server.base_url}", sampling)
    path = write_eval(tmp_path / "e", ROWS, graders=graders)
    line = one_line(run_eval(path, "--model", f"openai:stub?base_url={stub_server.base_url}"),
                    capsys)
    assert f"eval.yaml:6: {where}: {message}" in line, line


# ---- logprobs: false asks for nothing -----------------------------------------------------------
@pytest.mark.parametrize("kind", ["anthropic", "hf", "vllm"])
def test_logprobs_false_is_taken_everywhere_and_true_refused(kind: str) -> None:
    from posttrain.models.base import UnsupportedField, supported_fields
    from posttrain.types import ChatRequest

    request = ChatRequest(messages=[{"role": "user", "content": "hi"}],
                          extra={"logprobs": False})
    assert supported_fields(request, kind) == {"logprobs": False}
    with pytest.raises(UnsupportedField, match="does not read log-probabilities"):
        supported_fields(ChatRequest(messages=request.messages, extra={"logprobs": True}), kind)


# ---- usability: wording and paths --------------------------------------------------------------
def test_grade_validate_refuses_what_the_eval_loader_refuses(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    grader = tmp_path / "g.json"
    for spec, message in [
            ({"reference": "{{ msg }}"}, "reference: {{msg}}: a grader's template reads "
                                          "`item.*` and `sample.*`, not 'msg'"),
            ({"input": "{{sample.output_txt}}"}, "did you mean 'output_text'?"),
            ({"type": "string_chek"}, "unknown grader type 'string_chek'; did you mean "
                                      "'string_check'?")]:
        grader.write_text(json.dumps({"type": "string_check", "name": "g", "operation": "eq",
                                      "input": "{{sample.output_text}}", "reference": "a",
                                      **spec}))
        line = one_line(main(["grade", str(grader), "--validate"]), capsys)
        assert f"posttrain: error: {grader}: " in line and message in line, line
    grader.write_text(json.dumps({"type": "string_check", "name": "g", "operation": "eq",
                                  "input": "{{sample.output_text}}", "reference": "\\{{ msg }}"}))
    assert main(["grade", str(grader), "--validate"]) == 0


def test_a_yaml_escape_error_says_how_to_write_a_literal_brace(tmp_path: Path) -> None:
    from posttrain.eval import load_eval

    path = write_eval(tmp_path / "e", ROWS)
    path.write_text(path.read_text().replace('"{{item.question}}"', '"\\{{ x }} {{item.question}}"'))
    with pytest.raises(UserError) as info:
        load_eval(path)
    assert "found unknown escape character" in str(info.value)
    assert '"\\\\{{" for a literal {{' in str(info.value)


def test_errors_name_files_by_absolute_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    write_eval(tmp_path / "e", ROWS, extra="sampling: {max_token: 3}\n")
    (tmp_path / "broken.yaml").write_text("name: [\n")
    (tmp_path / "models.yaml").write_text("models:\n  m: {provider: openai, base_ur: x}\n")
    for argv, file in [(["eval", "e/eval.yaml", "--model", "openai:m"], "e/eval.yaml:7"),
                       (["eval", "broken.yaml", "--model", "openai:m"], "broken.yaml:2"),
                       (["eval", "e/eval.yaml", "--model", "m", "--models-file", "models.yaml"],
                        "models.yaml:2")]:
        line = one_line(main(argv), capsys)
        assert line.startswith(f"posttrain: error: {tmp_path}/{file}: "), line
    pytest.importorskip("transformers")
    write_eval(tmp_path / "ok", ROWS)
    line = one_line(main(["eval", "ok/eval.yaml", "--model", "hf:./no-such-model"]), capsys)
    assert line.endswith(f"no such file or folder: {tmp_path}/no-such-model"), line


def test_grader_numbers_are_finite(tmp_path: Path) -> None:
    from posttrain.eval import load_eval

    path = write_eval(tmp_path / "e", ROWS, graders=(
        '  - {type: numeric, name: n, input: "{{sample.output_text}}", reference: "1", '
        "tolerance: .inf}\n"))
    with pytest.raises(UserError) as info:
        load_eval(path)
    assert "eval.yaml:6: graders[0].tolerance: must be a finite number, got inf" in str(info.value)


def test_anthropic_tool_without_a_name_says_so() -> None:
    from posttrain.models.anthropic_model import to_anthropic
    from posttrain.models.base import UnsupportedField
    from posttrain.types import ChatRequest

    request = ChatRequest(messages=[{"role": "user", "content": "hi"}],
                          tools=[{"type": "function", "function": {"nmae": "f"}}])
    with pytest.raises(UnsupportedField) as info:
        to_anthropic(request, "claude-x")
    assert str(info.value) == "tools: a function tool needs function.name (keys: nmae)"


def test_a_late_row_missing_a_templates_field_is_refused_before_the_rows_before_it_are_sent(
        tmp_path: Path, stub_server: StubServer, capsys: pytest.CaptureFixture[str]) -> None:
    """Row 1,501 of 2,000 lacks what the message template reads: refused at load, one line
    naming the dataset's line and the field, and not one request sent (the run used to stop
    there with exit 2 after sending and storing ~1,000 answers)."""
    rows = [{"id": f"r{k}", "question": f"[[answer:{k}]]", "answer": str(k)}
            for k in range(2000)]
    rows[1500] = {"id": "r1500", "prompt": "[[answer:x]]", "answer": "x"}
    path = write_eval(tmp_path / "e", rows)
    line = one_line(run_eval(path, "--model", f"openai:stub?base_url={stub_server.base_url}",
                             "--concurrency", "32"), capsys)
    assert line.endswith("data.jsonl:1501: item r1500: messages[0].content reads "
                         "{{item.question}}: this row has no field 'question'"), line
    assert stub_server.stats()["total_attempts"] == 0
