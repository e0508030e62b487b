"""Scripted models for the tests and measurements of ``posttrain grow``. Not models.

``ArithmeticGenerator`` answers ``posttrain.grow.prompts.generator_messages`` requests for an
eval of sums (items ``{"question": "What is A + B?", "answer": "C"}``): a paraphrase rewords
the question (one wording per request number), a harder variant adds a third term, a new item
is a fresh sum; ``wrong`` (a share) of harder/new items get a reference off by one, and
``garbage`` (a share) of replies are not JSON, both chosen by a hash of the request so they are
the same on every run. ``ArithmeticSolver`` answers a sum question with its true value (an
item it ``misses``, by hash share, with the value plus one) and a judge request with YES when
the reference is the true sum.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from posttrain.types import ChatRequest, Completion

_NUMBERS = re.compile(r"-?\d+")
WORDINGS = ("What is {a} + {b}?", "Compute {a} plus {b}.", "Add {a} and {b}: what do you get?",
            "Tell me the sum of {a} and {b}.", "{a} + {b} = ?")


def _unit(text: str) -> float:
    return int(hashlib.blake2b(text.encode(), digest_size=8).hexdigest(), 16) / 16 ** 16


def _last_json(text: str) -> dict[str, Any]:
    for line in reversed(text.splitlines()):
        if line.startswith("{"):
            try:
                value = json.loads(line)
            except ValueError:
                continue
            if isinstance(value, dict):
                return value
    return {}


class _Scripted:
    max_concurrency = 4
    price = None

    def __init__(self, name: str, key: str) -> None:
        self.name = name
        self.cache_id = name + ":" + hashlib.blake2b(key.encode(), digest_size=6).hexdigest()
        self.requests: list[ChatRequest] = []

    async def aclose(self) -> None:
        pass


class ArithmeticGenerator(_Scripted):
    def __init__(self, *, wrong: float = 0.0, garbage: float = 0.0, copy: bool = False) -> None:
        super().__init__("sim:grow-generator", json.dumps([wrong, garbage, copy]))
        self.wrong, self.garbage, self.copy = wrong, garbage, copy

    async def generate(self, request: ChatRequest) -> Completion:
        self.requests.append(request)
        text = str(request.messages[-1].get("content") or "")
        if _unit("garbage" + text) < self.garbage:
            return Completion(text="Sure! Here is a new item about numbers.")
        seed = _last_json(text)
        numbers = [int(n) for n in _NUMBERS.findall(str(seed.get("question", "")))] or [1, 2]
        number = int((re.search(r"(?:rewrite|variant|number) (\d+) of", text) or
                      re.search(r"(\d+)", "1")).group(1))  # type: ignore[union-attr]
        off = 1 if _unit("wrong" + text) < self.wrong else 0
        if "Rewrite" in text:
            a, b = numbers[0], numbers[1] if len(numbers) > 1 else 0
            wording = WORDINGS[0] if self.copy else WORDINGS[number % len(WORDINGS)]
            return Completion(text=json.dumps({"question": wording.format(a=a, b=b)}))
        if "harder variant" in text:
            a, b, c = numbers[0], numbers[1] if len(numbers) > 1 else 0, 10 + number
            return Completion(text=json.dumps({
                "question": f"What is {a} + {b} + {c}?", "answer": str(a + b + c + off)}))
        a, b = 20 + 3 * number, 7 + number
        return Completion(text="```json\n" + json.dumps({
            "question": f"What is {a} + {b}?", "answer": str(a + b + off)}) + "\n```")


class ArithmeticSolver(_Scripted):
    def __init__(self, name: str = "sim:solver", *, misses: float = 0.0) -> None:
        super().__init__(name, json.dumps([name, misses]))
        self.misses = misses

    async def generate(self, request: ChatRequest) -> Completion:
        self.requests.append(request)
        text = str(request.messages[-1].get("content") or "")
        if "Reference answer" in text:
            prompt = text.split("<prompt>\n", 1)[-1].split("\n</prompt>", 1)[0]
            reference = _last_json(text.split("(JSON): ", 1)[-1]) or {}
            true = sum(int(n) for n in _NUMBERS.findall(prompt))
            return Completion(text="YES" if str(reference.get("answer")) == str(true) else "NO")
        total = sum(int(n) for n in _NUMBERS.findall(text))
        if _unit(self.name + text) < self.misses:
            total += 1
        return Completion(text=str(total))
