"""The viewer's HTTP server (aiohttp): a static single page and a small JSON API over the store.

Security: bound to 127.0.0.1 by default. Any other address needs a token (``create_app(...,
token=...)``), checked on every request (``?token=``, the ``X-Posttrain-Token`` header, or the
cookie set when the page is opened with ``?token=``). State-changing requests must be JSON
(which a cross-site form cannot send without a preflight) and, when the browser sends an
``Origin``, come from this server's own origin.

DNS rebinding: every request's ``Host`` must name the address the connection came in on (the
bound address), ``localhost`` or the wildcard address literal (``0.0.0.0``, ``::``), with the
port it came in on, and an ``Origin`` must be
``http://`` one of those; a page on another site whose name was made to resolve to 127.0.0.1
sends its own name as ``Host`` and is refused (421 / 403).

Live runs (``/api/live``, ``/api/live/stream``: server-sent events) are read from the store the
runner writes; steering (``POST /api/steer/pause|resume``) is written to the store's control
table, which the runner reads between turns. Both go through the same guard as votes and
reviews: the host check, the token, JSON bodies and the same-origin check.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import random
import secrets
import uuid
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from posttrain.errors import UserError
from posttrain.runner.store import Store
from posttrain.runner.store_file import refuse_empty_store
from posttrain.web import live, matrix, views

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
VERDICTS = ("misgraded", "ambiguous", "fine")
_STATIC = {"app.js": "application/javascript", "style.css": "text/css"}
#: the chart library, vendored unmodified (see static/vendor/README.txt): versioned, so cached
_VENDOR = {"vega.min.js": "application/javascript", "vega-lite.min.js": "application/javascript",
           "vega-embed.min.js": "application/javascript"}

STORE_KEY: web.AppKey[Store] = web.AppKey("store", Store)
TOKEN_KEY: web.AppKey[str] = web.AppKey("token", str)
PAIRS_KEY: web.AppKey[dict] = web.AppKey("pairs", dict)
RNG_KEY: web.AppKey[random.Random] = web.AppKey("rng", random.Random)


def _static(name: str) -> bytes:
    return resources.files("posttrain.web").joinpath("static", name).read_bytes()


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _canonical_host(name: str) -> str:
    """An IP address in one spelling (``::1``, ``127.0.0.1``); a name lower-cased."""
    name = name.strip("[]").lower()
    try:
        return ipaddress.ip_address(name.split("%")[0]).compressed
    except ValueError:
        return name


def _split_host(value: str, default_port: int) -> tuple[str, int] | None:
    """(host, port) of a ``Host`` header value or URL netloc; None when it does not parse."""
    try:
        parts = urlsplit(f"//{value}")
        port = parts.port
    except ValueError:
        return None
    if not parts.hostname or parts.username or parts.password:
        return None
    return _canonical_host(parts.hostname), port or default_port


def _allowed_hosts(request: web.Request) -> tuple[set[str], int] | None:
    """The names a request may use for this server: the local address it came in on (the
    bound address) and ``localhost``; and that local port. None when the socket is unknown."""
    transport = request.transport
    sockname = transport.get_extra_info("sockname") if transport else None
    if not isinstance(sockname, tuple) or len(sockname) < 2:
        return None
    address = _canonical_host(str(sockname[0]))
    # "0.0.0.0" / "::": what a browser sends after opening the URL of a server bound to every
    # address (the connection then arrives on a local one); an IP literal, so no site can
    # rebind a name to it
    names = {address, "localhost", "0.0.0.0", "::"}
    if address.startswith("::ffff:"):  # an IPv4 client on a dual-stack socket
        names.add(address.removeprefix("::ffff:"))
    return names, int(sockname[1])


def _host_refusal(request: web.Request) -> web.Response | None:
    allowed = _allowed_hosts(request)
    if allowed is None:
        return None
    names, port = allowed
    host = _split_host(request.headers.get("Host", ""), 80)
    if host is None or host[0] not in names or host[1] != port:
        return _error(421, "this server answers only to the address it is bound to "
                           "(or localhost); Host refused")
    origin = request.headers.get("Origin")
    if origin is not None and request.method not in ("GET", "HEAD"):
        parts = urlsplit(origin)
        target = _split_host(parts.netloc, 80) if parts.scheme == "http" else None
        if target is None or target[0] not in names or target[1] != port:
            return _error(403, "cross-origin request refused")
    return None


@web.middleware
async def _guard(request: web.Request, handler: Any) -> web.StreamResponse:
    refused = _host_refusal(request)
    if refused is not None:
        return refused
    token = request.app[TOKEN_KEY]
    if token:
        given = (request.query.get("token") or request.headers.get("X-Posttrain-Token")
                 or request.cookies.get("posttrain_token") or "")
        if not secrets.compare_digest(given.encode(), token.encode()):
            return _error(401, "a token is required: open the URL printed at start-up")
    if request.method not in ("GET", "HEAD"):
        if request.method == "POST" and _store(request).read_only:
            return _error(403, "the store is read-only here (posttrain view opened it for "
                               "reading): votes, reviews and corrections cannot be stored")
        if request.content_type != "application/json":
            return _error(415, "send JSON")
        origin = request.headers.get("Origin")
        if origin and origin != f"{request.scheme}://{request.host}":
            return _error(403, "cross-origin request refused")
    try:
        response = await handler(request)
    except KeyError as exc:
        return _error(404, f"not found: {exc.args[0] if exc.args else ''}")
    except UserError as exc:
        return _error(getattr(exc, "http_status", 400), str(exc))
    if token and request.query.get("token"):
        response.set_cookie("posttrain_token", token, httponly=True, samesite="Strict")
    response.headers.setdefault("Cache-Control", "no-store")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    return response


#: the page's Content-Security-Policy: its own scripts only (no inline script or event handler,
#: so text that slipped into the page as HTML could not run), no framing (a vote or review
#: clicked through a hidden frame); Vega compiles its expressions with Function ('unsafe-eval')
#: and vega-embed adds a style element ('unsafe-inline' styles)
CSP = ("default-src 'self'; script-src 'self' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data: blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
       "form-action 'self'; frame-ancestors 'none'")


async def index(request: web.Request) -> web.Response:
    return web.Response(body=_static("index.html"), content_type="text/html",
                        headers={"Content-Security-Policy": CSP, "X-Frame-Options": "DENY"})


async def static(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name not in _STATIC:
        raise KeyError(name)
    return web.Response(body=_static(name), content_type=_STATIC[name])


async def vendor(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name not in _VENDOR:
        raise KeyError(name)
    body = resources.files("posttrain.web").joinpath("static", "vendor", name).read_bytes()
    return web.Response(body=body, content_type=_VENDOR[name],
                        headers={"Cache-Control": "max-age=86400"})


def _store(request: web.Request) -> Store:
    return request.app[STORE_KEY]


async def api_runs(request: web.Request) -> web.Response:
    return web.json_response(views.list_runs(_store(request)))


async def api_store(request: web.Request) -> web.Response:
    """The store the page reads: ``read_only`` (opened for reading: votes, reviews and
    corrections are refused with a 403, and the page says so)."""
    return web.json_response({"read_only": bool(_store(request).read_only)})


async def api_run(request: web.Request) -> web.Response:
    return web.json_response(views.run_page(_store(request), request.match_info["run"]))


async def api_training(request: web.Request) -> web.Response:
    from posttrain.runner import train_jobs

    return web.json_response(train_jobs.list_jobs(_store(request)))


async def api_training_job(request: web.Request) -> web.Response:
    from posttrain.runner import train_jobs

    job = train_jobs.get_job(_store(request), request.match_info["job"])
    if job is None:
        return _error(404, f"no training job {request.match_info['job']!r}")
    return web.json_response(job)


async def api_samples(request: web.Request) -> web.Response:
    """One page of a run's samples: ``filter``, ``tag``, ``grader``; ``offset`` (default 0)
    and ``limit`` (default ``views.SAMPLES_PAGE``, at most ``views.MAX_SAMPLES_PAGE``); the
    count of matching samples in ``X-Total-Count``."""
    query = request.query
    offset, limit = _page(query, views.SAMPLES_PAGE, views.MAX_SAMPLES_PAGE)
    rows, total = views.samples_page(_store(request), request.match_info["run"],
                                     query.get("filter", "all"), query.get("tag") or None,
                                     query.get("grader") or None, limit=limit, offset=offset)
    return web.json_response(rows, headers={"X-Total-Count": str(total)})


def _integer(value: Any, key: str, *, minimum: int | None = None, text: bool = False) -> int:
    """An integer a request sent: a JSON number that is a whole integer (not ``true``,
    ``1.5``, ``1e300``, ``"1"`` or ``[1]``), or with ``text`` a query parameter's digits (a
    leading ``-`` allowed); at most ``_LARGEST`` either way (SQLite's integers are 64-bit: 2^63
    was an HTTP 500) and at least ``minimum``; else a UserError (HTTP 400) naming ``key``. The
    one parser of every integer the server reads."""
    if text and isinstance(value, str):
        digits = value.removeprefix("-")
        if not (digits.isascii() and digits.isdigit()):
            raise UserError(f"{key} must be an integer")
        if len(digits) > len(str(_LARGEST)):
            raise UserError(f"{key} is too large (at most {_LARGEST})")
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise UserError(f"{key} must be an integer, got {json.dumps(value)[:40]}")
    if abs(value) > _LARGEST:
        raise UserError(f"{key} is too large (at most {_LARGEST})")
    if minimum is not None and value < minimum:
        raise UserError(f"{key} must be {minimum} or more")
    return value


def _int(query: Any, key: str, default: int, *, minimum: int | None = None) -> int:
    """A query parameter's integer (:func:`_integer`); ``default`` when missing or empty."""
    value = query.get(key)
    if value is None or value == "":
        return default
    return _integer(value, key, minimum=minimum, text=True)


#: the largest integer a query parameter may hold (far past any page; within SQLite's 64 bits)
_LARGEST = 2**53


def _page(query: Any, default: int, maximum: int) -> tuple[int, int]:
    """(offset, limit) of a paged endpoint: a missing one is 0 / ``default``; a ``limit`` over
    ``maximum`` is cut to it (the answer says the limit it used); a negative offset, a limit
    under 1 or one that is no integer is refused (HTTP 400, saying so)."""
    offset, limit = _int(query, "offset", 0), _int(query, "limit", default)
    if offset < 0:
        raise UserError("offset must be 0 or more")
    if limit < 1:
        raise UserError(f"limit must be from 1 to {maximum}")
    return offset, min(limit, maximum)


async def api_matrix(request: web.Request) -> web.Response:
    """Items x runs of one eval: ``?eval=NAME`` (the latest run of each model x variant) or
    ``?runs=ID,ID``; filters ``status``, ``tag``, ``q``, ``disagree=1``, ``changed=1``; ``sort``
    (item, score, -score) with ``col``; ``offset``/``limit``; ``format=csv|json`` downloads
    every matching row with whole answers."""
    store, query = _store(request), request.query
    try:
        columns = matrix.resolve_columns(store, query.get("eval"),
                                         [r for r in query.get("runs", "").split(",") if r])
        fmt = query.get("format")
        filters = {"status": query.get("status") or None, "tag": query.get("tag") or None,
                   "search": query.get("q") or None, "disagree": query.get("disagree") == "1",
                   "changed": query.get("changed") == "1", "sort": query.get("sort") or "item",
                   "sort_col": _int(query, "col", 0)}
        if fmt in ("csv", "json"):
            data = matrix.matrix(store, columns, **filters, limit=None, output_chars=None)
        elif fmt:
            return _error(400, "format must be csv or json")
        else:
            offset, limit = _page(query, matrix.PAGE, matrix.MAX_LIMIT)
            data = matrix.matrix(store, columns, **filters, offset=offset, limit=limit)
    except ValueError as exc:
        return _error(400, str(exc))
    if fmt is None:
        return web.json_response(data)
    name = "".join(c if c.isalnum() or c in "-_" else "_" for c in data["eval"])
    body = (matrix.to_csv(matrix.export_rows(data)) if fmt == "csv"
            else matrix.to_json(data, {k: v for k, v in filters.items() if v}))
    return web.Response(text=body, content_type="text/csv" if fmt == "csv" else "application/json",
                        headers={"Content-Disposition":
                                 f'attachment; filename="{name}-matrix.{fmt}"'})


async def api_sample(request: web.Request) -> web.Response:
    epoch = _int(request.query, "epoch", 0, minimum=0)
    return web.json_response(views.sample_detail(
        _store(request), request.match_info["run"], request.match_info["item"], epoch))


async def api_compare(request: web.Request) -> web.Response:
    a, b = request.query.get("a"), request.query.get("b")
    if not a or not b:
        return _error(400, "needs ?a=RUN&b=RUN")
    offset, limit = _page(request.query, views.COMPARE_PAGE, views.MAX_COMPARE_PAGE)
    store = _store(request)
    if store.resolve_run(a).id == store.resolve_run(b).id:
        return _error(400, "a and b are the same run: compare two runs")
    return web.json_response(views.compare(store, a, b, offset=offset, limit=limit))


async def api_arena_next(request: web.Request) -> web.Response:
    """A blind pair: a random shared item, the two answers in random order, no model names.
    Answers that are the same on both sides are never offered (nothing to choose); two runs of
    different evals or prompt variants are refused (HTTP 400), and an item whose content
    differs between the runs is never offered (``progress.changed`` counts them)."""
    store = _store(request)
    a, b = request.query.get("a"), request.query.get("b")
    if not a or not b:
        return _error(400, "needs ?a=RUN&b=RUN")
    run_a, run_b = store.resolve_run(a), store.resolve_run(b)
    if run_a.id == run_b.id:
        return _error(400, "pick two different runs")
    refusal = views.arena_refusal(run_a, run_b)
    if refusal is not None:
        return _error(400, refusal)
    progress = views.arena_progress(store, run_a.id, run_b.id)
    todo = progress.pop("todo")
    if not todo:
        return web.json_response({"done": True, "progress": progress})
    rng = request.app[RNG_KEY]
    item_id, epoch = rng.choice(todo)
    swapped = rng.random() < 0.5
    left, right = (run_b, run_a) if swapped else (run_a, run_b)
    detail_left = views.sample_detail(store, left.id, item_id, epoch)
    detail_right = views.sample_detail(store, right.id, item_id, epoch)
    pair = uuid.uuid4().hex
    request.app[PAIRS_KEY][pair] = {"a": run_a.id, "b": run_b.id, "left": left.id,
                                    "right": right.id, "item_id": item_id, "epoch": epoch,
                                    "models": {"left": left.model, "right": right.model}}
    return web.json_response({
        "done": False, "pair": pair, "item_id": item_id, "messages": detail_left["messages"],
        "left": {"output": detail_left["output"], "tool_calls": detail_left["tool_calls"]},
        "right": {"output": detail_right["output"], "tool_calls": detail_right["tool_calls"]},
        "remaining": len(todo), "total": progress["votable"], "progress": progress,
    })


async def api_arena_progress(request: web.Request) -> web.Response:
    store = _store(request)
    a, b = request.query.get("a"), request.query.get("b")
    if not a or not b:
        return _error(400, "needs ?a=RUN&b=RUN")
    run_a, run_b = store.resolve_run(a), store.resolve_run(b)
    refusal = views.arena_refusal(run_a, run_b)
    if refusal is not None:
        return _error(400, refusal)
    progress = views.arena_progress(store, run_a.id, run_b.id)
    progress.pop("todo")
    return web.json_response(progress)


async def _json(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (ValueError, UnicodeDecodeError):
        raise UserError("the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise UserError("the body must be a JSON object")
    return body


async def api_vote(request: web.Request) -> web.Response:
    body = await _json(request)
    pair = request.app[PAIRS_KEY].pop(str(body.get("pair")), None)
    if pair is None:
        return _error(404, "unknown or already used pair")
    choice = body.get("choice")
    if choice not in ("left", "right", "tie"):
        return _error(400, "choice must be left, right or tie")
    winner_run = pair.get(choice)
    winner = "tie" if choice == "tie" else ("a" if winner_run == pair["a"] else "b")
    _store(request).add_vote(pair["a"], pair["b"], pair["item_id"], winner, epoch=pair["epoch"],
                             voter=body.get("voter") if isinstance(body.get("voter"), str) else None)
    return web.json_response({"winner": winner, "reveal": pair["models"],
                              "runs": {"left": pair["left"], "right": pair["right"]}})


async def api_review(request: web.Request) -> web.Response:
    """Flag an item; optionally edit a reference field, then re-grade every run of its eval."""
    from posttrain.eval import load_eval
    from posttrain.runner.regrade import aregrade_run
    from posttrain.usage.review import reviewed_value, update_item_field

    store = _store(request)
    body = await _json(request)
    run = store.resolve_run(str(body.get("run", "")))
    item_id = str(body.get("item_id", ""))
    verdict = body.get("verdict")
    if verdict not in VERDICTS:
        return _error(400, f"verdict must be one of {', '.join(VERDICTS)}")
    note = body.get("note") if isinstance(body.get("note"), str) else None
    epoch = 0 if body.get("epoch") is None else _integer(body["epoch"], "epoch", minimum=0)
    detail = views.sample_detail(store, run.id, item_id, epoch)
    field = body.get("field")
    regraded = 0
    not_regraded: list[dict[str, str]] = []
    if field is not None:
        if field not in detail["reference_fields"]:
            return _error(400, f"field must be one of: {', '.join(detail['reference_fields'])}")
        if not run.eval_path:
            return _error(400, "this run has no eval file to edit")
        # a reviewed value keeps the JSON type the dataset row's field holds (a string
        # reference stays a string: an object written into it reads as its text, or breaks
        # the grader that reads it), checked against the row itself, not this run's copy
        try:
            value = reviewed_value(run.eval_path, item_id, field, body.get("value"))
        except UserError as exc:
            return _error(400, exc.message)
        old = update_item_field(run.eval_path, item_id, field, value, who=body.get("who") or "web",
                                note=note)
        store.add_review(run.eval_name, item_id, verdict, old_value={field: old},
                         new_value={field: value}, note=note)
        loaded = load_eval(run.eval_path)
        for other in store.list_runs(run.eval_name):
            if other.eval_path and Path(other.eval_path).resolve() == Path(run.eval_path).resolve():
                try:
                    regraded += await aregrade_run(store, other.id, loaded, item_ids={item_id})
                except UserError as exc:  # the review is saved: say which runs wait for a regrade
                    not_regraded.append({"run": other.id, "error": str(exc)})
    else:
        store.add_review(run.eval_name, item_id, verdict, note=note)
    return web.json_response({"regraded": regraded, "not_regraded": not_regraded,
                              "sample": views.sample_detail(store, run.id, item_id, epoch)})


# ---- live runs and steering -------------------------------------------------------------------
STREAM_HEARTBEAT_S = 5.0
HUB_KEY: web.AppKey[live.LiveHub] = web.AppKey("hub", live.LiveHub)


async def api_live(request: web.Request) -> web.Response:
    return web.json_response(live.live_runs(_store(request)))


def _sample_ref(request: web.Request) -> tuple[str, str, int]:
    return (request.match_info["run"], request.match_info["item"],
            _int(request.query, "epoch", 0))


async def api_trajectory(request: web.Request) -> web.Response:
    return web.json_response(live.trajectory(_store(request), *_sample_ref(request)))


async def api_stream(request: web.Request) -> web.StreamResponse:
    """Server-sent events: ``step`` (each new message or pause; of one sample with
    ``?run=&item=&epoch=``, of one run with ``?run=``, else of every run; from ``?after=STEP_ID``)
    and ``progress`` (the live runs, at most once a second while the store changes). One
    poller (:class:`posttrain.web.live.LiveHub`) reads the store for every open page, so an open
    page costs the runner nothing but this process's SQLite reads."""
    store, query = _store(request), request.query
    run = store.resolve_run(query["run"]).id if query.get("run") else None
    item = query.get("item") or None
    epoch = _int(query, "epoch", 0) if item is not None else None
    hub = request.app[HUB_KEY]
    after = _int(query, "after", -1)
    if after < 0:
        after = hub.position if run is None else 0
    response = web.StreamResponse(headers={
        "Content-Type": "text/event-stream", "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff", "X-Accel-Buffering": "no"})
    await response.prepare(request)
    # the backlog up to where the poller is, then its events: no step lost or sent twice
    backlog = [row for row in store.steps_after(after, run_id=run, item_id=item, epoch=epoch,
                                                limit=100_000) if row["id"] <= hub.position]
    queue = hub.subscribe((run, item, epoch))
    try:
        chunks = [hub.encode_step(row) for row in backlog]
        chunks.append(hub.progress_event())
        await response.write(b"".join(chunks))
        while True:
            try:
                chunk = await asyncio.wait_for(queue.get(), STREAM_HEARTBEAT_S)
            except TimeoutError:
                chunk = b": keep-alive\n\n"
            if not chunk:  # the server is shutting down
                break
            await response.write(chunk)
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        hub.unsubscribe(queue)
    return response


async def _steer_body(request: web.Request) -> tuple[dict[str, Any], str, str, int]:
    body = await _json(request)
    run, item = body.get("run"), body.get("item_id")
    if not isinstance(run, str) or not isinstance(item, str):
        raise UserError("needs run and item_id")
    epoch = _integer(body.get("epoch", 0), "epoch", minimum=0)
    return body, run, item, epoch


async def api_steer_pause(request: web.Request) -> web.Response:
    _body, run, item, epoch = await _steer_body(request)
    return web.json_response(live.request_pause(_store(request), run, item, epoch))


async def api_steer_resume(request: web.Request) -> web.Response:
    """The correction, written for the runner; the answer says what became of it within a few
    seconds: ``applied`` (the episode goes on with it), ``pending`` (the runner has not read
    it: it says so, and that the correction waits in the store), or HTTP 409 when the runner
    refused it or none holds the episode (``live.request_resume``)."""
    body, run, item, epoch = await _steer_body(request)
    store = _store(request)
    sent = live.request_resume(store, run, item, epoch, body)
    outcome = await live.await_control(store, sent["control"])
    if outcome["status"] == "refused":
        raise live.Conflict(f"the runner refused the correction: {outcome['note']}")
    if outcome["status"] == "applied":
        message = ("Correction applied; the episode goes on." if sent["steered"]
                   else "Resumed unchanged; the episode goes on.")
        return web.json_response({**sent, "state": "applied", "message": message})
    return web.json_response({**sent, "state": "pending", "message": (
        "The correction is stored, but the runner has not taken it yet (it reads the store "
        "between turns). If the run has stopped it will not be applied; this page shows the "
        "episode going on when it is.")})


async def api_votes(request: web.Request) -> web.Response:
    return web.json_response([dict(v) for v in _store(request).votes()])


def create_app(store_path: str | Path, *, token: str | None = None,
               seed: int | None = None) -> web.Application:
    app = web.Application(middlewares=[_guard], client_max_size=4 * 1024 * 1024)
    refuse_empty_store(store_path)  # browsing an empty file must not write a schema into it
    app[STORE_KEY] = Store(store_path, reading=True)  # read-only: browsing, no votes
    app[TOKEN_KEY] = token or ""
    app[PAIRS_KEY] = {}
    app[RNG_KEY] = random.Random(seed)
    app[HUB_KEY] = live.LiveHub(app[STORE_KEY])
    app.router.add_get("/", index)
    app.router.add_get("/static/{name}", static)
    app.router.add_get("/static/vendor/{name}", vendor)
    app.router.add_get("/api/store", api_store)
    app.router.add_get("/api/runs", api_runs)
    app.router.add_get("/api/runs/{run}", api_run)
    app.router.add_get("/api/runs/{run}/samples", api_samples)
    app.router.add_get("/api/runs/{run}/samples/{item}", api_sample)
    app.router.add_get("/api/compare", api_compare)
    app.router.add_get("/api/training", api_training)
    app.router.add_get("/api/training/{job}", api_training_job)
    app.router.add_get("/api/matrix", api_matrix)
    app.router.add_get("/api/arena/next", api_arena_next)
    app.router.add_get("/api/arena/progress", api_arena_progress)
    app.router.add_post("/api/arena/vote", api_vote)
    app.router.add_get("/api/votes", api_votes)
    app.router.add_post("/api/review", api_review)
    app.router.add_get("/api/live", api_live)
    app.router.add_get("/api/live/stream", api_stream)
    app.router.add_get("/api/live/{run}/{item}", api_trajectory)
    app.router.add_post("/api/steer/pause", api_steer_pause)
    app.router.add_post("/api/steer/resume", api_steer_resume)

    async def end_streams(app: web.Application) -> None:
        await app[HUB_KEY].stop()

    async def close_store(app: web.Application) -> None:
        app[STORE_KEY].close()

    app.on_shutdown.append(end_streams)

    app.on_cleanup.append(close_store)
    return app


def needs_token(host: str) -> bool:
    return host not in LOCAL_HOSTS
