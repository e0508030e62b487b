"""Tools reach a local model whose chat template has no tools.

SmolLM2-135M-Instruct's template (like the tiny test model's) renders role and content only:
``apply_chat_template(messages, tools=...)`` returned the same prompt as without tools, so on
``suite:tool_use`` the model never saw a tool, its own calls vanished from the transcript, and
every "irrelevance" item (no tool fits: don't call one) passed for a model that could not call.
Such a template now gets the tools in its system message (Hermes ``<tool_call>`` format, the
one :func:`posttrain.models.hf.parse_tool_calls` reads back), the assistant's calls as
``<tool_call>`` text and tool results as ``<tool_response>`` turns. A template that renders
tools itself is left alone.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from posttrain.types import ChatRequest

TOOLS = [{"type": "function", "function": {
    "name": "get_order", "description": "Look up an order by its id.",
    "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}},
                   "required": ["order_id"]}}}]
CALL = {"id": "call_0", "type": "function",
        "function": {"name": "get_order", "arguments": json.dumps({"order_id": "A-17"})}}
CONVERSATION = [
    {"role": "system", "content": "You are the shop's assistant."},
    {"role": "user", "content": "Where is order A-17?"},
    {"role": "assistant", "content": "", "tool_calls": [CALL]},
    {"role": "tool", "tool_call_id": "call_0", "content": '{"status": "shipped"}'},
]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("transformers")
    from posttrain.train.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model", task=None)


@pytest.fixture(scope="module")
def model(tiny_model: Path):
    from posttrain.models.hf import HFModel

    model = HFModel("hf:tiny", str(tiny_model), batch_size=2)
    model.load()
    return model


def test_the_tiny_template_has_no_tools(model) -> None:
    """The premise: the template alone drops them (as SmolLM2's does)."""
    tokenizer = model._tokenizer
    plain = tokenizer.apply_chat_template(CONVERSATION[:2], tokenize=False,
                                          add_generation_prompt=True)
    assert tokenizer.apply_chat_template(CONVERSATION[:2], tools=TOOLS, tokenize=False,
                                         add_generation_prompt=True) == plain


def test_tools_are_in_the_prompt_of_a_template_without_tools(model) -> None:
    prompt = model.prompt_text(ChatRequest(messages=CONVERSATION[:2], tools=TOOLS))
    assert prompt.count("<|im_start|>system") == 1  # joined to the eval's system message
    system = prompt.split("<|im_end|>")[0]
    assert "You are the shop's assistant." in system
    assert json.dumps(TOOLS[0]["function"], ensure_ascii=False) in system
    assert "<tool_call>" in system and '"arguments"' in system
    assert prompt.endswith("<|im_start|>assistant\n")


def test_a_request_without_a_system_message_gets_one_for_the_tools(model) -> None:
    prompt = model.prompt_text(ChatRequest(messages=CONVERSATION[1:2], tools=TOOLS))
    assert prompt.startswith("<|im_start|>system\n") and "get_order" in prompt


def test_the_calls_and_results_of_earlier_turns_are_in_the_transcript(model) -> None:
    prompt = model.prompt_text(ChatRequest(messages=CONVERSATION, tools=TOOLS))
    turns = prompt.split("<|im_start|>")
    assistant = next(t for t in turns if t.startswith("assistant\n<tool_call>"))
    call = json.loads(assistant.split("<tool_call>")[1].split("</tool_call>")[0])
    assert call == {"name": "get_order", "arguments": {"order_id": "A-17"}}
    result = next(t for t in turns if "<tool_response>" in t)
    assert result.startswith("user\n") and '{"status": "shipped"}' in result
    # what the model writes back in that format is read as a call
    from posttrain.models.hf import parse_tool_calls

    text, calls = parse_tool_calls(assistant.split("\n", 1)[1].split("<|im_end|>")[0])
    assert calls[0]["function"]["name"] == "get_order" and text == ""


def test_consecutive_results_are_one_turn(model) -> None:
    second = {**CALL, "id": "call_1"}
    messages = [CONVERSATION[1], {"role": "assistant", "content": "", "tool_calls": [CALL, second]},
                {"role": "tool", "tool_call_id": "call_0", "content": "one"},
                {"role": "tool", "tool_call_id": "call_1", "content": "two"}]
    prompt = model.prompt_text(ChatRequest(messages=messages, tools=TOOLS))
    assert prompt.count("<tool_response>") == 2 and prompt.count("<|im_start|>user") == 2


def test_tool_choice_none_leaves_them_out(model) -> None:
    prompt = model.prompt_text(ChatRequest(messages=CONVERSATION[:2], tools=TOOLS,
                                           tool_choice="none"))
    assert "get_order" not in prompt


def test_without_tools_the_prompt_is_the_templates(model) -> None:
    tokenizer = model._tokenizer
    assert model.prompt_text(ChatRequest(messages=CONVERSATION[:2])) == \
        tokenizer.apply_chat_template(CONVERSATION[:2], tokenize=False, add_generation_prompt=True)


def test_a_template_that_renders_tools_is_left_alone(tiny_model: Path) -> None:
    from posttrain.models.hf import HFModel

    model = HFModel("hf:tiny-tools", str(tiny_model))
    model.load()
    model._tokenizer.chat_template = (
        "{% if tools %}<tools>{% for t in tools %}{{ t.function.name }} {% endfor %}</tools>"
        "{% endif %}{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + "
        "message['content'] + '<|im_end|>\\n' }}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
    prompt = model.prompt_text(ChatRequest(messages=CONVERSATION[:2], tools=TOOLS))
    assert prompt.startswith("<tools>get_order </tools>")
    assert "<tool_call>" not in prompt  # no second copy in the system message


def test_generation_reads_the_tools_prompt(model) -> None:
    """The batch path renders the same prompt (here too long for the tiny model's 256-token
    window, which says how long it was)."""
    from posttrain.models.hf import ContextTooLong

    request = ChatRequest(messages=CONVERSATION[:2], tools=TOOLS, max_tokens=2)
    length = len(model._tokenizer(model.prompt_text(request), add_special_tokens=False)
                 ["input_ids"])
    with pytest.raises(ContextTooLong, match=rf"^prompt of {length} tokens "):
        model.generate_batch([request])
    assert model.generate_batch([ChatRequest(messages=CONVERSATION[:2], max_tokens=2)])


def test_smollm2s_template_has_no_tools_and_its_prompt_now_does() -> None:
    """The real case (tokenizer only): SmolLM2-135M-Instruct, where a pulled copy exists."""
    pytest.importorskip("transformers")
    from transformers import AutoTokenizer

    from posttrain.models.hf import template_renders_tools, tools_in_messages
    from posttrain.models.local import named_folder

    folder = named_folder("smollm2-135m-instruct")
    if folder is None:
        pytest.skip("needs `posttrain models pull smollm2-135m-instruct`")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert not template_renders_tools(tokenizer)
    prompt = tokenizer.apply_chat_template(tools_in_messages(CONVERSATION, TOOLS), tokenize=False,
                                           add_generation_prompt=True)
    assert prompt.startswith("<|im_start|>system\nYou are the shop's assistant.")
    assert '"name": "get_order"' in prompt and "<tool_response>" in prompt


def test_vllm_gives_the_tools_to_a_template_without_them(monkeypatch: pytest.MonkeyPatch,
                                                         model) -> None:
    """The same fault on ``vllm:`` (``LLM.chat(..., tools=...)`` renders the model's own
    template): a fake engine with the tiny model's tokenizer checks the wiring; the engine
    itself needs a GPU."""
    import sys
    import types

    from posttrain.models.vllm_model import VLLMModel

    calls: list[tuple[list, dict]] = []

    class FakeLLM:
        def __init__(self, model: str, **kwargs) -> None:
            pass

        def get_tokenizer(self):
            return model._tokenizer  # the tiny model's: role and content only

        def chat(self, conversations, params, **kwargs):
            calls.append((conversations, kwargs))
            choice = types.SimpleNamespace(
                text='<tool_call>{"name": "get_order", "arguments": {"order_id": "A-17"}}'
                     "</tool_call>", token_ids=[1], finish_reason="stop")
            return [types.SimpleNamespace(prompt_token_ids=[0], outputs=[choice])
                    for _ in conversations]

    fake = types.ModuleType("vllm")
    fake.LLM = FakeLLM  # type: ignore[attr-defined]
    fake.SamplingParams = lambda **kw: kw  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "vllm", fake)
    engine = VLLMModel("vllm:/models/x", "/models/x")
    [answer] = engine.generate_batch([ChatRequest(messages=CONVERSATION, tools=TOOLS)])
    conversations, kwargs = calls[0]
    assert "tools" not in kwargs  # the template would drop them
    system = conversations[0][0]["content"]
    assert system.startswith("You are the shop's assistant.") and '"name": "get_order"' in system
    assert any("<tool_response>" in m["content"] for m in conversations[0])
    assert answer.tool_calls[0]["function"]["name"] == "get_order"


def test_vllm_leaves_the_tools_to_a_template_that_renders_them(monkeypatch: pytest.MonkeyPatch,
                                                               tiny_model: Path) -> None:
    import sys
    import types

    from transformers import AutoTokenizer

    from posttrain.models.vllm_model import VLLMModel

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    tokenizer.chat_template = (
        "{% if tools %}<tools>{% for t in tools %}{{ t.function.name }}{% endfor %}</tools>"
        "{% endif %}{% for m in messages %}{{ m['role'] + ': ' + m['content'] }}{% endfor %}")
    calls: list[dict] = []

    class FakeLLM:
        def __init__(self, model: str, **kwargs) -> None:
            pass

        def get_tokenizer(self):
            return tokenizer

        def chat(self, conversations, params, **kwargs):
            calls.append(kwargs)
            choice = types.SimpleNamespace(text="ok", token_ids=[1], finish_reason="stop")
            return [types.SimpleNamespace(prompt_token_ids=[0], outputs=[choice])
                    for _ in conversations]

    fake = types.ModuleType("vllm")
    fake.LLM = FakeLLM  # type: ignore[attr-defined]
    fake.SamplingParams = lambda **kw: kw  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "vllm", fake)
    engine = VLLMModel("vllm:/models/x", "/models/x")
    engine.generate_batch([ChatRequest(messages=CONVERSATION[:2], tools=TOOLS)])
    assert calls[0]["tools"] == TOOLS


def test_a_tools_request_to_a_local_engine_is_keyed_by_the_tools_prompt_format() -> None:
    """Answers cached before the tools were written into the system message (or under another
    rendering) are never served for the new prompt: the rendering's version is in the key of
    every request with tools to hf: / vllm:; requests without tools keep their keys."""
    from types import SimpleNamespace

    from posttrain.models.hf import TOOLS_PROMPT_FORMAT, HFModel
    from posttrain.runner.executor import RunExecution
    from posttrain.runner.store import request_key
    from posttrain.types import ChatRequest

    assert HFModel.tools_prompt_format == TOOLS_PROMPT_FORMAT
    local = SimpleNamespace(cache_id="hf:/m#abc", tools_prompt_format=TOOLS_PROMPT_FORMAT)
    remote = SimpleNamespace(cache_id="openai:gpt-4.1")
    execution = SimpleNamespace(model=local, cache_scope=None)
    with_tools = ChatRequest(messages=CONVERSATION[:2], tools=TOOLS)
    plain = ChatRequest(messages=CONVERSATION[:2])
    old = request_key(local.cache_id, with_tools.to_payload(), 0, None)
    key = RunExecution.cache_key(execution, with_tools, 0)
    assert key != old and key == request_key(local.cache_id, with_tools.to_payload(), 0, None,
                                             TOOLS_PROMPT_FORMAT)
    assert RunExecution.cache_key(execution, plain, 0) == request_key(
        local.cache_id, plain.to_payload(), 0, None)
    assert RunExecution.cache_key(execution, with_tools, 0, remote) == request_key(
        remote.cache_id, with_tools.to_payload(), 0, None)
