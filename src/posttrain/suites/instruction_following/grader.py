"""``ifeval`` (alias ``dev_instructions``): verifiable instruction following, IFEval-style.

Spec: ``{type: ifeval, name, input?: "{{sample.output_text}}"}``. The item must carry
``instruction_id_list`` and ``kwargs`` (IFEval's format; null kwargs are ignored). Ids are
IFEval's 25 (``punctuation:no_comma``...) or the developer-style ``dev_*:`` ids.

Score: value = strict instruction-level fraction; passed = every instruction followed (strict
prompt level). An answer without a letter or a digit (empty, only fences or punctuation) follows
no instruction, where the reference passes it on every negative one (forbidden words, no comma,
fewer than N words). Sub-scores: ``strict_prompt``, ``strict_instruction``, ``loose_prompt``,
``loose_instruction`` and ``id:<instruction_id>`` (strict, duplicates averaged).

Verdicts are those of Google's reference (``instruction_following_eval``: ``evaluation_lib``'s
strict and loose tests over ``instructions.py``), checked differentially in
``tests/test_ifeval_reference.py``. Unscored, with the reason: kwargs for which the reference has
no verdict of its own (it would draw them at random or raise), and items whose checks need a
library that is not installed (NLTK's punkt for sentence and capital-word counts, langdetect for
languages; ``pip install 'posttrain[suites]'``), never a stand-in that could give other verdicts.
"""

from __future__ import annotations

from typing import Any

from posttrain.graders.base import Grader, GraderContext, template_failure
from posttrain.graders.registry import require
from posttrain.plugins import register_grader
from posttrain.template import TemplateError, render_text
from posttrain.types import Score

COMPONENTS = ["strict_prompt", "strict_instruction", "loose_prompt", "loose_instruction"]


def has_words(response: str) -> bool:
    """Whether the answer has a letter or a digit: anything a reader could call an answer."""
    return any(ch.isalnum() for ch in response)


def evaluate(response: str, ids: list[str], kwargs_list: list[Any]) -> dict[str, Any]:
    """Strict and loose results per instruction. Raises KwargsError on a bad item.

    An answer without a letter or a digit (empty, or only fences, rules, punctuation: a small
    model's degenerate loop) follows no instruction. The reference checks pass it on every
    negative instruction (no forbidden words, no comma, fewer than N words...): 256 lines of
    ``` scored 1/3 on SmolLM2.
    """
    from posttrain.suites.instruction_following import checkers as C
    from posttrain.suites.instruction_following import developer as D
    from posttrain.suites.instruction_following.text import MissingTextTool

    strict: list[bool] = []
    loose: list[bool] = []
    answered = has_words(response)
    for instruction_id, raw in zip(ids, kwargs_list, strict=True):
        if raw is not None and not isinstance(raw, dict):
            raise C.KwargsError(f"kwargs for {instruction_id!r} must be an object")
        kwargs = C.clean_kwargs(raw)
        # the checks run even on an answer without words: a bad item still raises KwargsError
        if instruction_id in D.DEV_INSTRUCTIONS:
            ok = D.check_dev(instruction_id, response, kwargs) and answered
            strict.append(ok)
            loose.append(ok)
        else:
            try:
                strict.append(C.check(instruction_id, response, kwargs) and answered)
                loose.append(C.check_loose(instruction_id, response, kwargs) and answered)
            except MissingTextTool as exc:
                raise type(exc)(f"{instruction_id}: {exc}") from exc
    return {"strict": strict, "loose": loose}


class IFEvalGrader(Grader):
    type = "ifeval"

    def __init__(self, name: str, input: str, type_name: str = "ifeval") -> None:
        super().__init__(name)
        self.input = input
        self.type_name = type_name

    def components(self) -> list[str]:
        return list(COMPONENTS)

    def grade(self, sample: dict[str, Any], item: dict[str, Any]) -> Score:
        from posttrain.suites.instruction_following.checkers import KwargsError
        from posttrain.suites.instruction_following.text import MissingTextTool

        try:
            response = render_text(self.input, {"sample": sample, "item": item})
        except TemplateError as exc:
            return template_failure(exc, self, item)
        ids = item.get("instruction_id_list")
        kwargs_list = item.get("kwargs")
        if kwargs_list is None and isinstance(ids, list):
            kwargs_list = [{} for _ in ids]
        if not isinstance(ids, list) or not ids or not isinstance(kwargs_list, list):
            return Score.unscored("item needs a non-empty `instruction_id_list` and a `kwargs` "
                                  "list", name=self.name)
        if len(ids) != len(kwargs_list):
            return Score.unscored(f"{len(ids)} instruction ids but {len(kwargs_list)} kwargs",
                                  name=self.name)
        try:
            result = evaluate(response, [str(i) for i in ids], kwargs_list)
        except KwargsError as exc:
            return Score.unscored(str(exc), name=self.name)
        except MissingTextTool as exc:  # the grader's own problem: unscored, with the extra
            return Score.unscored(str(exc), name=self.name)
        strict, loose = result["strict"], result["loose"]
        per_id: dict[str, list[bool]] = {}
        for instruction_id, ok in zip(ids, strict, strict=True):
            per_id.setdefault(f"id:{instruction_id}", []).append(ok)
        sub = {
            "strict_prompt": float(all(strict)),
            "strict_instruction": sum(strict) / len(strict),
            "loose_prompt": float(all(loose)),
            "loose_instruction": sum(loose) / len(loose),
            **{key: sum(oks) / len(oks) for key, oks in per_id.items()},
        }
        failed = [i for i, ok in zip(ids, strict, strict=True) if not ok]
        explanation = ("all instructions followed" if not failed
                       else "not followed (strict): " + ", ".join(failed))
        if not has_words(response):
            explanation = ("the answer has no words (no letter or digit): no instruction is "
                           "followed")
        return Score(value=sub["strict_instruction"], passed=all(strict), name=self.name,
                     explanation=explanation, sub_scores=sub)

    def spec(self) -> dict[str, Any]:
        return {"type": self.type_name, "name": self.name, "input": self.input}


def _build(type_name: str) -> Any:
    def builder(spec: dict[str, Any], context: GraderContext) -> Grader:
        return IFEvalGrader(
            name=require(spec, "name", str, context, default=type_name),
            input=require(spec, "input", str, context, default="{{sample.output_text}}"),
            type_name=type_name,
        )
    return builder


register_grader("ifeval")(_build("ifeval"))
register_grader("dev_instructions")(_build("dev_instructions"))
