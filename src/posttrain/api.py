"""Run evals from Python: ``run_eval(eval_or_path, models=[...])`` -> per-run summaries.

The same path as ``posttrain eval``: same store, cache, resume and report dicts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from posttrain.eval import Eval, load_eval
from posttrain.runner.executor import RunOptions, execute_eval
from posttrain.runner.progress import Progress
from posttrain.runner.store import Store


async def arun_eval(eval_: Eval | str | Path, models: Sequence[str], *,
                    variants: Sequence[str] | None = None, store: str | Path = "posttrain.db",
                    options: RunOptions | None = None, models_file: str | Path | None = None,
                    progress: bool = False) -> list[dict[str, Any]]:
    from posttrain.analysis.report import summarize
    from posttrain.analysis.results import load_results
    from posttrain.models import build_model, model_config

    def judge_factory(spec: str) -> Any:
        return build_model(model_config(spec, models_file))

    if not isinstance(eval_, Eval):
        eval_ = load_eval(eval_, model_factory=judge_factory)
    configs = [model_config(spec, models_file) for spec in models]
    options = options or RunOptions()
    built = [build_model(config, concurrency=options.concurrency,
                         timeout_s=options.retry.timeout_s) for config in configs]
    db = Store(store)
    try:
        handles = await execute_eval(
            eval_, built, list(variants or eval_.variants), db, options,
            progress=Progress(enabled=progress),
            model_configs={config.name: config.public() for config in configs})
        return [summarize(load_results(db, handle.run), requests=handle.counters.requests)
                for handle in handles]
    finally:
        for model in built:
            await model.aclose()
        await eval_.aclose()
        db.close()


def run_eval(eval_: Eval | str | Path, models: Sequence[str], **kwargs: Any) -> list[dict[str, Any]]:
    """Synchronous wrapper of :func:`arun_eval`."""
    return asyncio.run(arun_eval(eval_, models, **kwargs))
