"""A grade in the shape of OpenAI's grader-run endpoint (``POST /fine_tuning/alpha/graders/run``):
``{reward, sub_rewards, metadata: {name, type, execution_time, scores, token_usage,
sampled_model_name, errors: {...}}, model_grader_token_usage_per_model}``.

OpenAI scores a grader that failed as 0 and sets one of its ``errors`` flags; posttrain keeps
such a grade *unscored* (or *error*). Here ``reward`` is 0.0 as OpenAI would report it, the
matching flag is set, and ``metadata.posttrain`` says the status and why, so the 0 is never
mistaken for a graded answer.
"""

from __future__ import annotations

from typing import Any

ERROR_FLAGS = ("formula_parse_error", "invalid_variable_error", "model_grader_parse_error",
               "model_grader_refusal_error", "model_grader_server_error",
               "model_grader_server_error_details", "python_grader_runtime_error",
               "python_grader_runtime_error_details", "python_grader_server_error",
               "python_grader_server_error_type", "sample_parse_error",
               "truncated_observation_error", "unresponsive_reward_error", "other_error")


def _flag(grader_type: str, status: str, explanation: str) -> str:
    text = explanation.lower()
    if text.startswith("calculate_output"):
        return "formula_parse_error"
    if "template" in text or "has no field" in text or "no field" in text:
        return "invalid_variable_error"
    if grader_type == "python":
        return "python_grader_runtime_error" if status == "error" else "other_error"
    if grader_type in ("score_model", "label_model"):
        if "refus" in text:
            return "model_grader_refusal_error"
        if status == "error" or "http" in text or "request" in text:
            return "model_grader_server_error"
        return "model_grader_parse_error"
    return "other_error"


def grader_run_response(grader: Any, score: Any, seconds: float) -> dict[str, Any]:
    errors: dict[str, Any] = {key: (None if key.endswith(("_details", "_type")) else False)
                              for key in ERROR_FLAGS}
    scored = score.status == "scored" and score.value is not None
    if not scored:
        flag = _flag(grader.type, score.status, score.explanation or "")
        errors[flag] = True
        detail = f"{flag}_details"
        if detail in errors:
            errors[detail] = score.explanation
    metadata: dict[str, Any] = {
        "name": grader.name, "type": grader.type, "errors": errors,
        "execution_time": round(seconds, 6), "scores": dict(score.sub_scores),
        "token_usage": None, "sampled_model_name": None,
        "posttrain": {"status": score.status, "passed": score.passed,
                      "explanation": score.explanation},
    }
    return {"reward": float(score.value) if scored else 0.0,
            "sub_rewards": dict(score.sub_scores), "metadata": metadata,
            "model_grader_token_usage_per_model": {}}
