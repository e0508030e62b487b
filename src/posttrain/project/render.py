"""The check's report as terminal text, Markdown (a pull-request comment) and JUnit XML (what CI
systems display: one test case per eval, a failure where it blocks)."""

from __future__ import annotations

import re
import time
from typing import Any
from xml.etree import ElementTree as ET

STATUS_WORDS = {"pass": "pass", "prompt": "passes with another prompt", "blocked": "BLOCKS",
                "advisory": "advisory (weight 0): would block",
                "insufficient": "insufficient evidence"}


#: terminal escape sequences (CSI, OSC, two-character) a model or a server may send back
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")
#: characters XML 1.0 cannot hold, and the other C0/C1 controls but tab and newline
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")


def clean(text: str) -> str:
    """Text from a model or a server, safe to print and to put in XML: escape sequences
    removed, other control characters (tab and newline kept) shown as U+FFFD."""
    return _CONTROL.sub("\ufffd", _ANSI.sub("", text))


def _pct(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:+.1%}" if signed else f"{value:.1%}"


def _p(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2g}" if value >= 0.001 else f"{value:.1e}"


def _money(value: float | None) -> str:
    if value is None:
        return "-"
    return f"${value:.4f}" if value >= 0.01 else f"${value:.6f}"


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def headline(report: dict[str, Any]) -> str:
    verdict = report["verdict"]
    line = f"verdict: {verdict.upper()} {report['new']} (against {report['against']})"
    if verdict == "hold":
        evals = [r["eval"] for r in report["evals"] if r["status"] == "blocked"]
        line += f": blocked by {', '.join(evals)}"
        if report["blocking_tags"]:
            line += f" (tags {', '.join(report['blocking_tags'])})"
    elif verdict == "insufficient evidence":
        evals = [r["eval"] for r in report["evals"] if r["status"] == "insufficient"]
        line += (f": nothing blocks, but a regression could not be seen on {', '.join(evals)} "
                 "(not an adopt)")
    return line


def correction_line(report: dict[str, Any]) -> str:
    c = report["correction"]
    return (f"{c['name']} correction across {c['comparisons']} paired comparisons "
            f"({c['controls']} at alpha {c['alpha']:g}); a regression blocks when its adjusted "
            f"p < {c['alpha']:g}. Intervals: {round(100 * (1 - c['alpha']), 6):g}%, per "
            "comparison.")


def _rows(report: dict[str, Any]) -> list[list[str]]:
    rows = []
    for record in report["evals"]:
        first = record["variants"][0]
        paired = first["paired"]
        prod = record["production"]
        rows.append([
            record["eval"], f"{record['weight']:g}",
            "-" if record["pass_bar"] is None else f"{record['pass_bar']:g}",
            f"{_pct(prod['score'])} [{_pct(prod['ci_low'])}, {_pct(prod['ci_high'])}]",
            f"{_pct(first['new']['score'])} [{_pct(first['new']['ci_low'])}, "
            f"{_pct(first['new']['ci_high'])}]",
            f"{_pct(paired['diff'], True)} [{_pct(paired['ci_low'], True)}, "
            f"{_pct(paired['ci_high'], True)}]",
            _p(paired["p_value"]), _p(paired["p_adjusted"]),
            "-" if paired["n"] is None else str(paired["n"]),
            STATUS_WORDS[record["status"]] + (f" ({record['fix_variant']})"
                                              if record.get("fix_variant") else ""),
        ])
    return rows


HEADERS = ["eval", "weight", "bar", "production [95% CI]", "new [95% CI]", "diff [CI]", "p",
           "p adj", "items", "status"]


def _table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip(),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
              for row in rows]
    return "\n".join(lines)


def _model_rows(report: dict[str, Any]) -> list[list[str]]:
    rows = []
    for name, info in report["models"].items():
        role = "production" if name == report["against"] else "new"
        rows.append([name, role, str(info["answers"]), _money(info["cost_usd"]),
                     _money(info["cost_usd_per_item"]), _seconds(info["latency_p50_s"]),
                     _seconds(info["latency_p95_s"]),
                     f"{info['input_tokens']:,} / {info['output_tokens']:,}"])
    return rows


MODEL_HEADERS = ["model", "role", "answers", "cost $", "$ per item", "p50 s", "p95 s",
                 "tokens in / out"]


def _variant_lines(report: dict[str, Any]) -> list[str]:
    lines = []
    for record in report["evals"]:
        for row in record["variants"][1:]:
            paired = row["paired"]
            state = "clears" if not row["blockers"] else "; ".join(b["text"] for b in
                                                                   row["blockers"])
            lines.append(f"  {record['eval']} [{row['variant']}]: {_pct(row['new']['score'])}, "
                         f"{_pct(paired['diff'], True)} vs production (p adj "
                         f"{_p(paired['p_adjusted'])}): {state}")
    return lines


def _overall_line(report: dict[str, Any]) -> str | None:
    o = report["overall"]
    if o.get("diff") is None:
        return None
    what = "weighted mean of the evals' scores" if o["weighted"] else "mean of the evals' scores"
    return (f"{what}: production {_pct(o['score_production'])}, new {_pct(o['score_new'])}, "
            f"diff {_pct(o['diff'], True)} [{_pct(o['ci_low'], True)}, {_pct(o['ci_high'], True)}]"
            f" ({o['test']} p = {_p(o['p_value'])}; a summary, not a criterion)")


def failure_lines(report: dict[str, Any]) -> list[str]:
    """Where a side's samples failed or could not be graded: how many, and the top reasons
    (they count 0 in its score, so a low score is read with its cause)."""
    lines = []
    for record in report["evals"]:
        sides = [("production", record["production"])]
        sides += [(f"new [{row['variant']}]" if not row["production_prompt"] else "new",
                   row["new"]) for row in record["variants"]]
        for name, side in sides:
            bad = side["errors"] + side["unscored"] + (side.get("missing") or 0)
            if not bad:
                continue
            reasons = "; ".join(f"{count} x {reason}"
                                for reason, count in (side.get("problems") or {}).items())
            lines.append(f"{record['eval']}: {name}: {bad} of {side['n']} samples failed or "
                         f"were not graded (counted 0)" + (f": {reasons}" if reasons else ""))
    return lines


def render_text(report: dict[str, Any]) -> str:
    out = [f"posttrain check: {report['new']} against {report['against']} on "
           f"{len(report['evals'])} evals ({report['project']})"]
    out += [f"skipped (not an eval file): {s['file']} ({s['reason']})"
            for s in report.get("skipped", [])]
    out += ["", _table(HEADERS, _rows(report)), ""]
    ran = [r["eval"] for r in report["evals"] if r["production"].get("ran_now")]
    reused = len(report["evals"]) - len(ran)
    if reused:
        out.append(f"production: the latest stored runs of {reused} evals"
                   + (f"; run now for {', '.join(ran)}" if ran else ""))
    else:
        out.append("production: run now (no stored run of these evals and settings)")
    resent = [f"{r['eval']} ({r['production']['resent']})" for r in report["evals"]
              if r["production"].get("resent")]
    if resent:
        out.append("production's failed requests sent again before comparing: "
                   + ", ".join(resent))
    for record in report["evals"]:
        for tag in record["variants"][0]["tags"]:
            paired = tag["paired"] or {}
            out.append(f"  {record['eval']} tag {tag['tag']}: production "
                       f"{_pct(tag['production'])}, new {_pct(tag['new'])} (n={tag['n']}), diff "
                       f"{_pct(paired.get('diff'), True)}, p adj {_p(paired.get('p_adjusted'))}"
                       + (f", bar {tag['pass_bar']:g}" if tag["pass_bar"] is not None else ""))
    failures = failure_lines(report)
    if failures:
        out.append("failures:")
        out += [f"  {line}" for line in failures]
    variant_lines = _variant_lines(report)
    if variant_lines:
        out += ["other prompts on the new model:", *variant_lines]
    overall = _overall_line(report)
    if overall:
        out.append(overall)
    out.append(correction_line(report))
    out += ["", _table(MODEL_HEADERS, _model_rows(report)),
            "cost: the answers of the production prompt's runs, priced as billed (cached answers "
            "at list price from their tokens; '-': no price known); judges not included", ""]
    if report["blocking"]:
        out.append("blocks:")
        out += [f"  {line}" for line in report["blocking"]]
        if any(r["status"] == "blocked" and r["variants"][0].get("moved", 1)
               for r in report["evals"]):
            out.append("the items that moved: posttrain compare PRODUCTION_RUN NEW_RUN --store "
                       f"{report['store']}")
        out += [f"  {r['eval']}: posttrain compare {r['production']['run_id']} "
                f"{r['variants'][0]['new']['run_id']}"
                for r in report["evals"] if r["status"] == "blocked"
                and r["variants"][0].get("moved", 1)]
    files = {r["eval"]: r["file"] for r in report["evals"]}
    tools = _prompt_tools()
    if report["prompt_changes"]:
        out.append("prompt changes that clear:")
        for fix in report["prompt_changes"]:
            out.append(f"  {fix['eval']}: use the variant {fix['variant']!r} (the production "
                       f"prompt: {'; '.join(fix['blockers'])})")
            if "migrate" in tools:
                out.append(f"    posttrain migrate {files[fix['eval']]} --from "
                           f"{report['against']} --to {report['new']} --variant {fix['variant']}")
    blocked = [r for r in report["evals"] if r["status"] == "blocked"
               and any(b["kind"] == "regression" for b in r["variants"][0]["blockers"])]
    if blocked and "optimize" in tools:
        out.append("a prompt for the new model, searched and tested paired (held-out items):")
        out += [f"  posttrain optimize {r['file']} --model {report['new']}" for r in blocked]
    advisory = [r for r in report["evals"] if r["status"] == "advisory"]
    for record in advisory:
        out.append(f"advisory (weight 0) {record['eval']}: would block — "
                   + "; ".join(b["text"] for b in record["variants"][0]["blockers"]))
    if report.get("insufficient"):
        out.append("insufficient evidence (not a pass: a regression could not be seen):")
        out += [f"  {line}" for line in report["insufficient"]]
    out.append(headline(report))
    return clean("\n".join(out))


def _prompt_tools() -> set[str]:
    """``optimize`` and ``migrate`` where this posttrain has them."""
    from posttrain import plugins

    return {"optimize", "migrate"} if "optimize" in plugins.own_names("command") else set()


def render_markdown(report: dict[str, Any]) -> str:
    verdict = report["verdict"]
    mark = {"adopt": "✅", "adopt with prompt changes": "🟡", "hold": "❌",
            "insufficient evidence": "⚠️"}[verdict]
    out = [f"### {mark} posttrain check: **{verdict}** `{report['new']}` "
           f"(against `{report['against']}`)", ""]
    if report["blocking"]:
        out.append("**Blocks:**")
        out += [f"- {_md(line)}" for line in report["blocking"]]
        out.append("")
    if report.get("insufficient"):
        out.append("**Insufficient evidence** (a regression could not be seen):")
        out += [f"- {_md(line)}" for line in report["insufficient"]]
        out.append("")
    if report["prompt_changes"]:
        out.append("**Prompt changes that clear:**")
        out += [f"- `{fix['eval']}`: variant `{fix['variant']}`" for fix in
                report["prompt_changes"]]
        out.append("")
    out.append("| " + " | ".join(HEADERS) + " |")
    out.append("|" + "---|" * len(HEADERS))
    out += ["| " + " | ".join(_md(c) for c in row) + " |" for row in _rows(report)]
    out.append("")
    out.append("| " + " | ".join(MODEL_HEADERS) + " |")
    out.append("|" + "---|" * len(MODEL_HEADERS))
    out += ["| " + " | ".join(_md(c) for c in row) + " |" for row in _model_rows(report)]
    out.append("")
    failures = failure_lines(report)
    if failures:
        out.append("**Failures** (counted 0):")
        out += [f"- {_md(line)}" for line in failures]
        out.append("")
    overall = _overall_line(report)
    if overall:
        out.append(f"_{_md(overall)}_")
        out.append("")
    out.append(f"_{_md(correction_line(report))} Pass bars: the lower bound of the score's 95% "
               f"interval is at or above the bar._")
    return clean("\n".join(out) + "\n")


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_junit(report: dict[str, Any]) -> str:
    """JUnit XML: one ``testsuite`` (the check), one ``testcase`` per eval; an eval that blocks
    (or clears only with another prompt) has a ``failure``; an advisory one passes with the
    note in ``system-out``."""
    records = report["evals"]
    failures = [r for r in records if r["status"] in ("blocked", "prompt", "insufficient")]
    suite = ET.Element("testsuite", {
        "name": f"posttrain check {report['new']} vs {report['against']}",
        "tests": str(len(records)), "failures": str(len(failures)), "errors": "0",
        "skipped": "0", "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S"),
    })
    props = ET.SubElement(suite, "properties")
    for name, value in (("verdict", report["verdict"]), ("new", report["new"]),
                        ("against", report["against"]),
                        ("correction", report["correction"]["name"]),
                        ("alpha", str(report["correction"]["alpha"])),
                        ("comparisons", str(report["correction"]["comparisons"]))):
        ET.SubElement(props, "property", {"name": name, "value": value})
    for record in records:
        first = record["variants"][0]
        case = ET.SubElement(suite, "testcase", {
            "classname": f"posttrain.check.{report.get('name') or 'project'}",
            "name": record["eval"], "time": f"{record.get('seconds', 0.0):.3f}"})
        blockers = [b["text"] for b in first["blockers"]]
        if record["status"] == "blocked":
            failure = ET.SubElement(case, "failure", {"message": "; ".join(blockers),
                                                      "type": "blocks"})
            failure.text = "\n".join(blockers)
        elif record["status"] == "prompt":
            message = (f"the production prompt blocks; the variant {record['fix_variant']!r} "
                       f"clears: " + "; ".join(blockers))
            failure = ET.SubElement(case, "failure", {"message": message,
                                                      "type": "prompt-change"})
            failure.text = message
        elif record["status"] == "insufficient":
            message = "insufficient evidence: " + "; ".join(first["insufficient"])
            failure = ET.SubElement(case, "failure", {"message": message,
                                                      "type": "insufficient-evidence"})
            failure.text = message
        paired = first["paired"]
        out = ET.SubElement(case, "system-out")
        out.text = (f"production {_pct(record['production']['score'])}, new "
                    f"{_pct(first['new']['score'])}, diff {_pct(paired['diff'], True)} "
                    f"[{_pct(paired['ci_low'], True)}, {_pct(paired['ci_high'], True)}], "
                    f"p = {_p(paired['p_value'])}, adjusted p = {_p(paired['p_adjusted'])}"
                    + (f"; advisory: {'; '.join(blockers)}" if record["status"] == "advisory"
                       else ""))
    return _xml(suite)


def _xml(suite: ET.Element) -> str:
    for element in suite.iter():
        if element.text:
            element.text = clean(element.text)
        for key, value in element.attrib.items():
            element.set(key, clean(value))
    ET.indent(suite)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(suite, encoding="unicode") \
        + "\n"


def render_error_junit(new: str, error: str) -> str:
    """JUnit XML for a check that could not give a verdict (a setup problem, exit 2)."""
    suite = ET.Element("testsuite", {"name": f"posttrain check {new}", "tests": "1",
                                     "failures": "0", "errors": "1", "skipped": "0",
                                     "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S")})
    case = ET.SubElement(suite, "testcase", {"classname": "posttrain.check", "name": "setup",
                                             "time": "0"})
    failure = ET.SubElement(case, "error", {"message": error, "type": "setup"})
    failure.text = error
    return _xml(suite)


def render_error_markdown(new: str, error: str) -> str:
    return clean(f"### ⛔ posttrain check: **no verdict** `{new}`: a setup problem (exit 2)\n\n"
                 f"```\n{error}\n```\n")
