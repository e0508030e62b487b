"""The generator's requests and the parsing of its replies.

An item is a dataset row (a JSON object). Its fields are sorted into three roles from the eval
itself: *input* fields are those the prompt templates read (``{{item.question}}`` in
``messages``, a variant, ``tools`` or ``response_format``; ``messages`` when rows carry their
own), *reference* fields those the graders read and the prompt does not (``{{item.answer}}``),
*tag* fields the eval's ``tag:``. The generator sees one seed item (or a few, for ``new``) and
replies with one JSON object holding the fields its kind asks for:

- ``paraphrase``: the input fields, rewritten; the reference and tag fields are the seed's,
  copied by posttrain (a paraphrase that needed another answer is wrong by definition, and the
  solvers catch it). When the prompt reads one text field (``plain_paraphrase``), the request
  asks for the rewritten text alone, on one line, and does not show the reference (a small
  generator need not write JSON, and is not tempted to give the answer away); a JSON reply is
  still parsed. Either way a paraphrase that repeats the seed, or that contains the reference
  answer more often than the seed does (it gives the answer away), is refused;
- ``harder``: input and reference fields (the generator's own answer, to be verified);
- ``new``: input and reference fields for a tag that has few items.

With ``programmatic`` verification the reply also carries ``reference_answer``: a reply to the
new item that the eval's graders must accept (the check in ``posttrain.grow.core``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from posttrain.graders.model_graders import json_objects
from posttrain.template import placeholders
from posttrain.types import parse_json_output

KINDS = ("paraphrase", "harder", "new")

SYSTEM = ("You write test items for an evaluation of language models. Every item you write must "
          "have exactly one correct answer, and the answer you give must be that answer. Reply "
          "with one JSON object only, no other text.")

HARDER_HOW = ("Make it harder in one of these ways: compose it with another step, add a "
              "distractor (irrelevant but plausible information), make the context longer, or "
              "make the constraints stricter. It must stay answerable, with one correct answer.")


@dataclass(frozen=True)
class Roles:
    """Which item fields the prompt reads (input), the graders read (reference), and the tags."""

    input: list[str]
    reference: list[str]
    tags: list[str] = field(default_factory=list)


def _top_fields(template: Any) -> list[str]:
    out: list[str] = []
    for path in placeholders(template):
        if not path.startswith("item"):
            continue
        rest = path[len("item"):]
        if not rest or rest[0] not in ".[":
            continue
        name = rest[1:].split(".", 1)[0].split("[", 1)[0] if rest[0] == "." else \
            rest[1:].split("]", 1)[0].strip("'\"")
        if name and name not in out:
            out.append(name)
    return out


def field_roles(eval_: Any) -> Roles:
    """The roles of the eval's item fields (see the module docstring)."""
    prompt_parts: list[Any] = [eval_.messages, eval_.tools, eval_.response_format]
    prompt_parts += [[v.messages, v.system] for v in eval_.variants.values()]
    inputs = _top_fields(prompt_parts)
    if eval_.messages is None and any(v.messages is None for v in eval_.variants.values()):
        inputs = ["messages", *[f for f in inputs if f != "messages"]]
    references = [f for f in _top_fields(eval_.grader_specs) if f not in inputs]
    tags = [t for t in eval_.tag_fields if t not in inputs and t not in references]
    return Roles(input=inputs, reference=references, tags=tags)


def _shown(data: dict[str, Any], names: Sequence[str]) -> dict[str, Any]:
    return {name: data[name] for name in names if name in data}


def user_text(request: Any) -> str:
    """The last user message of a chat request as text (what the model under test reads)."""
    users = [m for m in request.messages if m.get("role") == "user"]
    content = users[-1].get("content") if users else ""
    return content if isinstance(content, str) else json.dumps(content, ensure_ascii=False)


def generator_messages(kind: str, *, eval_name: str, description: str, roles: Roles,
                       seeds: Sequence[tuple[dict[str, Any], str]], number: int, of: int,
                       tag: str | None = None, reference_answer: bool = False
                       ) -> list[dict[str, Any]]:
    """The chat messages of one generator request.

    ``seeds``: (item data, the prompt the model under test sees for it), one for
    ``paraphrase``/``harder``, a few examples for ``new``. ``number``/``of``: which of the
    requests for the same seed this is (so that each asks for something different, and the
    response cache does not serve one reply to all).
    """
    if kind == "paraphrase" and not reference_answer and plain_paraphrase(roles, seeds[0][0]):
        return _plain_paraphrase_messages(roles, seeds[0], number, of)
    lines = [f"The eval {eval_name!r}" + (f": {description}" if description else "") + "."]
    for data, prompt in seeds:
        lines += ["", "The model under test sees this prompt:", "<prompt>", prompt, "</prompt>",
                  "The item behind it (JSON):",
                  json.dumps(_shown(data, [*roles.input, *roles.reference, *roles.tags]),
                             ensure_ascii=False)]
    wanted = list(roles.input) if kind == "paraphrase" else [*roles.input, *roles.reference]
    if kind == "new" and roles.tags:
        wanted += [t for t in roles.tags if t not in wanted]
    if reference_answer:
        wanted.append("reference_answer")
    fields = ", ".join(wanted)
    lines.append("")
    if kind == "paraphrase":
        reference = json.dumps(_shown(seeds[0][0], roles.reference), ensure_ascii=False)
        lines.append(f"Rewrite {', '.join(roles.input)} so that it asks exactly the same thing in "
                     f"other words (rewrite {number} of {of}: word it differently from the "
                     f"others). The correct answer must stay exactly {reference}.")
    elif kind == "harder":
        lines.append(f"Write a harder variant of this item (variant {number} of {of}). "
                     f"{HARDER_HOW} Give the correct answer of the new item in "
                     f"{', '.join(roles.reference) or 'its fields'}.")
    else:
        lines.append(f"Write a new item (number {number} of {of})"
                     + (f" on the topic {tag!r}" if tag else "")
                     + ", different from the examples, in the same form. Give its correct "
                       f"answer in {', '.join(roles.reference) or 'its fields'}.")
    if reference_answer:
        lines.append("In reference_answer, write the reply a perfect model would give to the "
                     "new item's prompt.")
    lines.append(f"Reply with one JSON object with the fields: {fields}.")
    return [{"role": "system", "content": SYSTEM},
            {"role": "user", "content": "\n".join(lines)}]


PLAIN_SYSTEM = ("You rephrase questions for a test of language models. Reply with the rephrased "
                "question only, on one line: no answer, no explanation.")


def plain_paraphrase(roles: Roles, seed: dict[str, Any]) -> bool:
    """Whether a paraphrase of ``seed`` can be asked for, and read, as plain text: the prompt
    reads exactly one item field, and the seed's value of it is a text."""
    return len(roles.input) == 1 and isinstance(seed.get(roles.input[0]), str)


def _plain_paraphrase_messages(roles: Roles, seed: tuple[dict[str, Any], str], number: int,
                               of: int) -> list[dict[str, Any]]:
    """A paraphrase request that asks for the rewritten text alone (``plain_paraphrase``). The
    seed's field is shown as the prompt the model under test sees and as JSON (a generator
    that prefers JSON may reply with it); its reference is not shown."""
    data, prompt = seed
    name = roles.input[0]
    lines = [f"Rewrite this {name} so that it asks exactly the same thing in other words "
             f"(rewrite {number} of {of}: word it differently from the others). Do not answer "
             "it.", "", "<prompt>", prompt, "</prompt>",
             json.dumps({name: data[name]}, ensure_ascii=False), "",
             f"Reply with the rewritten {name} only, on one line."]
    return [{"role": "system", "content": PLAIN_SYSTEM},
            {"role": "user", "content": "\n".join(lines)}]


_LABEL = re.compile(r"^[*_#>\s]*(?:here(?: is|'s)\b[^:\n]{0,40}|(?:the\s+|my\s+)?(?:rewritten|"
                    r"rephrased|paraphrased|new|reworded)?\s*(?:question|paraphrase|rewrite|"
                    r"rephrasing|prompt|version|output)(?:\s*\d+(?:\s*of\s*\d+)?)?)[*_\s]*"
                    r"[:\-][*_\s]*", re.IGNORECASE)
_QUOTES = "\"'`“”‘’*"


def _plain_text(text: str) -> tuple[str | None, str]:
    """(the one-line text of a plain reply, '') or (None, why not). A leading line that ends
    with ':' ("Here is the rewrite:") is dropped when a line follows; a label ("Paraphrase:",
    "Rewrite 1:", "Question -") and surrounding quotes or bold marks are stripped."""
    body = text.strip()
    if body.startswith("```"):
        body = body.strip("`").split("\n", 1)[-1] if "\n" in body else body.strip("`")
    lines = [line.strip() for line in body.splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].endswith(":"):
        lines = lines[1:]
    if not lines:
        return None, "the reply is empty"
    if len(lines) > 1:
        return None, f"the reply is not one line ({len(lines)} lines)"
    line = lines[0]
    for _ in range(3):
        stripped = _LABEL.sub("", line, count=1).strip().strip(_QUOTES).strip()
        if stripped == line:
            break
        line = stripped
    if not line:
        return None, "the reply is empty"
    return line, ""


def _words(text: str) -> str:
    return " ".join(re.findall(r"\w+", text.lower()))


def _count(needle: str, text: str) -> int:
    if not needle.strip():
        return 0
    return len(re.findall(rf"(?<!\w){re.escape(needle.strip().lower())}(?!\w)", text.lower()))


def _refuse_paraphrase(data: dict[str, Any], seed: dict[str, Any], roles: Roles) -> str:
    """Why a parsed paraphrase is refused ('' when it is not): it repeats the seed's input
    fields, or it contains a reference value more often than the seed's input fields do (the
    answer given away, e.g. "What is Paris, the capital of France?")."""
    new = " ".join(json.dumps(data.get(n), ensure_ascii=False) if not isinstance(data.get(n), str)
                   else data[n] for n in roles.input)
    old = " ".join(json.dumps(seed.get(n), ensure_ascii=False) if not isinstance(seed.get(n), str)
                   else seed[n] for n in roles.input)
    if _words(new) == _words(old):
        return REPEATS
    for name in roles.reference:
        value = seed.get(name)
        values = value if isinstance(value, list) else [value]
        for one in values:
            if isinstance(one, (str, int, float)) and not isinstance(one, bool) and \
                    _count(str(one), new) > _count(str(one), old):
                return (f"the paraphrase gives the answer away: it contains the reference "
                        f"{name} {str(one)!r}")
    return ""


#: the reason of a paraphrase that repeats its seed (counted as a duplicate)
REPEATS = "the reply repeats the seed"


def _same_shape(value: Any, like: Any) -> bool:
    if isinstance(like, bool):
        return isinstance(value, bool)
    if isinstance(like, (int, float)):
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, type(like)) if like is not None else True


def _reply_object(text: str, wanted: Sequence[str]) -> dict[str, Any] | None:
    """The reply's JSON object: the whole text (a ```json fence allowed), else the first object
    in it that has every ``wanted`` field, else the first object in it (chatty models wrap the
    object in prose)."""
    whole = parse_json_output(text)
    if isinstance(whole, dict):
        return whole
    found = json_objects(text)[:20]
    for value in found:
        if all(name in value for name in wanted):
            return value
    return found[0] if found else None


def parse_reply(text: str, kind: str, seed: dict[str, Any], roles: Roles, *,
                tag_values: dict[str, Any] | None = None, reference_answer: bool = False
                ) -> tuple[dict[str, Any] | None, str | None, str]:
    """(new item data, reference answer, '') from a generator reply, or (None, None, why not).

    The new row starts as a copy of ``seed`` (its other fields, e.g. a schema, kept), takes the
    fields its kind asks for from the reply, and for ``paraphrase`` keeps the seed's reference
    and tag fields; ``tag_values`` sets the tag fields of a ``new`` item. A field must have the
    seed's JSON type (a number stays a number) and an input text must not be empty.
    """
    wanted = list(roles.input) if kind == "paraphrase" else [*roles.input, *roles.reference]
    plain = kind == "paraphrase" and not reference_answer and plain_paraphrase(roles, seed)
    reply = _reply_object(text, wanted)
    if plain and (reply is None or not all(name in reply for name in wanted)):
        line, why = _plain_text(text)
        if line is None:
            return None, None, why
        reply = {wanted[0]: line}
    if reply is None:
        return None, None, "the reply is not a JSON object"
    data = {k: v for k, v in seed.items() if k not in ("id", "provenance")}
    for name in wanted:
        if name not in reply:
            return None, None, f"the reply has no field {name!r}"
        value = reply[name]
        if name in seed and not _same_shape(value, seed[name]):
            return None, None, (f"field {name!r} is {type(value).__name__}, the seed's is "
                                f"{type(seed[name]).__name__}")
        if name in roles.input and (value is None or (isinstance(value, str) and not value.strip())):
            return None, None, f"field {name!r} is empty"
        data[name] = value
    for name, value in (tag_values or {}).items():
        data[name] = value
    if kind == "paraphrase":
        why = _refuse_paraphrase(data, seed, roles)
        if why:
            return None, None, why
    answer = None
    if reference_answer:
        answer = reply.get("reference_answer")
        if not isinstance(answer, str) or not answer.strip():
            answer = json.dumps(answer, ensure_ascii=False) if isinstance(answer, (dict, list)) \
                else None
        if answer is None:
            return None, None, "the reply has no reference_answer"
    return data, answer, ""


JUDGE_SYSTEM = ("You check test items for an evaluation of language models. Decide whether the "
                "reference answer is correct for the prompt, and the prompt has one correct "
                "answer. Reply with YES or NO on the first line, then one sentence why.")


def judge_messages(prompt: str, reference: dict[str, Any]) -> list[dict[str, Any]]:
    """The judge's request for one generated item: its prompt and its reference fields."""
    return [{"role": "system", "content": JUDGE_SYSTEM},
            {"role": "user", "content": "<prompt>\n" + prompt + "\n</prompt>\nReference answer "
             "(JSON): " + json.dumps(reference, ensure_ascii=False)
             + "\nIs the reference answer correct? YES or NO first."}]


def judge_verdict(text: str) -> bool | None:
    """True for a YES, False for a NO (the first word), None when it says neither."""
    words = text.strip().lstrip("*#>` ").split()
    if not words:
        return None
    first = words[0].strip(".,:;!*`\"'").lower()
    return {"yes": True, "no": False}.get(first)
