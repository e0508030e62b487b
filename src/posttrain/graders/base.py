"""The grader contract: ``grade(sample, item) -> Score``, the same for evals and RFT rewards."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from posttrain.template import TemplateError, placeholders, resolve
from posttrain.types import ChatRequest, Completion, Score

#: ``(model, request) -> (completion, attempts)``; attempts is 0 for an answer from the cache
ModelCaller = Callable[[Any, ChatRequest], Awaitable[tuple[Completion, int]]]

#: How graders reach models (judges). The runner sets it while it grades, so a judge's calls
#: share the run's call path: the same retry policy, the judge endpoint's concurrency limit,
#: the response cache, and the run's counters (requests, retries, cost). Unset (``posttrain
#: grade``, a reward outside a run) a call still gets the default bounded retries.
model_caller: ContextVar[ModelCaller | None] = ContextVar("posttrain_model_caller", default=None)


async def call_model(model: Any, request: ChatRequest) -> tuple[Completion, int]:
    """One model call from a grader, through the current call path (see ``model_caller``):
    ``(completion, attempts)``, attempts counting retries (0 when served from the cache).

    Raises ``RetriesExhausted`` when the call fails for good.
    """
    caller = model_caller.get()
    if caller is not None:
        return await caller(model, request)
    from posttrain.models.retry import RetryPolicy, call_with_retries

    return await call_with_retries(lambda: model.generate(request), RetryPolicy())


def template_failure(exc: TemplateError, grader: Grader, item: dict[str, Any]) -> Score:
    """The grade when one of ``grader``'s templates does not resolve.

    A path into the model's output that the output lacks (``{{sample.output_json.table}}``
    when the answer is not JSON or has no ``table``) is the model's failure: 0, not passed,
    with the reason. Anything else is the grader's problem: unscored, with the reason: an
    ``item.*`` field the dataset row lacks (checked first, in every template of the grader, so
    a missing reference is never blamed on the answer), or a sample field that does not exist.
    """
    if exc.in_model_output:
        for path in placeholders(grader.spec()):
            if path.startswith("item"):
                try:
                    resolve(path, {"item": item})
                except TemplateError as missing:
                    return Score.unscored(f"template {missing}", name=grader.name)
        why = exc.reason
        if exc.path.startswith("sample.output_json") and exc.step == 2 and "is null" in why:
            why = "the answer is not JSON"
        return Score(value=0.0, passed=False, name=grader.name,
                     explanation=f"the answer has no {{{{{exc.path}}}}}: {why}")
    return Score.unscored(f"template {exc}", name=grader.name)


@dataclass
class GraderContext:
    """What a grader may need from its surroundings when it is built.

    ``model_factory`` turns a model spec (``openai:gpt-4o``, a models-file name) into a Model,
    for judge graders. ``base_dir`` resolves relative paths (python grader ``source_file``).
    """

    base_dir: Path | None = None
    model_factory: Callable[[str], Any] | None = None
    source: str = "<grader>"  # file name for error messages
    extra: dict[str, Any] = field(default_factory=dict)


class Grader:
    """Base class. Subclasses set ``type`` and implement ``grade`` (or ``agrade`` if async)."""

    type: ClassVar[str] = ""
    #: True when grading calls a model (so the runner awaits it, with concurrency limits)
    is_async: ClassVar[bool] = False
    #: True when the grade is a function of the sample, the item and the grader's spec alone (no
    #: model, no code of the eval's, no clock or randomness): the runner may then copy the grade
    #: an earlier run gave the same answer to the same item (``RunExecution._replay``)
    deterministic: ClassVar[bool] = False
    #: the module of the builder that made this grader from its spec (``build_grader``); None
    #: for a grader constructed in Python
    built_by: str | None = None

    def __init__(self, name: str, pass_threshold: float | None = None) -> None:
        self.name = name
        self.pass_threshold = pass_threshold

    def grade(self, sample: dict[str, Any], item: dict[str, Any]) -> Score:
        if self.is_async:
            import asyncio

            return asyncio.run(self.agrade(sample, item))
        raise NotImplementedError

    async def agrade(self, sample: dict[str, Any], item: dict[str, Any]) -> Score:
        return self.grade(sample, item)

    def passed(self, value: float) -> bool:
        threshold = 1.0 if self.pass_threshold is None else self.pass_threshold
        return value >= threshold

    def components(self) -> list[str]:
        """Names of sub-scores this grader reports (for report columns)."""
        return []

    def children(self) -> list[Grader]:
        """The graders this one combines (``multi``); none for a plain grader."""
        return []

    def walk(self) -> Iterator[Grader]:
        """This grader and every grader inside it, depth first."""
        yield self
        for child in self.children():
            yield from child.walk()

    def judge_models(self) -> list[Any]:
        """The models this grader itself calls (judges), resolved; none for a plain grader."""
        return []

    async def aclose(self) -> None:
        """Close what this grader (and the graders inside it) opened."""
        for child in self.children():
            await child.aclose()

    def as_reward(self, **options: Any) -> Callable[..., list[float | None]]:
        """A TRL reward function: ``f(prompts, completions, **columns) -> list[float | None]``.

        ``options``: ``failed_value`` (reward of an unscored/errored grade, default ``None``:
        TRL skips it rather than training it as wrong), ``response_format`` (so
        ``sample.output_json`` is parsed as in the eval run) and ``reasoning`` (``strip`` or
        ``keep``, as the eval's ``reasoning:``).
        """
        from posttrain.graders.reward import grader_reward

        return grader_reward(self, **options)

    def spec(self) -> dict[str, Any]:
        """The JSON spec this grader was built from (stored with runs for re-grading)."""
        return {"type": self.type, "name": self.name}
