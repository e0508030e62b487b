"""``code_edit``: parse and apply an edit in the item's format, run its tests, check locality.

Item fields (as the ``code_edits`` suite writes them): ``format``, ``files`` {path: original},
``allowed`` {path: [[first, last], ...]} (1-based line ranges the task may change), and tests
(``python_test`` / ``node_test`` / ``checks``). Sub-scores: ``well_formed`` (the response parsed
and applied), ``tests_pass``, ``irrelevant_edit`` (1 if anything changed outside the allowed
ranges, whitespace-only changes ignored; absent when malformed), ``lint`` (the edited files pass a
syntax/structure check). Value: 1 when the tests pass and nothing irrelevant changed.
Spec fields: ``timeout`` (seconds for the tests, default 10).
"""

from __future__ import annotations

from typing import Any

from posttrain.graders.base import Grader, GraderContext
from posttrain.graders.registry import require
from posttrain.plugins import register_grader
from posttrain.types import Score


class CodeEditGrader(Grader):
    type = "code_edit"
    #: the runner grades it in a thread: a call waits on a sandboxed process (its tests)
    blocking = True

    def __init__(self, name: str, timeout: float) -> None:
        super().__init__(name)
        self.timeout = timeout

    def grade(self, sample: dict[str, Any], item: dict[str, Any]) -> Score:
        from posttrain.suites.code_edits import checking, formats

        fmt, files = item.get("format"), item.get("files")
        if fmt not in formats.FORMATS or not isinstance(files, dict):
            return Score.unscored("the item needs a known `format` and a `files` mapping",
                                  name=self.name)
        response = formats.Response(str(sample.get("output_text") or ""),
                                    sample.get("output_tools") or None)
        try:
            edited = formats.apply(fmt, response, files)
        except formats.EditFormatError as exc:
            return Score(value=0.0, passed=False, name=self.name,
                         explanation=f"malformed ({exc.stage}): {exc}",
                         sub_scores={"well_formed": 0.0, "tests_pass": 0.0})
        allowed = item.get("allowed") or {}
        problems: list[str] = []
        for path in sorted(set(files) | set(edited)):
            before, after = files.get(path), edited.get(path)
            if before == after:
                continue
            if path not in allowed or before is None or after is None:
                problems.append(f"{path}: changed, created or deleted a file outside the task")
                continue
            ranges = [(int(a), int(b)) for a, b in allowed[path]]
            problems += [f"{path}: {p}" for p in
                         checking.out_of_region_changes(before, after, ranges)]
        lint_problems = [f"{path}: {why}" for path, content in edited.items()
                         if content != files.get(path) and (why := checking.lint(path, content))]
        passed, output, confinement = checking.run_tests_confined(item, edited,
                                                                  timeout=self.timeout)
        if passed is None:
            return Score.unscored(output, name=self.name)
        irrelevant = bool(problems)
        value = 1.0 if passed and not irrelevant else 0.0
        why = [f"tests {'passed' if passed else 'failed'}"]
        if not passed:
            why.append(output[-500:])
        if problems:
            why.append("irrelevant edits: " + "; ".join(problems[:5]))
        if lint_problems:
            why.append("lint: " + "; ".join(lint_problems[:3]))
        return Score(value=value, passed=value == 1.0, name=self.name, explanation="\n".join(why),
                     sub_scores={"well_formed": 1.0, "tests_pass": 1.0 if passed else 0.0,
                                 "irrelevant_edit": 1.0 if irrelevant else 0.0,
                                 "lint": 0.0 if lint_problems else 1.0},
                     confinement=confinement)

    def components(self) -> list[str]:
        return ["well_formed", "tests_pass", "irrelevant_edit", "lint"]

    def spec(self) -> dict[str, Any]:
        return {"type": self.type, "name": self.name, "timeout": self.timeout}


@register_grader("code_edit")
def build(spec: dict[str, Any], context: GraderContext) -> Grader:
    return CodeEditGrader(
        name=require(spec, "name", str, context, default="code_edit"),
        timeout=float(require(spec, "timeout", (int, float), context, default=10)),
    )
