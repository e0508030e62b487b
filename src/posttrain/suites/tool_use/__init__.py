"""``tool_use``: tool-calling tasks in simulated environments whose final state is checked.

Three categories (tau-bench-style end-state reward, When2Call/BFCL-style decisions):

- ambiguity: a required detail missing (right move: ask, then finish), fully specified, or a
  detail the policy gives a default for (right move: proceed); over- and under-asking are
  scored separately. The developer's clarifying policy is the eval's variant
  (``default`` = ask when unsure, ``proceed_with_assumptions``).
- grit: the state-changing tool fails (HTTP 500/503, timeout, garbled body), transiently or
  permanently; success is finishing by retrying, or an honest failure report with the state
  untouched. The ``persistence`` variant adds GPT-4.1's persistence reminder.
- irrelevance: no tool fits the request; any call is a hallucinated call.

Run with ``--epochs K`` and use :func:`posttrain.suites.tool_use.metrics.pass_hat_k` for pass^k.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from posttrain.errors import UserError
from posttrain.plugins import register_suite
from posttrain.suites import SuiteInfo, write_eval_file, write_rows

SUITE = SuiteInfo(
    name="tool_use",
    measures="Agentic tool use in simulated environments (orders, calendar, files, bank) "
             "graded by final state: asking vs proceeding, grit under tool failures, "
             "irrelevance (no call when no tool fits); pass^k over repeated trials.",
    components=["ambiguity", "grit", "irrelevance", "state_ok", "outputs_ok", "over_ask",
                "under_ask", "honest", "recovered", "retries_ok", "hallucinated_call", "declined"],
    default_n=100,
)

ASK_WHEN_UNSURE = (
    "If you are unsure about a detail the request needs, ask the user before acting. Do not "
    "guess values such as ids, names, dates, times or amounts. If you don't have enough "
    "information to call a tool, ask the user for the information you need."
)
PROCEED_WITH_ASSUMPTIONS = (
    "Avoid clarifying questions. If a detail is unclear, make a reasonable assumption, proceed, "
    "and state the assumption in your final reply. Ask only when the task is impossible without "
    "the missing detail."
)
# GPT-4.1 prompting guide, agentic reminder 1 (verbatim)
PERSISTENCE = (
    "You are an agent - please keep going until the user’s query is completely resolved, before "
    "ending your turn and yielding back to the user. Only terminate your turn when you are sure "
    "that the problem is solved."
)
SOLVER = "posttrain.suites.tool_use.solver:solve"
GRADER_TYPE = "tool_use"


def _messages(*policies: str) -> list[dict[str, str]]:
    system = "{{item.system}}\n\n# Clarifying questions\n" + "\n\n".join(policies)
    return [{"role": "system", "content": system},
            {"role": "user", "content": "{{item.user_message}}"}]


def eval_spec(dataset: str, n: int, seed: int) -> dict[str, Any]:
    return {
        "name": "tool_use",
        "description": SUITE.measures,
        "dataset": dataset,
        "messages": _messages(ASK_WHEN_UNSURE),
        "variants": {
            "proceed_with_assumptions": {"messages": _messages(PROCEED_WITH_ASSUMPTIONS)},
            "persistence": {"messages": _messages(ASK_WHEN_UNSURE, PERSISTENCE)},
        },
        "tools": "{{item.tools}}",
        "solver": SOLVER,
        "graders": [{"type": GRADER_TYPE, "name": "tool_use"}],
        "tag": ["category", "domain", "case"],
        "sampling": {"max_tokens": 1024},
        "metadata": {"suite": "tool_use", "n": n, "seed": seed},
    }


@register_suite("tool_use")
def build(out_dir: Path, *, n: int | None, seed: int, length: int | None) -> Path:
    """Write ``eval.yaml`` and ``tool_use.jsonl`` into ``out_dir``; return the eval path."""
    from posttrain.suites.tool_use.generate import make_items

    if length is not None:
        raise UserError("the tool_use suite has no length setting", field="length")
    count = SUITE.default_n if n is None else n
    if count < 1:
        raise UserError(f"must be at least 1, got {count}", field="n")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    dataset = write_rows(out_dir / "tool_use.jsonl", make_items(count, seed), sort_keys=True)
    return write_eval_file(out_dir, eval_spec(dataset.name, count, seed))
