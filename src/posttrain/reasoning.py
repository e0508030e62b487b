"""Split a model's reasoning from its answer, so graders see only the answer.

Reasoning models write their chain of thought into the reply text in a few well-known shapes,
always *before* the answer:

- a leading ``<think>…</think>`` block (DeepSeek-R1, Qwen3, QwQ), or ``<thinking>``,
  ``<reasoning>``, ``<reason>``, ``<thought>``, Mistral Magistral's ``[THINK]…[/THINK]``;
  blocks may nest and several may follow each other;
- a reply that *starts inside* the block because the chat template already opened it (DeepSeek-R1
  distills, Qwen3 with thinking on): the text holds only the closing ``</think>``;
- OpenAI's harmony format rendered raw (gpt-oss without a parser): an ``analysis`` channel before
  the ``final`` channel.

Only those shapes are reasoning. A tag anywhere else is part of the answer: an answer may well be
*about* ``<think>`` tags (``Use <think>…</think> for reasoning``), and JSON may hold one in a
string. Providers that parse reasoning themselves return it in a separate field
(``reasoning_content`` in vLLM and DeepSeek, ``reasoning`` in OpenRouter and newer vLLM,
Anthropic's ``thinking`` blocks); those arrive in ``Completion.reasoning``, never in the text.

A reply cut off inside its leading reasoning (an opening tag with no closing one) has an **empty
answer**: a half-finished thought is not an answer, and grading it would reward whatever draft
the model wrote before it ran out of tokens.
"""

from __future__ import annotations

import re

#: ``(open, close)`` tag pairs, matched case-insensitively
_TAGS = (("<think>", "</think>"), ("<thinking>", "</thinking>"),
         ("<reasoning>", "</reasoning>"), ("<reason>", "</reason>"),
         ("<thought>", "</thought>"), ("[THINK]", "[/THINK]"))
_OPEN = {o.lower(): (o, c) for o, c in _TAGS}
_HARMONY_FINAL = re.compile(r"<\|channel\|>\s*final\s*<\|message\|>", re.IGNORECASE)
_HARMONY_END = re.compile(r"<\|(?:end|return|call)\|>")
_HARMONY_ANALYSIS = re.compile(r"<\|channel\|>\s*analysis\s*<\|message\|>", re.IGNORECASE)
#: text that opens an answer, not reasoning (a reply starting with it is not "inside a block")
_ANSWER_START = ("{", "[", '"', "<")

MODES = ("strip", "keep")


def split_reasoning(text: str) -> tuple[str, str]:
    """``(reasoning, answer)`` of a reply's text.

    Leading reasoning blocks (nested ones matched by depth) are removed and their contents
    joined into the reasoning; the answer is the rest, without surrounding whitespace. A reply
    that starts inside a block (a closing tag with no opening tag before it, and no JSON or
    markup before it) has everything up to the close as reasoning. An unclosed leading block
    makes the whole reply reasoning and the answer empty. Any other text is returned as
    ``("", text)`` unchanged.
    """
    if not text or ("<" not in text and "[" not in text):
        return "", text
    if text.lstrip().startswith("<|") and "<|channel|>" in text:
        return _split_harmony(text)
    thoughts: list[str] = []
    rest = text
    while True:
        stripped = rest.lstrip()
        pair = next((p for key, p in _OPEN.items() if stripped.lower().startswith(key)), None)
        if pair is None:
            break
        end = _matching_close(stripped, *pair)
        if end is None:  # cut off inside its reasoning: no answer
            thoughts.append(stripped[len(pair[0]):])
            return _join(*thoughts), ""
        thoughts.append(stripped[len(pair[0]):end])
        rest = stripped[end + len(pair[1]):]
    if thoughts:
        return _join(*thoughts), rest.strip()
    opened_inside = _opened_by_template(text)
    if opened_inside is not None:
        reasoning, answer = opened_inside
        more, answer = split_reasoning(answer)
        return _join(reasoning, more), answer.strip()
    return "", text


def _matching_close(text: str, open_tag: str, close_tag: str) -> int | None:
    """Index of the close tag that matches the open tag at 0 (nesting counted), or None."""
    lower, open_l, close_l = text.lower(), open_tag.lower(), close_tag.lower()
    depth, position = 0, 0
    while True:
        next_open = lower.find(open_l, position)
        next_close = lower.find(close_l, position)
        if next_close == -1:
            return None
        if next_open != -1 and next_open < next_close:
            depth += 1
            position = next_open + len(open_l)
            continue
        depth -= 1
        if depth == 0:
            return next_close
        position = next_close + len(close_l)


def _opened_by_template(text: str) -> tuple[str, str] | None:
    """``(reasoning, answer)`` of a reply whose block the chat template opened, else None."""
    if text.lstrip().startswith(_ANSWER_START):
        return None
    lower = text.lower()
    for open_tag, close_tag in _TAGS:
        end = lower.find(close_tag.lower())
        if end != -1 and open_tag.lower() not in lower[:end]:
            return text[:end], text[end + len(close_tag):]
    return None


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
