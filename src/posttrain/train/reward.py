"""An eval's graders as the RFT reward: the eval's grader's own ``as_reward()``.

The reward function is ``grader.as_reward()`` of the eval's grader (its ``score:`` grader, its
only grader, or a ``multi`` grader averaging them all, as hosted RFT takes one grader), so the
reward is exactly the eval's score for the same answer. Each dataset row carries its item as a
JSON string column ``item_json`` (item fields can clash with TRL's own ``prompt`` column and
need not fit an Arrow schema). Unscored and errored grades give reward ``None`` (TRL skips the
completion: no signal rather than a wrong one) and are counted (``stats``), never hidden.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from posttrain.errors import UserError
from posttrain.eval import Eval
from posttrain.graders.base import Grader


def reward_grader(eval_: Eval) -> Grader:
    """The one grader whose value is the eval's sample score."""
    graders = eval_.graders
    if eval_.primary is not None:
        return next(g for g in graders if g.name == eval_.primary)
    if len(graders) == 1:
        return graders[0]
    from posttrain.graders.multi import MultiGrader

    keys = {f"g{index}": grader for index, grader in enumerate(graders)}
    return MultiGrader(f"{eval_.name}_mean", keys, f"({' + '.join(keys)}) / {len(keys)}")


class NoScoredReward(UserError):
    """A GRPO step in which no reward was scored: the graders cannot grade this training's
    answers (a grader that reads what only a solver's sample has, a judge that is down), so
    the step would train on nothing and a model that learned nothing would be saved."""


def require_scored(rewards: list[float | None], trainer_state: Any, problems: list[str]) -> None:
    """Raise :class:`NoScoredReward` when every reward of a step is ``None`` (unscored or
    errored); ``problems``: the graders' explanations, the last one is named."""
    if not rewards or any(reward is not None for reward in rewards):
        return
    step = getattr(trainer_state, "global_step", None)
    where = f"GRPO step {step + 1}" if isinstance(step, int) else "a GRPO step"
    last = f" (the grader said: {problems[-1][:200]})" if problems else ""
    raise NoScoredReward(f"none of the {len(rewards)} rewards of {where} was scored{last}: the "
                         "eval's graders cannot grade these answers as a reward, so there is "
                         "nothing to train on; training stopped", field="--eval")


class EvalReward:
    """Callable reward for GRPO; ``stats`` counts scored / unscored / error grades."""

    def __init__(self, eval_: Eval, response_format: dict[str, Any] | None = None) -> None:
        self.eval = eval_
        self.grader = reward_grader(eval_)
        self._reward = self.grader.as_reward(response_format=response_format,
                                             reasoning=eval_.reasoning)
        self.stats: Counter[str] = Counter()
        self.__name__ = f"reward_{eval_.name}"  # TRL logs rewards by function name
        self.last: list[tuple[str, dict[str, Any], float]] = []  # (text, item, reward)

    def close(self) -> None:
        """Close what the reward's judges opened (their HTTP clients)."""
        close = getattr(self._reward, "close", None)
        if close is not None:
            close()

    def __call__(self, prompts: list[Any], completions: list[Any], **columns: Any
                 ) -> list[float | None]:
        if "item_json" not in columns:
            raise ValueError("the RFT dataset needs an `item_json` column")
        before = self._reward.stats.as_dict()  # type: ignore[attr-defined]
        # as graded in an eval: Completion.to_sample drops the answer's surrounding whitespace
        rewards = self._reward(prompts, list(completions), **columns)
        after = self._reward.stats.as_dict()  # type: ignore[attr-defined]
        for status in ("scored", "unscored", "error"):
            self.stats[status] += after[status] - before[status]
        self.last = list(self._reward.last)  # type: ignore[attr-defined]
        require_scored(rewards, columns.get("trainer_state"),
                       self._reward.stats.last_problems)  # type: ignore[attr-defined]
        return rewards
