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
    """GRPO steps in which no reward was scored at all: the graders cannot grade this
    training's answers (a grader that reads what only a solver's sample has, a judge that never
    gives a number), so training would learn nothing and a model that learned nothing would be
    saved as a result."""


class ScoredWatch:
    """Stops training (:class:`NoScoredReward`) when none of the rewards of its first ``steps``
    GRPO steps (all of them, in a shorter run) was scored. Once some reward has been scored, a
    step whose rewards are all ``None`` is skipped by TRL and counted, as a single one is: a
    flaky judge or a few prompts the graders cannot read do not throw the run away."""

    def __init__(self, steps: int = 3) -> None:
        self.steps, self.seen, self.scored, self.rewards = steps, 0, 0, 0

    def check(self, rewards: list[float | None], trainer_state: Any, problems: list[str]
              ) -> None:
        self.seen += 1
        self.rewards += len(rewards)
        self.scored += sum(reward is not None for reward in rewards)
        if self.scored:
            return
        total = getattr(trainer_state, "max_steps", None)
        if self.seen < min(self.steps, total if isinstance(total, int) and total > 0
                           else self.steps):
            return
        last = f" (the grader said: {problems[-1][:200]})" if problems else ""
        raise NoScoredReward(f"none of the {self.rewards} rewards of the first {self.seen} "
                             f"GRPO steps was scored{last}: the eval's graders cannot grade "
                             "these answers as a reward, so there is nothing to train on; "
                             "training stopped", field="--eval")


class EvalReward:
    """Callable reward for GRPO; ``stats`` counts scored / unscored / error grades."""

    def __init__(self, eval_: Eval, response_format: dict[str, Any] | None = None) -> None:
        self.eval = eval_
        self.grader = reward_grader(eval_)
        self._reward = self.grader.as_reward(response_format=response_format,
                                             reasoning=eval_.reasoning)
        self.stats: Counter[str] = Counter()
        self.watch = ScoredWatch()
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
        self.watch.check(rewards, columns.get("trainer_state"),
                         self._reward.stats.last_problems)  # type: ignore[attr-defined]
        return rewards
