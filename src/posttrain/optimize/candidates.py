"""Prompt candidates: structural rewrites of a prompt, and the reflective proposal's request and
reply (GEPA-style: a proposer model reads failed samples with their graders' explanations and
writes a revised prompt).

A prompt here is the eval's ``messages`` template (a list of chat messages whose text may hold
``{{item.*}}`` placeholders). Rewrites keep every placeholder; a text taken from a row (an
example) has its ``{{`` escaped so it reaches the model as written.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

Messages = list[dict[str, Any]]


@dataclass
class Candidate:
    """One prompt tried: its messages, how it was made, and from which candidate."""

    name: str
    messages: Messages
    kind: str  # baseline | structural:<rewrite> | reflective
    parent: str | None = None
    note: str = ""
    dev: dict[str, Any] = field(default_factory=dict)  # score, n, by_tag, run


AGENTIC_REMINDERS = (
    "You are an agent: keep going until the task is completely solved before ending your "
    "turn; only stop when you are sure the problem is solved.\n"
    "If you are not sure about something the task needs, use your tools to find out: do not "
    "guess or make up an answer.\n"
    "Plan before each tool call, and reflect on the outcome of the previous one.")


def escape_literal(text: str) -> str:
    """``text`` as a template that renders to itself (``{{`` written ``\\{{``)."""
    return text.replace("{{", "\\{{")


def _system_index(messages: Messages) -> int | None:
    for index, message in enumerate(messages):
        if message.get("role") in ("system", "developer") and isinstance(message.get("content"),
                                                                          str):
            return index
    return None


def _user_index(messages: Messages) -> int | None:
    for index in range(len(messages) - 1, -1, -1):
        message = messages[index]
        if message.get("role") == "user" and isinstance(message.get("content"), str):
            return index
    return None


def _copy(messages: Messages) -> Messages:
    return json.loads(json.dumps(messages))


def _with(messages: Messages, *, system: str | None = None, user: str | None = None,
          drop_system: bool = False) -> Messages | None:
    out = _copy(messages)
    s, u = _system_index(out), _user_index(out)
    if user is not None:
        if u is None:
            return None
        out[u]["content"] = user
    if system is not None:
        if s is None:
            out.insert(0, {"role": "system", "content": system})
        else:
            out[s]["content"] = system
    if drop_system and s is not None:
        del out[s]
    return out


def prompt_parts(messages: Messages) -> tuple[str | None, str | None]:
    """(system text, last user text) of a prompt; None where absent or not plain text."""
    s, u = _system_index(messages), _user_index(messages)
    return (messages[s]["content"] if s is not None else None,
            messages[u]["content"] if u is not None else None)


# ---- structural rewrites ---------------------------------------------------------------------
@dataclass(frozen=True)
class Example:
    """An input and an answer that passed (or the reference), for ``format-example``."""

    input: str
    output: str


def _markdown(messages: Messages, _example: Example | None) -> Messages | None:
    system, user = prompt_parts(messages)
    if user is None:
        return None
    return _with(messages, system=f"# Instructions\n\n{system}" if system else None,
                 user=f"# Input\n\n{user}")


def _xml(messages: Messages, _example: Example | None) -> Messages | None:
    system, user = prompt_parts(messages)
    if user is None:
        return None
    return _with(messages,
                 system=f"<instructions>\n{system}\n</instructions>" if system else None,
                 user=f"<input>\n{user}\n</input>")


def _repeat_end(messages: Messages, _example: Example | None) -> Messages | None:
    system, user = prompt_parts(messages)
    if not system or user is None:
        return None
    return _with(messages, user=f"{user}\n\nRemember the instructions:\n{system}")


def _inline_system(messages: Messages, _example: Example | None) -> Messages | None:
    system, user = prompt_parts(messages)
    if not system or user is None:
        return None
    return _with(messages, user=f"{system}\n\n{user}", drop_system=True)


def _format_example(messages: Messages, example: Example | None) -> Messages | None:
    system, _user = prompt_parts(messages)
    if example is None:
        return None
    block = ("Output format: reply exactly in the form of this example.\n"
             f"Example input:\n{escape_literal(example.input)}\n"
             f"Example output:\n{escape_literal(example.output)}")
    return _with(messages, system=f"{system}\n\n{block}" if system else block)


def _agentic(messages: Messages, _example: Example | None) -> Messages | None:
    system, _user = prompt_parts(messages)
    return _with(messages, system=f"{system}\n\n{AGENTIC_REMINDERS}" if system
                 else AGENTIC_REMINDERS)


Rewrite = Callable[[Messages, Example | None], Messages | None]

#: the rewrites in the order they are tried (agentic first, and only, where the eval has tools
#: or a solver); each returns None where it does not apply
REWRITES: dict[str, Rewrite] = {
    "agentic": _agentic,
    "format-example": _format_example,
    "repeat-end": _repeat_end,
    "inline-system": _inline_system,
    "markdown": _markdown,
    "xml": _xml,
}


def structural(messages: Messages, *, example: Example | None, agentic: bool
               ) -> list[tuple[str, Messages]]:
    """Every rewrite that applies to ``messages``, in ``REWRITES`` order."""
    out = []
    for name, rewrite in REWRITES.items():
        if name == "agentic" and not agentic:
            continue
        rewritten = rewrite(messages, example)
        if rewritten is not None and rewritten != messages:
            out.append((name, rewritten))
    return out


# ---- reflective proposals --------------------------------------------------------------------
PROPOSER_SYSTEM = (
    "You improve the prompt of a language-model task. You see the current prompt and answers "
    "it got wrong, each with the grader's verdict. Write a better prompt for the same task.")


@dataclass(frozen=True)
class Failure:
    input: str
    output: str
    expected: str | None
    verdict: str


def _clip(text: str, limit: int) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[:limit] + " [...]"


def reflection_messages(messages: Messages, failures: Sequence[Failure], attempt: int
                        ) -> Messages:
    """The proposer's request: the parent prompt in <system>/<user> blocks and its failures."""
    system, user = prompt_parts(messages)
    lines = ["The current prompt. Placeholders like {{item.question}} are filled from each row "
             "of the dataset: keep them.",
             f"<system>\n{system or ''}\n</system>", f"<user>\n{user or ''}\n</user>", "",
             f"Answers it got wrong ({len(failures)}):"]
    for number, failure in enumerate(failures, start=1):
        lines += [f"### Example {number}", f"Input: {_clip(failure.input, 600)}",
                  f"Answer: {_clip(failure.output, 300)}"]
        if failure.expected is not None:
            lines.append(f"Expected: {_clip(failure.expected, 200)}")
        lines.append(f"Grader: {_clip(failure.verdict, 300)}")
    lines += ["", f"Attempt {attempt}. Write the improved prompt in the same form: <system>...</"
              "system> then <user>...</user>, keeping every {{item...}} placeholder of the "
              "current <user> part. Reply with the two blocks only."]
    return [{"role": "system", "content": PROPOSER_SYSTEM},
            {"role": "user", "content": "\n".join(lines)}]


_BLOCK = {tag: re.compile(rf"<{tag}>\s*(.*?)\s*</{tag}>", re.S) for tag in ("system", "user")}
_PLACEHOLDER = re.compile(r"(?<!\\)\{\{\s*([^{}]*?)\s*\}\}")


def parse_proposal(text: str, parent: Messages) -> tuple[Messages | None, str]:
    """The revised prompt from the proposer's reply, or (None, why it cannot be used)."""
    system_match = _BLOCK["system"].search(text)
    if system_match is None or not system_match.group(1).strip():
        return None, "no <system>...</system> block in the reply"
    _system, parent_user = prompt_parts(parent)
    user_match = _BLOCK["user"].search(text)
    user = user_match.group(1) if user_match and user_match.group(1).strip() else parent_user
    if parent_user is not None and user is not None:
        missing = sorted(set(_PLACEHOLDER.findall(parent_user)) - set(_PLACEHOLDER.findall(user)))
        if missing:
            return None, f"the revised <user> part drops {{{{{missing[0]}}}}}"
    revised = _with(parent, system=system_match.group(1).strip(), user=user)
    if revised is None:
        return None, "the prompt has no user message to revise"
    return revised, ""
