"""posttrain: the eval-driven post-training loop, open and local.

Light at import: the names below load their modules on first use.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "Eval": "posttrain.eval",
    "load_eval": "posttrain.eval",
    "eval_from_dict": "posttrain.eval",
    "run_eval": "posttrain.api",
    "arun_eval": "posttrain.api",
    "build_grader": "posttrain.graders.registry",
    "Score": "posttrain.types",
    "Completion": "posttrain.types",
    "ChatRequest": "posttrain.types",
    "Item": "posttrain.types",
    "resolve_model": "posttrain.models",
}


def __getattr__(name: str) -> Any:
    if name == "grader":
        from posttrain.graders.decorators import grader

        return grader
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'posttrain' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


__all__ = [*_EXPORTS, "grader", "__version__"]
