"""``python``: ``grade(sample, item) -> float`` from ``source`` (or ``source_file``), sandboxed.

The code runs in ``posttrain.graders.sandbox``: the source is loaded in a warm worker and every
call runs in a fresh confined child (no network, throw-away folder, no API keys, time / memory /
process / file-size limits), because a grader's input is model output and a grader may run it.
The value must be a finite number (``int``, ``float``, ``bool``, ``Decimal``, ``Fraction``, a
numpy scalar), or a dict ``{"score": number, "passed": bool, "reason": str}`` (passed and
reason optional; ``passed`` is the verdict, over ``pass_threshold``); it is clamped to [0, 1] (the explanation says so when it was outside; an integer
too large for a float is clamped too). An exception, a time-out or a non-number is ``Score.error`` with the
traceback kept (OpenAI scores these 0; we never hide them). That includes a limit hit by
model-written code that the grader runs (a time-out, ``os._exit``, a crash): in a ``python``
grader the grader is the user's code, which decides what to do with the model's, so its failure
is the grader's and is not scored; ``code_exec`` and ``code_edits`` score such failures 0. Each grade records its
``confinement``. Extensions: ``timeout`` (seconds, default 60), ``memory_mb`` (at most 2048).
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

from posttrain.errors import UserError
from posttrain.graders._common import name_of, threshold
from posttrain.graders.base import Grader, GraderContext
from posttrain.graders.registry import require
from posttrain.plugins import register_grader
from posttrain.types import Score

MAX_SOURCE_BYTES = 256 * 1024


class PythonGrader(Grader):
    type = "python"
    #: the runner grades it in a thread: a call waits on a sandboxed process (up to its timeout)
    blocking = True

    def __init__(self, name: str, source: str, pass_threshold: float | None = None,
                 timeout: float = 60.0, memory_mb: int | None = None,
                 filename: str = "<grader>", source_file: str | None = None,
                 image_tag: str | None = None) -> None:
        super().__init__(name, pass_threshold)
        self.source = source
        self.timeout = timeout
        self.memory_mb = memory_mb
        self.filename = filename
        self.source_file = source_file
        self.image_tag = image_tag

    def grade(self, sample: dict[str, Any], item: dict[str, Any]) -> Score:
        from posttrain.graders.sandbox import SandboxError, default_pool
        from posttrain.graders.strict import Malformed, decode, number

        try:
            result = default_pool().run(
                self.source, [sample, item], timeout=self.timeout, filename=self.filename,
                memory=self.memory_mb * 1024**2 if self.memory_mb else None,
            )
        except SandboxError as exc:
            return Score(value=None, status="error", name=self.name,
                         explanation=f"the sandbox could not run this grader: {exc}")
        if not result.ok:
            return Score(value=None, status="error", name=self.name,
                         explanation=f"python grader {result.status}: {result.error}".rstrip(),
                         confinement=result.confinement)
        try:
            returned = decode(result.value)
        except Malformed as exc:
            returned = exc
        passed_by_grader: bool | None = None
        reason = ""
        if isinstance(returned, dict):  # {"score": x, "passed": bool, "reason": str}
            unknown = sorted(str(k) for k in returned if k not in ("score", "passed", "reason"))
            passed_by_grader = returned.get("passed")
            if unknown or "score" not in returned or (
                    passed_by_grader is not None and type(passed_by_grader) is not bool):
                return Score(value=None, status="error", name=self.name,
                             confinement=result.confinement,
                             explanation="grade() returned a dict: it takes 'score' (a number), "
                             "'passed' (True/False) and 'reason' only, got "
                             f"{returned!r:.200}")
            reason = str(returned.get("reason") or "")[:1000]
            returned = returned["score"]
        value = number(returned)
        if value is None:
            return Score(value=None, status="error", name=self.name, confinement=result.confinement,
                         explanation=f"grade() must return a finite number, got {returned!r:.200}")
        clamped = min(1.0, max(0.0, value))
        if type(returned) is int and abs(returned) > 2**1000:
            digits = int(returned.bit_length() * 0.30103) + 1
            shown = f"{'-' if returned < 0 else ''}an integer of about {digits} digits"
        else:
            shown = f"{value:g}"
        why = f"grade() = {shown}" + (f", clamped to {clamped:g}" if clamped != value else "")
        if reason:
            why += f": {reason}"
        passed = clamped >= self.pass_threshold if self.pass_threshold is not None else None
        if passed_by_grader is not None:  # the grader's own verdict, as promptfoo's pass
            passed = passed_by_grader
        return Score(value=clamped, passed=passed, name=self.name, explanation=why,
                     confinement=result.confinement)

    def spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"type": self.type, "name": self.name}
        if self.source_file:
            spec["source_file"] = self.source_file
        else:
            spec["source"] = self.source
        for key in ("pass_threshold", "image_tag", "memory_mb"):
            if getattr(self, key) is not None:
                spec[key] = getattr(self, key)
        spec["timeout"] = self.timeout
        return spec


def check_source(source: str, function: str, context: GraderContext, field: str,
                 filename: str) -> None:
    """Syntax and ``def function`` checked at build time, so a bad grader fails before a run."""
    if len(source.encode()) > MAX_SOURCE_BYTES:
        raise UserError(f"source is over {MAX_SOURCE_BYTES // 1024} kB", file=context.source,
                        field=field)
    try:
        tree = ast.parse(source, filename=filename)
    except SyntaxError as exc:
        raise UserError(f"syntax error at line {exc.lineno}: {exc.msg}", file=context.source,
                        field=field) from None
    defined = {node.name for node in tree.body
               if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))}
    defined |= {target.id for node in tree.body if isinstance(node, ast.Assign)
                for target in node.targets if isinstance(target, ast.Name)}
    if function not in defined:
        raise UserError(f"the source must define {function}(sample, item)", file=context.source,
                        field=field)


@register_grader("python")
def build(spec: dict[str, Any], context: GraderContext) -> Grader:
    source = require(spec, "source", str, context, default=None)
    source_file = require(spec, "source_file", str, context, default=None)
    filename = "<grader>"
    if (source is None) == (source_file is None):
        raise UserError("give exactly one of `source` and `source_file`", file=context.source,
                        field="source")
    if source_file is not None:
        path = Path(source_file)
        if not path.is_absolute():
            path = (context.base_dir or Path.cwd()) / path
        from posttrain.loaders.datasets import decode

        try:
            data = path.read_bytes()
        except OSError as exc:
            raise UserError(f"cannot read {path}: {exc.strerror}", file=context.source,
                            field="source_file") from None
        source = decode(data, path)  # UTF-8, BOM allowed; else file:line: not UTF-8
        filename = str(path)
    assert source is not None
    check_source(source, "grade", context, "source_file" if source_file else "source", filename)
    timeout = require(spec, "timeout", (int, float), context, default=60.0)
    memory_mb = require(spec, "memory_mb", int, context, default=None)
    if not 0 < timeout <= 600:
        raise UserError("must be in (0, 600] seconds", file=context.source, field="timeout")
    if memory_mb is not None and not 16 <= memory_mb <= 2048:
        raise UserError("must be between 16 and 2048", file=context.source, field="memory_mb")
    return PythonGrader(
        name=name_of(spec, context, "python"), source=source,
        pass_threshold=threshold(spec, context), timeout=float(timeout), memory_mb=memory_mb,
        filename=filename, source_file=source_file,
        image_tag=require(spec, "image_tag", str, context, default=None),
    )
