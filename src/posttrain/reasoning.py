"""Split a model's reasoning from its answer, so graders see only the answer.

Reasoning models write their chain of thought into the reply text in a few well-known shapes:

- ``<think>…</think>`` (DeepSeek-R1, Qwen3, QwQ), ``<thinking>``, ``<reasoning>``, ``<reason>``
  and ``<thought>`` tags, and Mistral Magistral's ``[THINK]…[/THINK]``;
- a reply that *starts inside* the block because the chat template already opened it (DeepSeek-R1
  distills, Qwen3 with thinking on): the text holds only the closing ``</think>``;
- OpenAI's harmony format rendered raw (gpt-oss without a parser): an ``analysis`` channel before
  the ``final`` channel.

Providers that parse reasoning themselves return it in a separate field (``reasoning_content``
in vLLM and DeepSeek, ``reasoning`` in OpenRouter and newer vLLM, Anthropic's ``thinking``
blocks); those arrive in ``Completion.reasoning`` and never in the text.

A reply cut off inside its reasoning (an opening tag with no closing one) has an **empty
answer**: a half-finished thought is not an answer, and grading it would reward whatever draft
the model wrote before it ran out of tokens.
"""

from __future__ import annotations

import re

#: ``(open, close)`` tag pairs, matched case-insensitively
_TAGS = (("<think>", "</think>"), ("<thinking>", "</thinking>"),
         ("<reasoning>", "</reasoning>"), ("<reason>", "</reason>"),
         ("<thought>", "</thought>"), ("[THINK]", "[/THINK]"))
_OPEN = re.compile("|".join(re.escape(o) for o, _ in _TAGS), re.IGNORECASE)
_CLOSE = {o.lower(): c for o, c in _TAGS}
_HARMONY_FINAL = re.compile(r"<\|channel\|>\s*final\s*<\|message\|>", re.IGNORECASE)
_HARMONY_END = re.compile(r"<\|(?:end|return|call)\|>")
_HARMONY_ANALYSIS = re.compile(r"<\|channel\|>\s*analysis\s*<\|message\|>", re.IGNORECASE)

MODES = ("strip", "keep")


def split_reasoning(text: str) -> tuple[str, str]:
    """``(reasoning, answer)`` of a reply's text.

    Every reasoning block is removed from the answer (their contents joined, in order, into
    the reasoning); text before, between and after blocks is the answer. An unclosed block
    makes the rest of the text reasoning. Text with no reasoning markers is returned as
    ``("", text)`` unchanged (no stripping of whitespace).
    """
    if not text or ("<" not in text and "[" not in text):
        return "", text
    if "<|channel|>" in text:
        return _split_harmony(text)
    lowered = text.lower()
    opened = _OPEN.search(text)
    # a reply that starts inside the block: only a closing tag, before any opening tag
    for _open, close in _TAGS:
        end = lowered.find(close.lower())
        if end != -1 and (opened is None or end < opened.start()):
            reasoning, rest = text[:end], text[end + len(close):]
            more, answer = split_reasoning(rest)
            return _join(reasoning, more), answer.lstrip()
    if opened is None:
        return "", text
    parts: list[str] = []
    answer: list[str] = []
    position = 0
    while opened is not None:
        answer.append(text[position:opened.start()])
        close = _CLOSE[opened.group(0).lower()]
        end = lowered.find(close.lower(), opened.end())
        if end == -1:  # cut off inside the reasoning: no answer after it
            parts.append(text[opened.end():])
            position = len(text)
            break
        parts.append(text[opened.end():end])
        position = end + len(close)
        opened = _OPEN.search(text, position)
    answer.append(text[position:])
    return _join(*parts), "".join(answer).strip()


def _split_harmony(text: str) -> tuple[str, str]:
    final = _HARMONY_FINAL.search(text)
    head = text if final is None else text[:final.start()]
    reasoning = "\n".join(
        _HARMONY_END.split(head[m.end():], maxsplit=1)[0].strip()
        for m in _HARMONY_ANALYSIS.finditer(head))
    if final is None:
        return reasoning, ""
    answer = _HARMONY_END.split(text[final.end():], maxsplit=1)[0]
    return reasoning, answer.strip()


def _join(*parts: str) -> str:
    return "\n".join(p.strip() for p in parts if p and p.strip())
