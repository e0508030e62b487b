"""The cusp finder: what is "just out of reach", from k sampled answers per item.

GRPO learns only from groups whose rewards differ: an item whose k sampled answers all fail
(or all pass) gives no signal. So with k samples per item at a temperature above 0, each tag
and each grader component gets:

- ``pass@1``: the mean share of an item's samples that pass (a failed or unscored sample did
  not pass, as in the headline), with its 95% interval;
- ``pass@k``: the unbiased estimate of "at least one of k passes" (Chen et al. 2021);
- ``pass^k``: "all k pass" (tau-bench's reliability);
- ``signal``: the share of items whose scored rewards are not all equal (Wilson 95%
  interval): the items where a GRPO group has a non-zero advantage. Only scored samples count
  here: a request that failed or a grader that could not grade is no reward the model earned
  (in training an unscored reward is skipped), so it never makes an item look like signal.

Each tag is called, from these numbers (the first rule that holds):

1. *clears the bar*: pass@1 >= the bar;
2. *prompt or SFT will do*: pass@k >= the bar (the model finds a passing answer within k
   tries: best-of-k answers are SFT data, or a prompt change makes it reliable);
3. *RFT candidate - on the cusp*: signal >= ``min_signal`` (some items' groups differ:
   the eval's graders as the reward have something to push on);
4. *out of reach*: no signal (every sample of nearly every item fails alike: RFT has no
   gradient, the tag waits for the next model, or needs SFT on written answers first).

Each call names the number that decided it and says when that number's 95% interval crosses
the threshold (``uncertain``): at 20 items, a pass@1 of 0.75 against a bar of 0.8 is no call.

After a fine-tuning run, :func:`fine_tune_label` applies the interview's rule of thumb to a tag's
paired before/after change ("10% -> 50% with fine-tuning: on the cusp, a future model will
likely solve it; build for it now").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from posttrain.analysis.results import RunResults, SampleResult
from posttrain.analysis.selection import item_groups, sample_passed
from posttrain.analysis.stats import mean_interval, pass_at_k, pass_hat_k, wilson_interval

CLEARS = "clears the bar"
SFT = "prompt or SFT will do"
CUSP = "RFT candidate - on the cusp"
OUT = "out of reach"
CLASSES = (CLEARS, SFT, CUSP, OUT)

DEFAULT_BAR = 0.8
DEFAULT_MIN_SIGNAL = 0.1
ALL_ITEMS = "(all items)"


def _stats(per_item: Sequence[tuple[list[float], list[bool], list[float]]], k: int
           ) -> dict[str, Any]:
    """Numbers of one group: per item (the k reward values, the k pass verdicts, the values of
    its scored samples only)."""
    n = len(per_item)
    if not n:
        return {"n": 0}
    rates = [sum(passes) / len(passes) for _, passes, _ in per_item]
    p1 = mean_interval(rates)
    pk = [pass_at_k(len(passes), sum(passes), min(k, len(passes))) for _, passes, _ in per_item]
    phk = [pass_hat_k(len(passes), sum(passes), min(k, len(passes)))
           for _, passes, _ in per_item]
    varying = sum(1 for _, _, scored in per_item
                  if len(scored) > 1 and max(scored) - min(scored) > 1e-9)
    low, high = wilson_interval(varying, n)
    mean_reward = sum(sum(v) / len(v) for v, _, _ in per_item) / n
    return {"n": n, "pass_at_1": p1.estimate, "pass_at_1_ci": [p1.low, p1.high],
            "pass_at_k": sum(pk) / n, "pass_hat_k": sum(phk) / n,
            "mean_reward": mean_reward, "signal": varying / n, "signal_ci": [low, high],
            "items_varying": varying,
            "items_unvaried_scored": sum(1 for _, _, scored in per_item if len(scored) < 2),
            "all_fail": sum(1 for r in rates if r == 0.0),
            "all_pass": sum(1 for r in rates if r == 1.0)}


def classify(row: dict[str, Any], bar: float, min_signal: float) -> dict[str, str | bool]:
    """The call for one group's numbers, the reason with its figures, and whether the deciding
    number's interval crosses its threshold."""
    p1, pk, sig = row["pass_at_1"], row["pass_at_k"], row["signal"]
    lo1, hi1 = row["pass_at_1_ci"]
    los, his = row["signal_ci"]
    if p1 >= bar:
        return {"class": CLEARS, "uncertain": lo1 is not None and lo1 < bar,
                "why": f"pass@1 {p1:.0%} >= bar {bar:.0%}"}
    if pk >= bar:
        return {"class": SFT, "uncertain": hi1 is not None and hi1 >= bar,
                "why": f"pass@1 {p1:.0%} < bar, pass@{row['k']} {pk:.0%} >= bar {bar:.0%}: a "
                       "passing answer is within k tries"}
    if sig >= min_signal:
        return {"class": CUSP, "uncertain": los < min_signal,
                "why": f"pass@{row['k']} {pk:.0%} < bar; {row['items_varying']}/{row['n']} "
                       f"items ({sig:.0%}) have rewards that differ across samples: GRPO signal"}
    return {"class": OUT, "uncertain": his >= min_signal,
            "why": f"pass@{row['k']} {pk:.0%}; only {row['items_varying']}/{row['n']} items "
                   f"({sig:.0%}) vary across samples: no signal for RFT"}


def _sample_value(sample: SampleResult | None) -> float:
    if sample is None or sample.status != "scored" or sample.value is None:
        return 0.0
    return float(sample.value)


def cusp_report(results: RunResults, *, bar: float | None = None,
                min_signal: float = DEFAULT_MIN_SIGNAL, by: str | None = None,
                component_pass: float = 0.5, temperature: float | None = None
                ) -> dict[str, Any]:
    """Per tag (and all items) and per grader component: pass@1, pass@k, pass^k and signal
    from a run with k epochs; the call for each tag (``temperature``: the run's, when known).
    A missing, failed or unscored sample is a
    fail with reward 0 in pass@1, pass@k and pass^k (headline semantics) and no reward at all
    in ``signal``, so a failed request or a broken grader never looks like signal; every item
    counts in every component (a grader that never graded an item's answers: reward 0)."""
    k = max(1, results.run.epochs)
    if k < 2:
        raise ValueError(f"the cusp needs at least 2 samples per item (this run has {k}): "
                         "run it with --k 8")
    if bar is None:
        configured = results.run.config.get("pass_bar")
        bar = float(configured) if isinstance(configured, (int, float)) else DEFAULT_BAR
    by_item = results.by_item()
    per_item: dict[str, tuple[list[float], list[bool]]] = {}
    components: dict[str, dict[str, tuple[list[float], list[bool]]]] = {}
    for item in results.items:
        samples = {s.epoch: s for s in by_item.get(item.id, [])}
        epochs = sorted(samples) + [None] * max(0, k - len(samples))  # missing: a fail
        chosen = [samples.get(e) if e is not None else None for e in epochs]
        per_item[item.id] = ([_sample_value(s) for s in chosen],
                             [bool(s is not None and sample_passed(s)) for s in chosen],
                             [float(s.value) for s in chosen if s is not None
                              and s.status == "scored" and s.value is not None])
        names: dict[str, None] = {}
        for sample in chosen:
            for name, grade in (sample.grades.items() if sample else ()):
                names.setdefault(name, None)
                for sub in grade.sub_scores:
                    names.setdefault(f"{name}.{sub}", None)
        for name in names:
            grader, _, sub = name.partition(".")
            values: list[float] = []
            scored: list[float] = []
            for sample in chosen:
                grade = sample.grades.get(grader) if sample else None
                value = None
                if grade is not None and grade.status == "scored" and grade.value is not None:
                    raw = grade.sub_scores.get(sub) if sub else grade.value
                    value = float(raw) if isinstance(raw, (int, float)) else None
                if value is not None:
                    scored.append(value)
                values.append(0.0 if value is None else value)
            components.setdefault(name, {})[item.id] = (
                values, [v >= component_pass for v in values], scored)
    for table in components.values():  # an item none of whose answers this grader graded
        for item in results.items:
            table.setdefault(item.id, ([0.0] * k, [False] * k, []))
    groups = {ALL_ITEMS: [item.id for item in results.items]}
    groups.update(item_groups([results], by))
    tags = []
    for name, ids in groups.items():
        row = {"tag": name, "k": k, **_stats([per_item[i] for i in ids if i in per_item], k)}
        if row["n"]:
            row.update(classify(row, bar, min_signal))
            tags.append(row)
    comps = []
    for name in sorted(components):
        row = {"component": name, "k": k, **_stats(list(components[name].values()), k)}
        comps.append(row)
    counts = {c: sum(1 for t in tags if t["tag"] != ALL_ITEMS and t["class"] == c)
              for c in CLASSES}
    coverage = _coverage(results, by_item, k)
    warnings = []
    not_scored = coverage["expected"] - coverage["scored"]
    if not_scored:
        parts = ", ".join(f"{coverage[key]} {key}" for key in ("unscored", "error", "missing")
                          if coverage[key])
        warnings.append(f"{not_scored} of {coverage['expected']} samples are not scored "
                        f"({parts}; unscored: a grader could not grade; error: the request or a "
                        f"grader failed): each counts as a fail with reward 0 in pass@1, "
                        "pass@k and pass^k, so those understate the model where they are, and "
                        "as no reward in signal, which they cannot raise; see "
                        "`posttrain report`")
    if temperature is not None and float(temperature) == 0.0:
        warnings.append("the run sampled at temperature 0: k answers of a deterministic model "
                        "are the same answer, so 'signal' is understated")
    return {"run": results.run.id, "eval": results.run.eval_name, "model": results.run.model,
            "variant": results.run.variant, "k": k, "bar": bar, "min_signal": min_signal,
            "component_pass": component_pass, "temperature": temperature,
            "tags": tags, "components": comps, "counts": counts, "coverage": coverage,
            "warnings": warnings}


def _coverage(results: RunResults, by_item: dict[str, list[SampleResult]], k: int
              ) -> dict[str, int]:
    """Samples expected (items x k) and how many are scored, unscored, errors or missing."""
    counts = {"expected": len(results.items) * k, "scored": 0, "unscored": 0, "error": 0,
              "missing": 0}
    for item in results.items:
        samples = by_item.get(item.id, [])[:k]
        for sample in samples:
            status = "scored" if sample.status == "scored" and sample.value is not None else (
                "unscored" if sample.status == "unscored" else "error")
            counts[status] += 1
        counts["missing"] += max(0, k - len(samples))
    return counts


# ---- after fine-tuning: the interview's rule of thumb ------------------------------------------
TUNE_CUSP = "on the cusp: build for it now"
TUNE_CLEARS = "fine-tuning clears it"
TUNE_GAIN = "gained"
TUNE_NONE = "no clear gain"
TUNE_OUT = "out of reach"
TUNE_WORSE = "worse after fine-tuning"


def fine_tune_label(before: float, after: float, significant: bool, *,
                    bar: float = DEFAULT_BAR, low: float = 0.35, lift: float = 0.2) -> str:
    """A tag's before -> after (fine-tuned) change, by the rule of thumb: a low pass rate
    (<= ``low``) that fine-tuning lifts significantly by at least ``lift`` but not to the bar
    is on the cusp ("10% -> 50%"); one lifted to the bar is cleared by fine-tuning; no
    significant change from near 0 is out of reach."""
    diff = after - before
    if significant and diff < 0:
        return TUNE_WORSE
    if significant and diff > 0:
        if after >= bar:
            return TUNE_CLEARS
        if before <= low and diff >= lift:
            return TUNE_CUSP
        return TUNE_GAIN
    return TUNE_OUT if after < 0.1 else TUNE_NONE
