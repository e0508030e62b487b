"""``code_exec``: run the model's Python code against tests, in the sandbox.

Spec: ``input`` (default ``{{sample.output_text}}``; the last ```python fenced block is taken
when there is one), ``tests`` (Python source with asserts, or a list of such sources, each one
test; templated, e.g. ``{{item.tests}}``), ``setup`` (optional code run before the tests),
``timeout`` (seconds for the whole run, default 10), ``pass_threshold`` (default 1).

The value is the share of tests that pass (the counts are in the explanation). Code
that does not compile, loops past the time limit or blows the memory limit scores 0: that is the
model's failure, scored, with the reason. A broken grader setup is an error.

The model's code runs in a fresh confined child (``posttrain.graders.sandbox``); every ``assert``
in a test is split (``posttrain.graders.strict``) so that the child only computes the operands
and this process compares them with type-strict equality against expected values that never
entered the sandbox, and every check must be reported as often as the test runs it. A test whose
checks depend on control flow decided in the sandbox (``if`` on a computed value, ``while``,
``try``, ``raise``, no ``assert``) is *gameable*: written in the grader file it is refused when
the grader is loaded (``posttrain grade --validate`` names it); arriving through a template it
counts as failed and the explanation says why. Each grade records its ``confinement``.
"""

from __future__ import annotations

import re
from typing import Any

from posttrain.errors import UserError
from posttrain.graders._common import ctx, name_of, threshold
from posttrain.graders.base import Grader, GraderContext, template_failure
from posttrain.graders.registry import require
from posttrain.graders.strict import SplitTest, judge_test, split_test
from posttrain.plugins import register_grader
from posttrain.template import TemplateError, render, render_text
from posttrain.types import Score

_FENCE = re.compile(r"```(?:python|py|python3)?[ \t]*\n(.*?)```", re.DOTALL | re.IGNORECASE)


def judge_all(splits: list[SplitTest], report: dict[str, Any]) -> tuple[int, list[str]]:
    """(tests passed, failure messages) judged here from the sandbox's report."""
    if report.get("loaded") is not True:
        return 0, []
    tests = report.get("tests")
    if type(tests) is not list or len(tests) != len(splits):
        return 0, ["the sandbox's report does not match the tests"]
    passed, failures = 0, []
    for number, (split, test) in enumerate(zip(splits, tests, strict=True)):
        ok, why = judge_test(split, test)
        if ok:
            passed += 1
        else:
            failures.append(f"test {number}: {why}"[:500])
    return passed, failures


def extract_code(text: str) -> str:
    blocks = _FENCE.findall(text)
    return blocks[-1] if blocks else text


class CodeExecGrader(Grader):
    type = "code_exec"
    #: the runner grades it in a thread: a call waits on a sandboxed process (up to its timeout)
    blocking = True

    def __init__(self, name: str, input: str, tests: Any, setup: str | None, timeout: float,
                 pass_threshold: float | None) -> None:
        super().__init__(name, pass_threshold)
        self.input = input
        self.tests = tests
        self.setup = setup
        self.timeout = timeout

    def grade(self, sample: dict[str, Any], item: dict[str, Any]) -> Score:
        from posttrain.graders.sandbox import SandboxError, default_pool

        context = ctx(sample, item)
        try:
            code = extract_code(render_text(self.input, context))
            tests = render(self.tests, context)
            setup = render_text(self.setup, context) if self.setup else ""
        except TemplateError as exc:
            return template_failure(exc, self, item)
        if isinstance(tests, str):
            tests = [tests]
        if not isinstance(tests, list) or not tests or not all(isinstance(t, str) for t in tests):
            return Score.unscored(f"tests must be code or a list of code: {tests!r:.100}",
                                  name=self.name)
        try:
            splits = [split_test(test) for test in tests]
        except SyntaxError as exc:
            return Score.unscored(f"a test does not parse: {exc}", name=self.name)
        total = len(tests)
        try:
            result = default_pool().run_tests(code, [split.child_source for split in splits],
                                              setup=setup, timeout=self.timeout)
        except SandboxError as exc:  # the sandbox's own failure, not the answer's
            return Score(value=None, status="error", name=self.name,
                         explanation=f"the sandbox could not run this answer: {exc}")
        if not result.ok:
            return Score(0.0, passed=False, name=self.name, confinement=result.confinement,
                         explanation=f"the code failed to finish ({result.status}): "
                                     f"{result.error[-500:]}")
        passed_count, failures = judge_all(splits, result.data)
        value = passed_count / total
        if result.data.get("loaded") is False:
            why = "the code failed to load: " + str(result.data.get("error", ""))[-500:]
        else:
            why = f"{passed_count}/{total} tests passed"
            if failures:
                why += ": " + " | ".join(failures[:3])
        return Score(value, passed=self.passed(value), name=self.name, explanation=why,
                     confinement=result.confinement)

    def spec(self) -> dict[str, Any]:
        return {"type": self.type, "name": self.name, "input": self.input, "tests": self.tests,
                "setup": self.setup, "timeout": self.timeout,
                "pass_threshold": self.pass_threshold}


def check_tests(tests: Any, context: GraderContext) -> None:
    """Tests written in the grader file (not templates) must parse and be judgeable from data
    the model cannot forge: a UserError naming the file and ``tests[i]`` otherwise."""
    listed = [tests] if isinstance(tests, str) else tests
    if isinstance(tests, list) and not tests:
        raise UserError("give at least one test", file=context.source, field="tests")
    for number, test in enumerate(listed):
        where = "tests" if isinstance(tests, str) else f"tests[{number}]"
        if not isinstance(test, str):
            raise UserError(f"a test must be Python source, got {type(test).__name__}",
                            file=context.source, field=where)
        if "{{" in test:
            continue  # a template: checked when it is rendered, per item
        try:
            split = split_test(test)
        except SyntaxError as exc:
            raise UserError(f"does not parse: {exc.msg} (line {exc.lineno} of the test)",
                            file=context.source, field=where) from None
        if split.gameable:
            raise UserError(f"gameable: {split.gameable}; a model could pass it by forging its "
                            "report (see the README's threat model), so it would always count "
                            "as failed", file=context.source, field=where)


@register_grader("code_exec")
def build(spec: dict[str, Any], context: GraderContext) -> Grader:
    tests = require(spec, "tests", (str, list), context)
    check_tests(tests, context)
    timeout = require(spec, "timeout", (int, float), context, default=10.0)
    if not 0 < timeout <= 600:
        raise UserError("must be in (0, 600] seconds", file=context.source, field="timeout")
    return CodeExecGrader(
        name=name_of(spec, context, "code_exec"),
        input=require(spec, "input", str, context, default="{{sample.output_text}}"),
        tests=tests, setup=require(spec, "setup", str, context, default=None),
        timeout=float(timeout), pass_threshold=threshold(spec, context),
    )
