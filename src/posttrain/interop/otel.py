"""Grades back to your tracing tool: stored runs as OpenTelemetry ``gen_ai.evaluation.result``
events (an OTLP JSON log export, ``ExportLogsServiceRequest``).

One event per answer and grader, and one named ``posttrain`` with the answer's combined score:
``gen_ai.evaluation.name``, ``gen_ai.evaluation.score.value`` (absent when the grade is
unscored or the request failed), ``gen_ai.evaluation.score.label`` (``pass``, ``fail``,
``unscored``, ``error``), ``gen_ai.evaluation.explanation``, ``error.type`` for a failed request,
and ``posttrain.run.id`` / ``posttrain.item.id`` / ``posttrain.epoch``. An item that came from a
trace (``posttrain ingest`` of an OTLP export keeps ``TRACE_ID:SPAN_ID`` in its provenance) gets that
trace and span, so the grades attach to the production span they judge; other events carry no
trace context. The file is checked against ``opentelemetry-proto``'s message before it is
written.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from posttrain.errors import UserError

_SPAN = re.compile(r"^([0-9a-f]{32}):([0-9a-f]{16})$")
EVENT = "gen_ai.evaluation.result"


def _attr(key: str, value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        wrapped = {"boolValue": value}
    elif isinstance(value, int):
        wrapped = {"intValue": str(value)}
    elif isinstance(value, float):
        wrapped = {"doubleValue": value}
    else:
        wrapped = {"stringValue": str(value)}
    return {"key": key, "value": wrapped}


def _label(status: str, passed: bool | None) -> str:
    if status == "error":
        return "error"
    if status != "scored" or passed is None:
        return "unscored"
    return "pass" if passed else "fail"


def evaluation_records(results: Any) -> list[dict[str, Any]]:
    """The OTLP log records of one run's grades."""
    run = results.run
    items = results.items_by_id
    records = []
    for s in results.samples:
        item = items.get(s.item_id)
        provenance = (item.data.get("provenance") or {}) if item else {}
        match = _SPAN.match(str(provenance.get("trace") or provenance.get("log_id") or ""))
        base = [_attr("posttrain.run.id", run.id), _attr("posttrain.item.id", s.item_id),
                _attr("posttrain.epoch", s.epoch), _attr("gen_ai.request.model", run.model)]
        created = int(run.created * 1e9)
        grades = [("posttrain", s.status, s.value, s.passed, s.reason or "")]
        grades += [(name, g.status, g.value, g.passed, g.explanation or "")
                   for name, g in s.grades.items()]
        for name, status, value, passed, explanation in grades:
            attrs = [_attr("gen_ai.evaluation.name", name),
                     _attr("gen_ai.evaluation.score.label", _label(status, passed))]
            if status == "scored" and value is not None:
                attrs.append(_attr("gen_ai.evaluation.score.value", float(value)))
            if status == "error" and name == "posttrain":
                attrs.append(_attr("error.type", "request_failed"))
                explanation = s.error or explanation
            if explanation:
                attrs.append(_attr("gen_ai.evaluation.explanation", explanation))
            record: dict[str, Any] = {"timeUnixNano": str(created), "eventName": EVENT,
                                      "severityNumber": 9, "severityText": "INFO",
                                      "attributes": attrs + base}
            if match:
                record["traceId"], record["spanId"] = match.group(1), match.group(2)
            records.append(record)
    return records


def export_otel(store: str | Path, run_refs: list[str], out: str | Path) -> dict[str, Any]:
    """Write the runs' grades as one OTLP JSON log export; returns what was written."""
    from posttrain import __version__
    from posttrain.analysis.results import load_results
    from posttrain.models.checks import require_extra
    from posttrain.runner.store import Store

    require_extra("writing OTLP events", "opentelemetry.proto", extra="otel")
    store_path = Path(store)
    if not store_path.is_file():
        raise UserError("no such store", file=store_path.resolve())
    records: list[dict[str, Any]] = []
    attached = 0
    with Store(store_path, reading=True) as db:
        for ref in run_refs:
            try:
                run = db.resolve_run(ref)
            except (KeyError, UserError) as exc:
                raise UserError(str(exc.args[0] if exc.args else exc), field="RUN") from None
            run_records = evaluation_records(load_results(db, run))
            attached += sum(1 for r in run_records if "spanId" in r)
            records += run_records
    document = {"resourceLogs": [{
        "resource": {"attributes": [_attr("service.name", "posttrain")]},
        "scopeLogs": [{"scope": {"name": "posttrain", "version": __version__},
                       "logRecords": records}]}]}
    from google.protobuf.json_format import ParseDict
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

    ParseDict(document, ExportLogsServiceRequest())  # the shape OTLP receivers read
    out = Path(out).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(document, ensure_ascii=False) + "\n", encoding="utf-8")
    return {"file": str(out), "events": len(records), "on_spans": attached}
