"""Run summaries: score with a 95% CI, counts, cost, latency, per-tag and per-component breakdowns.

``summarize`` gives the dict behind ``--json``; ``render_table`` the terminal view;
``render_html`` a self-contained page (inline SVG, no scripts from elsewhere).
"""

from __future__ import annotations

import html
import math
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from posttrain.analysis.results import RunResults, answer_latencies
from posttrain.analysis.stats import mean_interval, pass_at_k, pass_hat_k, percentile


def _round(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def _interval_entry(values: list[float]) -> dict[str, Any]:
    interval = mean_interval(values)
    return {"n": len(values), "score": _round(interval.estimate), "ci_low": _round(interval.low),
            "ci_high": _round(interval.high), "ci_method": interval.method}


def summarize(results: RunResults, *, requests: int | None = None) -> dict[str, Any]:
    """The per-run JSON object of the CLI contract (plus breakdowns).

    ``score`` is the **headline**: the mean over every item of the run, where a sample that
    failed (request error after retries), could not be graded (unscored) or was never answered
    counts 0, with its 95% interval (``ci_method`` names the method). ``coverage`` is scored /
    expected samples; ``score_scored_only`` is the mean over scored samples alone (secondary).
    ``pass_bar`` verdicts, ``--fail-under``, ``pick``, ``compare`` and ``audit`` use the
    headline.
    """
    run = results.run
    samples = results.samples
    item_scores = results.item_scores()
    headline = mean_interval(list(item_scores.values()))
    scored_only = mean_interval(list(results.item_scores(scored_only=True).values()))
    scored, expected = results.coverage()
    tags_of = {item.id: item.tags for item in results.items}
    by_tag_values: dict[str, list[float]] = defaultdict(list)
    for item_id, value in item_scores.items():
        for tag in tags_of.get(item_id, []):
            by_tag_values[tag].append(value)
    by_tag = {tag: _interval_entry(by_tag_values[tag]) for tag in sorted(by_tag_values)}
    scored_by = results.component_scored()
    epochs = max(1, run.epochs)
    components = {}
    for name, per_item in sorted(results.component_scores().items()):
        entry = _interval_entry(list(per_item.values()))
        entry["scored"] = scored_by.get(name, 0)  # a grader that could not grade counts 0
        entry["coverage"] = _round(entry["scored"] / (len(per_item) * epochs) if per_item
                                   else None)
        components[name] = entry
    latencies = answer_latencies(results)
    grades = [g for s in samples for g in s.grades.values()]
    judge_cost = math.fsum(g.cost_usd for g in grades)
    judge_requests = sum(g.requests for g in grades)
    summary: dict[str, Any] = {
        "run_id": run.id, "eval": run.eval_name, "model": run.model, "variant": run.variant,
        "n": expected,
        "answered": sum(1 for s in samples if s.answered),
        "scored": scored,
        "coverage": _round(scored / expected if expected else None),
        "errors": sum(1 for s in samples if s.status == "error"),
        "unscored": sum(1 for s in samples if s.status == "unscored"),
        "missing": max(0, expected - len(samples)),
        "score": _round(headline.estimate), "ci_low": _round(headline.low),
        "ci_high": _round(headline.high), "ci_method": headline.method,
        "score_scored_only": _round(scored_only.estimate),
        "score_scored_only_ci": [_round(scored_only.low), _round(scored_only.high)],
        "pass_rate": _round(_pass_rate(results, expected)),
        "by_tag": by_tag,
        "components": components,
        "requests": requests if requests is not None else
        sum(s.attempts for s in samples if not s.cached) + judge_requests,
        "retries": sum(s.retries for s in samples) + sum(g.retries for g in grades),
        "cached": sum(1 for s in samples if s.cached),
        "cost_usd": round(sum(s.cost_usd for s in samples if not s.cached) + judge_cost, 6),
        "judge_cost_usd": round(judge_cost, 6),
        "judge_requests": judge_requests,
        "input_tokens": sum(s.input_tokens for s in samples),
        "output_tokens": sum(s.output_tokens for s in samples),
        **token_parts(samples),
        "latency_p50_s": _round(percentile(latencies, 50)),
        "latency_p95_s": _round(percentile(latencies, 95)),
        "epochs": run.epochs,
        "status": run.status,
    }
    summary.update(run_config_fields(run, headline.low))
    if run.epochs > 1:
        summary.update(_pass_k(results))
    reliability = reliability_at_k(results)
    if reliability is not None:
        summary["reliability_at_k"] = reliability
    summary["problems"] = _problems(samples)
    return summary


def run_config_fields(run: Any, low: float | None) -> dict[str, Any]:
    """What a summary takes from the run's config: its sandbox confinement, the response
    cache's checks (``posttrain.runner.cache``: answers served from entries another model wrote
    and asked again, what the live check before cached answers showed), and its pass bar, which
    the headline clears when its interval's lower end ``low`` reaches it."""
    out: dict[str, Any] = {}
    for key in ("confinement", "cache_rerequested", "cache_canary"):
        if run.config.get(key):
            out[key] = run.config[key]
    pass_bar = run.config.get("pass_bar")
    if pass_bar is not None:
        out["pass_bar"] = pass_bar
        out["clears_bar"] = low is not None and low >= pass_bar
    return out


def _problems(samples: list[Any]) -> dict[str, int]:
    """Errors and unscored samples by reason; reasons that differ only in numbers (token counts,
    item numbers) are counted together under the first one seen."""
    return rank_problems((sample.status, sample.reason) for sample in samples
                         if sample.status in ("error", "unscored"))


def rank_problems(problems: Iterable[tuple[str, str]]) -> dict[str, int]:
    """``_problems`` from (status, reason) pairs: the ten commonest reasons, those that differ
    only in numbers counted under the first one seen."""
    import re

    counts: dict[str, int] = defaultdict(int)
    reasons: dict[str, list[str]] = defaultdict(list)
    for status, why in problems:
        reason = f"{status}: {_shorten(why, 120)}"
        shape = re.sub(r"\d+", "#", reason)
        if reason not in reasons[shape]:
            reasons[shape].append(reason)
        counts[shape] += 1
    ranked = sorted(counts.items(), key=lambda kv: -kv[1])[:10]
    return {reasons[shape][0] + (" (and alike)" if len(reasons[shape]) > 1 else ""): count
            for shape, count in ranked}


def _shorten(text: str, width: int) -> str:
    """``text`` cut at a word boundary to at most ``width`` characters, marked with an ellipsis."""
    text = " ".join(text.split())
    if len(text) <= width:
        return text
    cut = text[:width - 1].rsplit(" ", 1)[0] if " " in text[:width - 1] else text[:width - 1]
    return cut.rstrip(" ,;:") + "…"


def _pass_rate(results: RunResults, expected: int) -> float | None:
    """Passed samples over every expected sample (a failed or unscored one did not pass).
    None when there is no verdict to count: no sample expected, or the scored samples' graders
    give no pass verdict; 0.0 when no sample was scored at all (every request failed)."""
    if not expected or (any(s.status == "scored" for s in results.samples)
                        and not any(s.passed is not None for s in results.samples)):
        return None
    return sum(1 for s in results.samples if s.status == "scored" and s.passed) / expected


def _pass_k(results: RunResults) -> dict[str, Any]:
    """pass@k and pass^k over the epochs, each epoch one independent trial, averaged over items.

    Per item the unbiased estimators from its n trials with c passes (``stats.pass_at_k``,
    Chen et al. 2021; ``stats.pass_hat_k``, tau-bench). As in the headline, every sample the
    run holds is a trial and only a scored sample that passed is a pass (a failed request or an
    unscored sample is not), so pass@1 equals ``pass_rate`` on a finished run. An item with
    fewer than k samples (epochs not answered yet) has no estimate for that k: it is counted in
    ``pass_k_not_computable[k]`` and left out of that k's mean, never counted as a pass; a k
    with no computable item is absent from ``pass_at_k`` and ``pass_hat_k``.
    """
    epochs = results.run.epochs
    per_item = results.by_item()
    counts = []
    for item in results.items:
        trials = per_item.get(item.id, [])
        counts.append((len(trials), sum(1 for s in trials if s.status == "scored" and s.passed)))
    return pass_k_figures(counts, epochs)


def pass_k_figures(counts: list[tuple[int, int]], epochs: int) -> dict[str, Any]:
    """``_pass_k``'s figures from each item's (samples n, passes c), k = 1 .. ``epochs``."""
    out: dict[str, Any] = {"pass_at_k": {}, "pass_hat_k": {}, "pass_k_not_computable": {}}
    for k in range(1, epochs + 1):
        computable = [(n, c) for n, c in counts if n >= k]
        out["pass_k_not_computable"][str(k)] = len(counts) - len(computable)
        if computable:
            out["pass_at_k"][str(k)] = round(
                sum(pass_at_k(n, c, k) for n, c in computable) / len(computable), 4)
            out["pass_hat_k"][str(k)] = round(
                sum(pass_hat_k(n, c, k) for n, c in computable) / len(computable), 4)
    return out


def cousin_groups(items: list[Any], ids: set[str] | None = None) -> dict[str, list[str]]:
    """Seed item id -> the ids of it and its cousins in ``items`` (groups of two or more).

    A cousin is a row whose ``provenance`` (written by ``posttrain grow``) has ``kind:
    paraphrase`` and ``seed: ID``; the seed joins its group when it is among ``items`` (or
    ``ids``: every item of the run, where ``items`` holds only those with a provenance).
    """
    ids = {item.id for item in items} if ids is None else ids
    seed_of: dict[str, str] = {}
    for item in items:
        provenance = item.data.get("provenance") if isinstance(item.data, dict) else None
        if isinstance(provenance, dict) and provenance.get("kind") == "paraphrase" \
                and provenance.get("seed") is not None:
            seed_of[item.id] = str(provenance["seed"])
    groups: dict[str, list[str]] = defaultdict(list)
    for item_id, seed in seed_of.items():
        # a cousin of a cousin (an eval grown twice, by a version that recorded the parent as
        # the seed) belongs to the true original's group
        seen = {item_id, seed}
        while seed in seed_of and seed_of[seed] not in seen:
            seed = seed_of[seed]
            seen.add(seed)
        groups[seed].append(item_id)
    return {seed: ([seed] if seed in ids else []) + members
            for seed, members in groups.items()
            if len(members) + (seed in ids) >= 2}


def reliability_at_k(results: RunResults) -> dict[str, Any] | None:
    """reliability@k over cousins: the share of seed items solved in every phrasing.

    A group is a seed item and its paraphrases (``cousin_groups``; k = its size). An item is
    solved when every sample of it passed (headline semantics: a failed, unscored or
    unanswered sample did not); a group counts only when all its k items are solved. Beside it:
    ``item_pass_rate`` (the same items, each counted alone) and ``seed_pass_rate`` (the
    original phrasings alone), so the drop from one to the other is how brittle the model is
    to rephrasing. None when the eval has no cousins.

    Sources: the all-k-must-pass rule of pass^k (tau-bench, Yao et al. 2024,
    arXiv:2406.12045; ``stats.pass_hat_k`` for epochs) and of the "k/k reliability" figures
    in OpenAI's o-series evals, as we read them (we know of no formal definition there); here
    the k trials are k phrasings of one item rather than k samples of one phrasing.
    """
    from posttrain.analysis.selection import item_pass_rates

    groups = cousin_groups(results.items)
    if not groups:
        return None
    return reliability_figures(groups, item_pass_rates(results))


def reliability_figures(groups: dict[str, list[str]], rates: dict[str, float]
                        ) -> dict[str, Any]:
    """reliability@k's figures from ``cousin_groups`` (non-empty) and each item's pass rate
    (an item is solved when every sample passed): groups, k range, the score with its
    interval, and the per-item and original-phrasing pass rates beside it."""
    solved = {item_id: rates.get(item_id, 0.0) >= 1.0 for item_id in rates}
    values = [1.0 if all(solved.get(m, False) for m in members) else 0.0
              for members in groups.values()]
    members = [m for group in groups.values() for m in group]
    seeds = [seed for seed, group in groups.items() if group[0] == seed]
    interval = mean_interval(values)
    sizes = [len(group) for group in groups.values()]
    return {"groups": len(groups), "k_min": min(sizes), "k_max": max(sizes),
            "score": _round(interval.estimate), "ci_low": _round(interval.low),
            "ci_high": _round(interval.high),
            "item_pass_rate": _round(sum(solved.get(m, False) for m in members) / len(members)),
            "seed_pass_rate": _round(sum(solved.get(s, False) for s in seeds) / len(seeds))
            if seeds else None}


# ---- terminal -----------------------------------------------------------------------------
def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(lines)


def _coverage(summary: dict[str, Any]) -> str:
    coverage = summary.get("coverage")
    return "-" if coverage is None else f"{coverage:.0%}"


def _ci_text(summary: dict[str, Any]) -> str:
    if summary["ci_low"] is None:
        return "-"
    return f"[{summary['ci_low']:.3f}, {summary['ci_high']:.3f}]"


def render_table(summaries: list[dict[str, Any]], *, tags: bool = True,
                 components: bool = True) -> str:
    if not summaries:
        return "no runs"
    headers = ["model", "variant", "score", "95% CI", "coverage", "scored-only", "n", "errors",
               "unscored", "retries", "cost $", "p50 s", "p95 s"]
    rows = []
    for s in summaries:
        rows.append([s["model"], s["variant"], _fmt(s["score"]), _ci_text(s), _coverage(s),
                     _fmt(s.get("score_scored_only")), str(s["n"]), str(s["errors"]),
                     str(s["unscored"]), str(s["retries"]),
                     "-" if not s["cost_usd"] else f"{s['cost_usd']:.4f}",
                     _fmt(s["latency_p50_s"], 2), _fmt(s["latency_p95_s"], 2)])
    out = [f"eval: {summaries[0]['eval']}", _table(headers, rows)]
    if any((s.get("coverage") or 0) < 1 for s in summaries):
        out.append("score counts every item: errors, unscored and unanswered samples are 0 "
                   "(coverage = scored / total; scored-only = the mean over scored samples)")
    if tags and any(s["by_tag"] for s in summaries):
        all_tags = sorted({tag for s in summaries for tag in s["by_tag"]})
        tag_rows = []
        for tag in all_tags:
            row = [tag]
            for s in summaries:
                entry = s["by_tag"].get(tag)
                row.append("-" if entry is None else f"{_fmt(entry['score'])} (n={entry['n']})")
            tag_rows.append(row)
        out += ["", "by tag:", _table(["tag"] + [_label(s) for s in summaries], tag_rows)]
    if components and any(len(s["components"]) > 1 for s in summaries):
        names = sorted({name for s in summaries for name in s["components"]})
        comp_rows = []
        for name in names:
            row = [name]
            for s in summaries:
                entry = s["components"].get(name)
                coverage = (entry or {}).get("coverage")
                note = f" ({coverage:.0%} graded)" if coverage is not None and coverage < 1 else ""
                row.append("-" if entry is None else _fmt(entry["score"]) + note)
            comp_rows.append(row)
        out += ["", "by component:", _table(["component"] + [_label(s) for s in summaries],
                                            comp_rows)]
    for s in summaries:
        missing_k = {k: v for k, v in (s.get("pass_k_not_computable") or {}).items() if v}
        for key, name in (("pass_at_k", "pass@k"), ("pass_hat_k", "pass^k")):
            if s.get(key):
                values = s[key]
                # every k, also one no item can compute yet: its mean would be over no item
                every = sorted({*values, *missing_k}, key=int)
                ks = ", ".join(f"k={k}: " + (f"{values[k]:.3f}" if k in values else "-")
                               + (f" ({missing_k[k]} items not computable)"
                                  if k in missing_k else "") for k in every)
                out.append(f"{name} {_label(s)}: {ks}")
        if missing_k:
            out.append("  (an item with fewer than k answered samples has no pass@k/pass^k "
                       "for that k; run again to resume)")
        rel = s.get("reliability_at_k")
        if rel:
            k = str(rel["k_min"]) if rel["k_min"] == rel["k_max"] else \
                f"{rel['k_min']}-{rel['k_max']}"
            seeds = "" if rel.get("seed_pass_rate") is None else \
                f", the original phrasings alone {_fmt(rel['seed_pass_rate'])}"
            out.append(f"reliability@k {_label(s)}: {_fmt(rel['score'])} "
                       f"[{_fmt(rel['ci_low'])}, {_fmt(rel['ci_high'])}] of {rel['groups']} "
                       f"items solved in all k={k} phrasings (the item and its cousins); each "
                       f"phrasing alone {_fmt(rel['item_pass_rate'])}{seeds}")
        if s["problems"]:
            out.append(f"problems in {_label(s)}:")
            out += [f"  {count} x {reason}" for reason, count in s["problems"].items()]
        if s.get("cached_input_tokens") or s.get("cache_write_tokens") or s.get("reasoning_tokens"):
            out.append(f"tokens {_label(s)}: {s['input_tokens']:,} in ("
                       f"{s.get('cached_input_tokens', 0):,} read from the prompt cache, "
                       f"{s.get('cache_write_tokens', 0):,} written to it), "
                       f"{s['output_tokens']:,} out ({s.get('reasoning_tokens', 0):,} reasoning)")
        if s.get("cache_rerequested"):
            out.append(f"{_label(s)}: {s['cache_rerequested']} answers served from cache entries "
                       "another model wrote were requested again from the model now served")
        if str(s.get("confinement", "")).startswith("none"):
            out.append(f"{_label(s)}: model-written code ran with NO sandbox "
                       f"({s['confinement']})")
        if s.get("missing"):
            why = ("the run is still going, or its process was stopped: then run the same "
                   "command again to resume it" if s.get("status") == "running"
                   else "run again to resume")
            out.append(f"{_label(s)}: {s['missing']} samples not yet answered ({why})")
    bar = summaries[0].get("pass_bar")
    if bar is not None:
        clears = [_label(s) for s in summaries if s.get("clears_bar")]
        verb = "clears" if len(clears) == 1 else "clear"
        out.append(f"pass bar {bar}: " + (", ".join(clears) + f" {verb} it (CI lower bound)"
                                          if clears else "no run clears it (CI lower bound)"))
    return "\n".join(out)


def render_evals_table(summaries: list[dict[str, Any]]) -> str:
    """One table across several evals: a row per eval x model x variant (the headline score,
    its 95% interval, coverage, the eval's pass bar and whether the interval's low end clears
    it, cost and latency), then each run's problems."""
    if not summaries:
        return "no runs"
    headers = ["eval", "model", "variant", "score", "95% CI", "coverage", "n", "errors",
               "unscored", "bar", "cost $", "p50 s", "p95 s"]
    rows = []
    for s in summaries:
        bar = s.get("pass_bar")
        rows.append([s["eval"], s["model"], s["variant"], _fmt(s["score"]), _ci_text(s),
                     _coverage(s), str(s["n"]), str(s["errors"]), str(s["unscored"]),
                     "-" if bar is None else f"{bar:g} " + ("clears" if s.get("clears_bar")
                                                           else "below"),
                     "-" if not s["cost_usd"] else f"{s['cost_usd']:.4f}",
                     _fmt(s["latency_p50_s"], 2), _fmt(s["latency_p95_s"], 2)])
    out = [f"{len({s['eval'] for s in summaries})} evals", _table(headers, rows)]
    if any((s.get("coverage") or 0) < 1 for s in summaries):
        out.append("score counts every item: errors, unscored and unanswered samples are 0 "
                   "(coverage = scored / total)")
    if any(s.get("pass_bar") is not None for s in summaries):
        out.append("bar: the eval's pass bar, cleared when the 95% CI lower bound is at or "
                   "above it")
    for s in summaries:
        if s["problems"]:
            out.append(f"problems in {s['eval']} {_label(s)}:")
            out += [f"  {count} x {reason}" for reason, count in s["problems"].items()]
        if s.get("missing"):
            out.append(f"{s['eval']} {_label(s)}: {s['missing']} samples not yet answered (run "
                       "again to resume)")
    return "\n".join(out)


def token_parts(samples: list[Any]) -> dict[str, int]:
    """Prompt tokens read from / written to the provider's prompt cache and reasoning tokens, as
    the providers reported them (parts of ``input_tokens`` / ``output_tokens``)."""
    parts = {"cached_input_tokens": 0, "cache_write_tokens": 0, "reasoning_tokens": 0}
    for sample in samples:
        wanted = [key for key in parts if sample.completion_mentions(key)]
        if not wanted:  # the stored JSON names none of them: no need to parse it
            continue
        record = sample.completion or {}
        for key in wanted:
            parts[key] += record.get(key) or 0
    return parts


def _label(summary: dict[str, Any]) -> str:
    variant = summary["variant"]
    return summary["model"] + ("" if variant == "default" else f"[{variant}]")


# ---- HTML ---------------------------------------------------------------------------------
def _bar_chart(summaries: list[dict[str, Any]]) -> str:
    width, row_h, label_w = 640, 28, 220
    height = row_h * len(summaries) + 30
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'role="img" aria-label="scores with 95% confidence intervals">']
    scale = width - label_w - 60
    for index, s in enumerate(summaries):
        y = 10 + index * row_h
        score = s["score"] or 0.0
        parts.append(f'<text x="0" y="{y + 16}" font-size="12">{html.escape(_label(s))}</text>')
        parts.append(f'<rect x="{label_w}" y="{y + 4}" width="{score * scale:.1f}" height="16" '
                     f'fill="#4c78a8"/>')
        if s["ci_low"] is not None:
            x1, x2 = label_w + s["ci_low"] * scale, label_w + s["ci_high"] * scale
            parts.append(f'<line x1="{x1:.1f}" x2="{x2:.1f}" y1="{y + 12}" y2="{y + 12}" '
                         f'stroke="#222" stroke-width="2"/>')
        parts.append(f'<text x="{label_w + score * scale + 6:.1f}" y="{y + 16}" '
                     f'font-size="11">{score:.3f}</text>')
    axis_y = height - 12
    for tick in (0, 0.25, 0.5, 0.75, 1.0):
        x = label_w + tick * scale
        parts.append(f'<text x="{x:.1f}" y="{axis_y + 10}" font-size="10" '
                     f'text-anchor="middle">{tick:g}</text>')
    parts.append("</svg>")
    return "".join(parts)


def render_html(summaries: list[dict[str, Any]], extra_sections: list[str] | None = None) -> str:
    title = f"posttrain report: {summaries[0]['eval']}" if summaries else "posttrain report"
    esc = html.escape
    rows = "".join(
        f"<tr><td>{esc(s['model'])}</td><td>{esc(s['variant'])}</td><td>{_fmt(s['score'])}</td>"
        f"<td>{_ci_text(s)}</td><td>{_coverage(s)}</td><td>{_fmt(s.get('score_scored_only'))}</td>"
        f"<td>{s['n']}</td><td>{s['errors']}</td><td>{s['unscored']}</td><td>{s['retries']}</td>"
        f"<td>{s['cost_usd']:.4f}</td><td>{_fmt(s['latency_p50_s'], 2)}</td>"
        f"<td>{_fmt(s['latency_p95_s'], 2)}</td><td><code>{esc(s['run_id'])}</code></td></tr>"
        for s in summaries)
    tag_html = ""
    all_tags = sorted({tag for s in summaries for tag in s["by_tag"]})
    if all_tags:
        head = "".join(f"<th>{esc(_label(s))}</th>" for s in summaries)
        body = ""
        for tag in all_tags:
            cells = ""
            for s in summaries:
                entry = s["by_tag"].get(tag)
                cells += ("<td>-</td>" if entry is None else
                          f"<td>{_fmt(entry['score'])} <small>(n={entry['n']})</small></td>")
            body += f"<tr><td>{esc(tag)}</td>{cells}</tr>"
        tag_html = f"<h2>By tag</h2><table><tr><th>tag</th>{head}</tr>{body}</table>"
    comp_html = ""
    names = sorted({name for s in summaries for name in s["components"]})
    if len(names) > 1:
        head = "".join(f"<th>{esc(_label(s))}</th>" for s in summaries)
        body = "".join(
            f"<tr><td>{esc(name)}</td>" + "".join(
                f"<td>{_fmt((s['components'].get(name) or {}).get('score'))}</td>"
                for s in summaries) + "</tr>" for name in names)
        comp_html = f"<h2>By component</h2><table><tr><th>component</th>{head}</tr>{body}</table>"
    rel_rows = "".join(
        f"<tr><td>{esc(_label(s))}</td><td>{_fmt(r['score'])}</td>"
        f"<td>[{_fmt(r['ci_low'])}, {_fmt(r['ci_high'])}]</td><td>{r['groups']}</td>"
        f"<td>{r['k_min']}-{r['k_max']}</td><td>{_fmt(r['item_pass_rate'])}</td>"
        f"<td>{_fmt(r.get('seed_pass_rate'))}</td></tr>"
        for s in summaries if (r := s.get("reliability_at_k")))
    rel_html = ("<h2>reliability@k: solved in every phrasing</h2><table><tr><th>run</th>"
                "<th>reliability@k</th><th>95% CI</th><th>items</th><th>k</th>"
                "<th>each phrasing alone</th><th>original phrasings</th></tr>"
                f"{rel_rows}</table>") if rel_rows else ""
    extra = rel_html + "".join(extra_sections or [])
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>{esc(title)}</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;color:#222}}table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left}}th{{background:#f3f3f3}}</style></head>
<body><h1>{esc(title)}</h1>
<table><tr><th>model</th><th>variant</th><th>score</th><th>95% CI</th><th>coverage</th>
<th>scored-only</th><th>n</th><th>errors</th>
<th>unscored</th><th>retries</th><th>cost $</th><th>p50 s</th><th>p95 s</th><th>run</th></tr>{rows}</table>
<h2>Scores</h2>{_bar_chart(summaries)}{tag_html}{comp_html}{extra}
</body></html>"""
