"""``code_exec``: run the model's Python code against tests, in the python grader's sandbox.

Spec: ``input`` (default ``{{sample.output_text}}``; the last ```python fenced block is taken
when there is one), ``tests`` (Python source with asserts, or a list of such sources, each one
test; templated, e.g. ``{{item.tests}}``), ``setup`` (optional code run before the tests),
``timeout`` (seconds for the whole run, default 10), ``pass_threshold`` (default 1).

The value is the share of tests that pass (the counts are in the explanation). Code
that does not compile, loops past the time limit or blows the memory limit scores 0: that is the
model's failure, scored, with the reason. A broken grader setup is an error.
"""

from __future__ import annotations

import re
from typing import Any

from posttrain.errors import UserError
from posttrain.graders._common import ctx, name_of, threshold
from posttrain.graders.base import Grader, GraderContext, template_failure
from posttrain.graders.registry import register, require
from posttrain.template import TemplateError, render, render_text
from posttrain.types import Score

_FENCE = re.compile(r"```(?:python|py|python3)?[ \t]*\n(.*?)```", re.DOTALL | re.IGNORECASE)

HARNESS = '''
import traceback

def run_tests(code, setup, tests):
    namespace = {"__name__": "__main__"}
    try:
        if setup:
            exec(compile(setup, "<setup>", "exec"), namespace)
        exec(compile(code, "<model code>", "exec"), namespace)
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt) or type(exc).__name__ == "_Timeout":
            raise
        return {"loaded": False, "passed": 0, "failures": [traceback.format_exc(limit=-3)]}
    passed, failures = 0, []
    for index, test in enumerate(tests):
        try:
            exec(compile(test, f"<test {index}>", "exec"), dict(namespace))
            passed += 1
        except BaseException as exc:
            if type(exc).__name__ == "_Timeout":
                raise
            failures.append(f"test {index}: {type(exc).__name__}: {exc}"[:500])
    return {"loaded": True, "passed": passed, "failures": failures}
'''


def extract_code(text: str) -> str:
    blocks = _FENCE.findall(text)
    return blocks[-1] if blocks else text


class CodeExecGrader(Grader):
    type = "code_exec"

    def __init__(self, name: str, input: str, tests: Any, setup: str | None, timeout: float,
                 pass_threshold: float | None) -> None:
        super().__init__(name, pass_threshold)
        self.input = input
        self.tests = tests
        self.setup = setup
        self.timeout = timeout

    def grade(self, sample: dict[str, Any], item: dict[str, Any]) -> Score:
        from posttrain.graders.sandbox import default_pool

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
        total = len(tests)
        result = default_pool().run(HARNESS, [code, setup, tests], function="run_tests",
                                    timeout=self.timeout, raw=True, filename="<code_exec>")
        if not result.ok:
            if result.status in ("timeout", "crashed") or "MemoryError" in result.error:
                return Score(0.0, passed=False, name=self.name,
                             explanation=f"the code failed to finish: {result.error[-500:]}")
            return Score.error(f"code_exec harness failed: {result.error}", name=self.name)
        outcome = result.value
        passed_count = int(outcome["passed"])
        value = passed_count / total
        if outcome["loaded"]:
            why = f"{passed_count}/{total} tests passed"
        else:
            why = "the code failed to load"
        if outcome["failures"]:
            why += ": " + " | ".join(outcome["failures"][:3])
        return Score(value, passed=self.passed(value), name=self.name, explanation=why)

    def spec(self) -> dict[str, Any]:
        return {"type": self.type, "name": self.name, "input": self.input, "tests": self.tests,
                "setup": self.setup, "timeout": self.timeout,
                "pass_threshold": self.pass_threshold}


@register("code_exec")
def build(spec: dict[str, Any], context: GraderContext) -> Grader:
    tests = require(spec, "tests", (str, list), context)
    timeout = require(spec, "timeout", (int, float), context, default=10.0)
    if not 0 < timeout <= 600:
        raise UserError("must be in (0, 600] seconds", file=context.source, field="timeout")
    return CodeExecGrader(
        name=name_of(spec, context, "code_exec"),
        input=require(spec, "input", str, context, default="{{sample.output_text}}"),
        tests=tests, setup=require(spec, "setup", str, context, default=None),
        timeout=float(timeout), pass_threshold=threshold(spec, context),
    )
