"""Evaluation of a local model on an eval's items, for training loops.

``evaluate_stored`` goes through the runner (the ``hf:`` provider, the store, the cache), so a
before/after comparison is two ordinary stored runs that ``posttrain report`` and ``posttrain
compare`` show. ``evaluate`` generates in-process from a model object already in memory (the
policy during training, for validation), graded the same way.
"""

from __future__ import annotations

from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

from posttrain.eval import Eval
from posttrain.types import Completion, Item, Score

T = TypeVar("T")


def grade_sample(eval_: Eval, sample: dict[str, Any], item: dict[str, Any]) -> Score:
    """The sample's combined score, exactly as a stored run computes it.

    Graders that need no event loop (string, similarity, sandboxed code) are called directly;
    judges run in a loop of their own (:func:`run_interruptibly`), so a Ctrl-C during a reward
    or a validation grade surfaces as one ``KeyboardInterrupt``."""
    from posttrain.analysis.results import combine
    from posttrain.runner.executor import grade_all, grade_sync

    graders = eval_.graders
    if any(grader.is_async for grader in graders):
        scores = run_interruptibly(grade_all(graders, sample, item))
    else:
        scores = grade_sync(graders, sample, item)
    status, value, passed, reason = combine({s.name: s for s in scores}, eval_.primary)
    return Score(value=value, passed=passed, status=status, explanation=reason,  # type: ignore[arg-type]
                 sub_scores={s.name: float(s.value) for s in scores if s.value is not None})


_runner: Any = None


def run_interruptibly(coro: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run`` for the many short grades and episode batches of a training loop, in one
    event loop made once per process (closed at exit): a Ctrl-C while it runs cancels the
    coroutine and is raised as one ``KeyboardInterrupt`` (``asyncio.Runner``'s handling), and
    an interrupt inside a task is left to the caller to report (:func:`_quiet_interrupts`). A
    fresh loop per call, as ``asyncio.run`` makes, is where an interrupt lands mid-construction
    or mid-close and leaves half-built loops whose finalizers print tracebacks. After an
    interrupt the loop is closed and the next call makes another."""
    global _runner
    if _runner is None:
        import asyncio
        import atexit

        _runner = asyncio.Runner()
        _runner.get_loop().set_exception_handler(_quiet_interrupts)
        atexit.unregister(_close_runner)  # once, however many runners an interrupt remade
        atexit.register(_close_runner)
    try:
        return _runner.run(coro)  # type: ignore[no-any-return]
    except BaseException as exc:
        if not isinstance(exc, Exception):  # an interrupt can leave the loop's stop queued
            runner, _runner = _runner, None
            runner.close()
        raise


def _close_runner() -> None:
    if _runner is not None:
        _runner.close()


def _quiet_interrupts(loop: Any, context: dict[str, Any]) -> None:
    """An interrupt raised inside a task (an episode's, when SIGTERM arrives while SIGINT is
    ignored) is the caller's to report, in one line: not "Task exception was never retrieved"
    and a traceback."""
    if isinstance(context.get("exception"), KeyboardInterrupt):
        return
    loop.default_exception_handler(context)


def generate(model: Any, tokenizer: Any, conversations: list[list[dict[str, Any]]], *,
             max_new_tokens: int = 64, batch_size: int = 64) -> list[str]:
    """Greedy generation with the chat template, left padding, in batches."""
    import torch

    tokenizer.padding_side = "left"
    texts: list[str] = []
    model.eval()
    for start in range(0, len(conversations), batch_size):
        batch = conversations[start:start + batch_size]
        prompts = [tokenizer.apply_chat_template(m, tokenize=False, add_generation_prompt=True)
                   for m in batch]
        encoded = tokenizer(prompts, return_tensors="pt", padding=True,
                            add_special_tokens=False)
        with torch.no_grad():
            output = model.generate(**encoded, max_new_tokens=max_new_tokens, do_sample=False,
                                    pad_token_id=tokenizer.pad_token_id)
        new = output[:, encoded["input_ids"].shape[1]:]
        texts.extend(t.strip() for t in tokenizer.batch_decode(new, skip_special_tokens=True))
    return texts


def evaluate(model_dir: str | Path, eval_: Eval, items: list[Item] | None = None, *,
             batch_size: int = 64, model: Any = None, tokenizer: Any = None,
             return_texts: bool = False) -> Any:
    """Per-item scores (greedy) of the model in ``model_dir`` on ``items`` (default: all)."""
    from posttrain.train.common import load_tokenizer

    items = eval_.items if items is None else items
    if model is None:
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(str(model_dir))
        tokenizer = load_tokenizer(str(model_dir))
    requests = [eval_.request_for(item) for item in items]
    max_new = max((r.max_tokens or 64) for r in requests) if requests else 64
    from posttrain.train.rft import local_prompt

    texts = generate(model, tokenizer, [local_prompt(r) for r in requests],
                     max_new_tokens=max_new, batch_size=batch_size)
    scores = [grade_sample(eval_, eval_.sample_of(Completion(text=text), r), item.data)
              for text, r, item in zip(texts, requests, items, strict=True)]
    return (scores, texts) if return_texts else scores


def mean_score(scores: list[Score]) -> float:
    """The headline mean: every score counts, an unscored or failed grade as 0 (as in
    ``RunResults.item_scores``), so a checkpoint whose answers break the grader never looks
    better than one whose answers are graded."""
    values = [float(s.value) if s.status == "scored" and s.value is not None else 0.0
              for s in scores]
    return sum(values) / len(values) if values else 0.0


def evaluate_stored(model_dir: str | Path, eval_: Eval, items: list[Item],
                    store: str | Path) -> tuple[dict[str, float], dict[str, Any]]:
    """Run ``hf:model_dir`` on ``items`` through the runner; (item -> score, run summary)."""
    import dataclasses

    from posttrain.analysis.results import load_results
    from posttrain.api import run_eval
    from posttrain.runner.store import Store

    subset = dataclasses.replace(eval_, items=list(items))
    (summary,) = run_eval(subset, [f"hf:{model_dir}"], variants=["default"], store=store)
    with Store(store) as db:
        results = load_results(db, summary["run_id"])
    summary["scored_items"] = len(results.item_scores(scored_only=True))
    return results.item_scores(), summary
