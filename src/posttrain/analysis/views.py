"""Terminal and HTML renderings of the compare / audit / pick / shelf-life reports (dicts)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from posttrain.analysis import svg
from posttrain.analysis.tables import (
    ci,
    html_page,
    html_table,
    money,
    note,
    p_value,
    pct,
    seconds,
    signed_ci,
    signed_pct,
    text_table,
    truncate_line,
)


def _stat_headers(report: dict[str, Any]) -> list[str]:
    """Column names; the interval's level follows ``--alpha`` (a 99% CI at alpha 0.01)."""
    level = report["overall"].get("level") or 0.95
    return ["", "n", "A", "B", "B-A", f"{level:.0%} CI", "p", "test"]


def _alpha(report: dict[str, Any]) -> float:
    return round(1 - (report["overall"].get("level") or 0.95), 6)


def _stat_row(name: str, s: dict[str, Any]) -> list[str]:
    mark = " *" if s.get("significant") else ""
    return [name, str(s["n"]), pct(s["mean_a"]), pct(s["mean_b"]), signed_pct(s["diff"]) + mark,
            signed_ci(s["ci_low"], s["ci_high"]), p_value(s["p_value"]), s["test"]]


def _compare_tables(report: dict[str, Any]) -> list[tuple[str, list[str], list[list[str]]]]:
    headers = _stat_headers(report)
    tables = [("Overall", headers, [_stat_row("overall", report["overall"])])]
    if report["groups"]:
        if any("fine_tune" in g for g in report["groups"]):  # B is a fine-tune of A
            tables.append((f"By {report['by']} (rule of thumb: low pass rate lifted ~10% -> "
                           "~50% by fine-tuning = on the cusp)", headers + ["after fine-tuning"],
                           [_stat_row(g["group"], g) + [g.get("fine_tune", "")]
                            for g in report["groups"]]))
        else:
            tables.append((f"By {report['by']}", headers,
                           [_stat_row(g["group"], g) for g in report["groups"]]))
    if report["components"]:
        tables.append(("By grader component", headers,
                       [_stat_row(c["component"], c) for c in report["components"]]))
    return tables


def _moved_rows(entries: list[dict[str, Any]], limit: int, width: int) -> list[list[str]]:
    return [[e["item_id"], pct(e["a"], 0), pct(e["b"], 0),
             truncate_line(str(e["reference"]) if e["reference"] is not None else "", width),
             truncate_line(e["a_output"], width), truncate_line(e["b_output"], width)]
            for e in entries[:limit]]


_MOVED = ["item", "A", "B", "reference", "A output", "B output"]


def compare_text(report: dict[str, Any], limit: int = 10) -> str:
    a, b = report["run_a"], report["run_b"]
    out = [f"A = {a['label']} ({a['id']})", f"B = {b['label']} ({b['id']})",
           f"{report['n_common']} items in both runs (a failed or unscored sample counts 0)"]
    out += [f"warning: {w}" for w in report.get("warnings", [])]
    unscored = {k: len(report[k]) for k in ("scored_only_in_a", "scored_only_in_b",
                                             "scored_in_neither") if report.get(k)}
    if unscored:
        out.append("counted as 0 where not scored: " + ", ".join(
            f"{k.replace('_', ' ')}: {v}" for k, v in unscored.items()))
    apart = {k: len(report[k]) for k in ("only_in_a", "only_in_b") if report.get(k)}
    if apart:
        out.append("not compared (item in one run only): " + ", ".join(
            f"{k.replace('_', ' ')}: {v}" for k, v in apart.items()))
    for title, headers, rows in _compare_tables(report):
        out += ["", title, text_table(headers, rows)]
    out.append(f"(* p < {_alpha(report):g}, paired)")
    for key, title in (("regressed", "Regressed (worse in B)"), ("fixed", "Fixed (better in B)")):
        entries = report[key]
        out += ["", f"{title}: {len(entries)}"]
        if entries:
            out.append(text_table(_MOVED, _moved_rows(entries, limit, 40)))
            if len(entries) > limit:
                out.append(f"... {len(entries) - limit} more (--limit, --json)")
    return "\n".join(out)


def compare_html(report: dict[str, Any]) -> str:
    a, b = report["run_a"], report["run_b"]
    sections = [("", note(f"A = {a['label']} ({a['id']}); B = {b['label']} ({b['id']}); "
                          f"{report['n_common']} items in both runs (failures count 0). "
                          f"* = p < {_alpha(report):g}, paired.")
                  + "".join(note("warning: " + w) for w in report.get("warnings", [])))]
    for title, headers, rows in _compare_tables(report):
        sections.append((title, html_table(headers, rows)))
    diffs = [("overall", report["overall"])] + [(g["group"], g) for g in report["groups"]] + [
        (c["component"], c) for c in report["components"]]
    sections.append(("Differences (B - A) with 95% CIs", svg.forest(
        [(name, s["diff"], s["ci_low"], s["ci_high"]) for name, s in diffs],
        title="paired differences: overall, by group, by component")))
    for key, title in (("regressed", "Regressed"), ("fixed", "Fixed")):
        rows = [[e["item_id"], pct(e["a"], 0), pct(e["b"], 0),
                 "" if e["reference"] is None else str(e["reference"]), e["a_output"],
                 e["b_output"]] for e in report[key]]
        sections.append((f"{title} ({len(rows)})", html_table(_MOVED, rows)))
    return html_page(f"compare: {a['label']} vs {b['label']}", sections)


def _matrix_rows(report: dict[str, Any]) -> list[list[str]]:
    rows = []
    for r in report["rows"]:
        vs = "best" if r["is_best"] else "-" if r["vs_best_diff"] is None else (
            f"{signed_pct(r['vs_best_diff'])} p{_p_eq(r['vs_best_p'])}"
            + (" *" if r["vs_best_significant"] else "")
            + (f" (on {r['vs_best_n']} items)" if r.get("partial") else ""))
        rows.append([r["label"], str(r["n"]), pct(r["score"]), ci(r["ci_low"], r["ci_high"]),
                     vs, r["run"]["id"]])
    return rows


def _p_eq(value: float | None) -> str:
    text = p_value(value)
    return text if text.startswith("<") else f"={text}"


_MATRIX = ["run", "n", "score", "95% CI", "vs best", "id"]


def _group_rows(report: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    labels = [r["label"] for r in report["rows"]]
    rows = [[name] + [pct(scores.get(label)) for label in labels]
            for name, scores in report["groups"].items()]
    return [report["by"]] + labels, rows


def matrix_text(report: dict[str, Any]) -> str:
    out = [f"eval {report['eval']}: {len(report['rows'])} runs",
           text_table(_MATRIX, _matrix_rows(report)),
           "(* significantly below the best: paired test, Holm-adjusted over the runs, p < 0.05)"]
    out += [f"warning: {line}" for line in report.get("warnings") or []]
    if report["groups"]:
        headers, rows = _group_rows(report)
        out += ["", text_table(headers, rows)]
    return "\n".join(out)


def matrix_html(report: dict[str, Any]) -> str:
    points = [{"x": i + 1, "y": r["score"], "label": r["label"], "ci_low": r["ci_low"],
               "ci_high": r["ci_high"], "highlight": r["is_best"]}
              for i, r in enumerate(report["rows"])]
    sections = [("Scores", html_table(_MATRIX, _matrix_rows(report))),
                ("", svg.scatter(points, title="score with 95% CI", x_label="rank",
                                 log_x=False, x_ticks=False))]
    if report["groups"]:
        headers, rows = _group_rows(report)
        sections.append((f"By {report['by']}", html_table(headers, rows)))
    return html_page(f"compare: {report['eval']}", sections)


def _saturation_lines(sat: dict[str, Any]) -> list[str]:
    best = sat["best"]
    lines = [f"verdict: {sat['verdict']}"]
    lines += [f"warning: {line}" for line in sat.get("warnings") or []]
    if best:
        lines.append(f"best: {best['label']} {pct(best['score'])} "
                     f"{ci(best['ci_low'], best['ci_high'])}, headroom {pct(sat['headroom'])}")
    lines.append(f"items every run passes: {pct(sat['all_pass_share'])}, fails: "
                 f"{pct(sat['all_fail_share'])}, tell runs apart: "
                 f"{pct(sat['discriminating_share'])} (of {sat['items']})")
    if sat.get("next"):
        lines.append(f"next: {sat['next']}")
    return lines


def _run_rows(sat: dict[str, Any]) -> list[list[str]]:
    return [[r["label"], str(r["n"]), pct(r["score"]), ci(r["ci_low"], r["ci_high"]), r["run"]]
            for r in sat["runs"]]


def _number(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "pass" if value else "fail"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _grades_evidence(evidence: dict[str, Any]) -> str:
    grades = evidence.get("grades") or []
    shown = "; ".join(f"{g['run']}#{g['epoch']} {_number(g['value'])}" for g in grades)
    return f"{shown} for {evidence.get('output')!r}"


def _regrade_evidence(evidence: dict[str, Any]) -> str:
    return "; ".join(f"{c['grader']} {_number(c['before'])} -> {_number(c['after'])} "
                     f"({c['run']}{'' if not c.get('epoch') else ' #' + str(c['epoch'])})"
                     for c in evidence.get("changes") or [])


def _inverted_evidence(evidence: dict[str, Any]) -> str:
    rates = evidence.get("strong_pass_rates") or {}
    strong = ", ".join(f"{label} {pct(rate, 0)}" for label, rate in rates.items())
    return f"strong pass {strong}; weaker pass {pct(evidence.get('weak_pass_rate'), 0)}"


def _judges_evidence(evidence: dict[str, Any]) -> str:
    examples = evidence.get("examples") or []
    shown = "; ".join(", ".join(f"{name} {_number(value)}" for name, value in e["values"].items())
                      for e in examples[:2])
    return (f"{evidence.get('disagreeing_samples')} of {evidence.get('samples')} answers: "
            f"{shown}")


#: how each finding's evidence reads in a table, by reason (``audit.REASONS``: every reason
#: has one, checked by the tests)
EVIDENCE = {
    "strong_models_agree_against_reference":
        lambda e: f"{e.get('agreement')}: {e.get('common_answer')}",
    "inverted_difficulty": _inverted_evidence,
    "judges_disagree": _judges_evidence,
    "grade_flips_same_output": _grades_evidence,
    "grade_flips_on_regrade": _regrade_evidence,
    "epochs_disagree":
        lambda e: (f"{len(e.get('runs') or [])} of {e.get('multi_epoch_runs')} multi-epoch "
                   f"runs: {', '.join(e.get('runs') or [])}"),
}


def evidence_text(reason: str, evidence: dict[str, Any]) -> str:
    """A finding's evidence in one line (its reason's :data:`EVIDENCE`, or its plain values)."""
    render = EVIDENCE.get(reason)
    if render is not None:
        return str(render(evidence))
    return ", ".join(f"{k}={v}" for k, v in evidence.items() if isinstance(v, (int, float, str)))


def _suspect_rows(report: dict[str, Any], width: int | None) -> list[list[str]]:
    rows = []
    for s in report["suspects"]:
        detail = evidence_text(s["reason"], s["evidence"])
        ref = "" if s["reference"] is None else str(s["reference"])
        if width:
            detail, ref = truncate_line(str(detail), width), truncate_line(ref, width)
        rows.append([s["item_id"], s["reason"], ref, str(detail)])
    return rows


_REGRADE_CHANGES = ["run", "grader", "grades", "items", "cause"]


def _regrade_change_rows(report: dict[str, Any]) -> list[list[str]]:
    return [[c["run"], c["grader"], str(c["grades"]), str(c["items"]), c["cause"]]
            for c in report.get("regrade_changes") or []]


REGRADE_CHANGES_TITLE = ("grades changed by re-grading with a grader that was edited, "
                         "imported, or not recorded (not suspect items: not known to be the "
                         "same grader disagreeing with itself)")


_SUSPECTS = ["item", "reason", "reference", "evidence"]


def audit_text(report: dict[str, Any]) -> str:
    sat = report["saturation"]
    out = [f"eval {report['eval']}: {len(report['runs'])} runs", ""]
    out.append(text_table(["run", "n", "score", "95% CI", "id"], _run_rows(sat)))
    out += [""] + _saturation_lines(sat)
    strong = report.get("strong") or {}
    if strong:
        out += ["", f"strong on this eval (score >= {strong['floor']:.0%}): "
                + (", ".join(strong["models"]) or "none")]
        if strong.get("note"):
            out.append(f"({strong['note']})")
    counts = ", ".join(f"{k}: {v}" for k, v in report["suspect_counts"].items() if v)
    items = len({suspect["item_id"] for suspect in report["suspects"]})
    reasons = len(report["suspects"])
    out += ["", f"suspect items: {items}" + (f" ({reasons} findings: {counts})" if counts else "")]
    if report["suspects"]:
        out.append(text_table(_SUSPECTS, _suspect_rows(report, 48)))
    if report.get("regrade_changes"):
        out += ["", REGRADE_CHANGES_TITLE + ":",
                text_table(_REGRADE_CHANGES, _regrade_change_rows(report))]
    if len(report.get("judges") or []) < 2:
        out.append("(judge agreement not checked: fewer than two judge graders; see --judges)")
    return "\n".join(out)


def audit_html(report: dict[str, Any]) -> str:
    sat = report["saturation"]
    points = [{"x": i + 1, "y": r["score"], "label": r["label"], "ci_low": r["ci_low"],
               "ci_high": r["ci_high"]} for i, r in enumerate(sat["runs"])]
    sections = [
        ("Runs", html_table(["run", "n", "score", "95% CI", "id"], _run_rows(sat))),
        ("", svg.scatter(points, title="score with 95% CI (headroom above the best)",
                         x_label="rank", log_x=False,
                         x_ticks=False)),
        ("Saturation", "".join(note(line) for line in _saturation_lines(sat))),
        (f"Suspect items ({len(report['suspects'])})",
         html_table(_SUSPECTS, _suspect_rows(report, None))),
    ]
    if report.get("regrade_changes"):
        sections.append((REGRADE_CHANGES_TITLE[:1].upper() + REGRADE_CHANGES_TITLE[1:],
                         html_table(_REGRADE_CHANGES, _regrade_change_rows(report))))
    return html_page(f"audit: {report['eval']}", sections)


_PICK = ["model", "score", "95% CI", "cost/item", "p95 latency", "clears", "frontier"]


def _pick_rows(report: dict[str, Any]) -> list[list[str]]:
    return [[c["model"] + (" <-" if c["model"] == report["choice"] else ""), pct(c["score"]),
             ci(c["ci_low"], c["ci_high"]), money(c["cost_usd_per_item"]),
             seconds(c["latency_p95_s"]),
             "yes" if c["clears"] else ("too slow" if c["too_slow"] else
                                        "part of the eval" if c.get("partial") else "no"),
             "yes" if c["frontier"] else ""] for c in report["candidates"]]


def pick_text(report: dict[str, Any]) -> str:
    out = [f"eval {report['eval']}, bar {pct(report['bar'], 0)} (CI lower bound)",
           text_table(_PICK, _pick_rows(report)), "", report["message"]]
    out += [f"warning: {line}" for line in report.get("warnings") or []]
    if report["out_of_reach"]:
        out += ["", "Just out of reach:"]
        for entry in report["out_of_reach"]:
            out.append(f"- {entry['tag']} ({entry['n_items']} items, best {entry['best_model']} "
                       f"{pct(entry['best_score'], 0)}): {entry['recommendation']}")
    return "\n".join(out)


def pick_html(report: dict[str, Any]) -> str:
    candidates = report["candidates"]
    points = [{"x": c["cost_usd_per_item"], "y": c["score"], "label": c["model"],
               "ci_low": c["ci_low"], "ci_high": c["ci_high"],
               "highlight": c["model"] == report["choice"]} for c in candidates]
    frontier = [i for i, c in enumerate(candidates) if c["frontier"]]
    lat_points = [{**p, "x": c["latency_p95_s"]} for p, c in zip(points, candidates, strict=True)]
    sections = [
        ("", note(" ".join([report["message"], *(f"Warning: {line}." for line in
                                                  report.get("warnings") or [])]))),
        ("Candidates", html_table(_PICK, _pick_rows(report))),
        ("Cost / quality frontier", svg.scatter(points, title="score vs cost per item",
                                                x_label="USD per item (log)", bar=report["bar"],
                                                frontier=frontier)),
        ("Latency / quality", svg.scatter(lat_points, title="score vs p95 latency",
                                          x_label="p95 latency, s (log)", bar=report["bar"])),
    ]
    if report["out_of_reach"]:
        rows = [[e["tag"], str(e["n_items"]), e["best_model"], pct(e["best_score"]),
                 e["recommendation"]] for e in report["out_of_reach"]]
        sections.append(("Just out of reach", html_table(
            ["tag", "items", "best model", "best score", "recommendation"], rows)))
    return html_page(f"pick: {report['eval']}", sections)


def _shelf_rows(info: dict[str, Any]) -> list[list[str]]:
    return [[p["date"] + (" (released)" if p["date_source"] == "released" else ""), p["model"],
             pct(p["score"]), ci(p["ci_low"], p["ci_high"]), pct(p["best_so_far"]),
             p["best_model"]] for p in info["points"]]


_SHELF = ["date", "model", "score", "95% CI", "best so far", "best model"]


def shelf_text(report: dict[str, Any]) -> str:
    out = []
    for name, info in report["evals"].items():
        out += [f"eval {name}: {info['verdict']}, headroom {pct(info['headroom'])}",
                text_table(_SHELF, _shelf_rows(info)), ""]
    return "\n".join(out).rstrip() or "no runs"


def shelf_html(report: dict[str, Any]) -> str:
    series = {}
    for name, info in report["evals"].items():
        series[name] = [(dt.date.fromisoformat(p["date"]).toordinal(), p["best_so_far"])
                        for p in info["points"]]
    sections = [("", svg.line_chart(series, title="best score over time", x_label="date",
                                    x_format=lambda v: dt.date.fromordinal(int(v)).isoformat()))]
    for name, info in report["evals"].items():
        sections.append((f"{name}: {info['verdict']}", html_table(_SHELF, _shelf_rows(info))))
    return html_page("shelf life", sections)
