"""Follow along and steer in a real browser (Playwright on Debian's Chromium): a live run
appears on the page as the runner writes it, a reviewer pauses an agentic sample, edits the
tool result it has yet to read, adds a message, lets it go on, and the stored sample shows it.

The run is a real ``posttrain eval`` process against the stub server (0.25 s an answer); the
viewer is the real server in this process; they share only the store file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from posttrain.runner.store import Store
from tests.conftest import StubServer
from tests.steer_env import write_weather_eval
from tests.test_web_browser import ARTIFACTS, page  # noqa: F401 - the fixture
from tests.test_web_helpers import serving

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def viewer(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    store_path = tmp_path / "live.db"
    Store(store_path).close()
    with serving(store_path) as base:
        yield base, store_path


@pytest.mark.parametrize("backend", ["local", "ray"])
def test_follow_a_live_run_and_steer_a_trajectory(viewer, page, tmp_path: Path,  # noqa: F811
                                                  backend: str) -> None:
    """The same on the local runner and with ``--backend ray`` (a local Ray cluster the run
    starts, two worker processes: the episode is played in a worker, the page sees the
    driver's store)."""
    url, store_path = viewer
    extra: list[str] = []
    env = {**os.environ}
    start_s = 30
    if backend == "ray":
        pytest.importorskip("ray")
        extra = ["--backend", "ray"]
        env.update(POSTTRAIN_RAY_WORKERS="2", RAY_AUTH_MODE="disabled")
        start_s = 120  # Ray's start-up on two busy cores
    stub = StubServer(0.25)
    eval_path = write_weather_eval(tmp_path / "ev", n=2, max_turns=40)
    env.update({"OPENAI_BASE_URL": stub.base_url, "OPENAI_API_KEY": "sk-test",
                "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT),
                                               os.environ.get("PYTHONPATH", "")])})
    shot = "" if backend == "local" else "-ray"
    # the page is open before the run starts: the run must arrive by itself (pushed)
    page.goto(f"{url}#/live")
    page.wait_for_selector("#live-holder")
    assert page.locator("#live-runs tbody tr").count() == 0
    run = subprocess.Popen([sys.executable, "-m", "posttrain.cli", "eval", str(eval_path),
                            "--model", "openai:stub", "--store", str(store_path), *extra],
                           cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True)
    try:
        page.wait_for_selector("#live-runs tr[data-status=running]", timeout=start_s * 1000)
        page.wait_for_selector("a.in-flight:has-text('w0')", timeout=start_s * 1000)
        assert "0/2" in page.inner_text("#live-runs")
        page.screenshot(path=str(ARTIFACTS / f"30-live-runs{shot}.png"), full_page=True)

        # w0's trajectory as it unfolds: a step per message, one line each
        page.click("a.in-flight:has-text('w0')")
        page.wait_for_selector("#steps li:has-text('weather →')")
        assert "calls weather(city=\"Paris\")" in page.inner_text("#steps")
        assert page.inner_text("#traj-state") == "running"
        count = page.locator("#steps li").count()
        page.wait_for_function(f"document.querySelectorAll('#steps li').length > {count}")

        # pause: the runner stops before the next turn and waits
        page.click("#btn-pause")
        page.wait_for_selector("#traj-state[data-state=paused]", timeout=20_000)
        page.wait_for_selector("#steps li.paused")
        page.wait_for_selector("#steer-form:not([hidden]) textarea[id^=edit-]")
        steps_when_paused = page.locator("#steps li").count()
        page.wait_for_timeout(1000)  # nothing moves while paused
        assert page.locator("#steps li").count() == steps_when_paused
        edit = page.locator("textarea[id^=edit-]").first
        position = int(edit.get_attribute("data-position"))
        assert json.loads(edit.input_value()) == {"city": "Paris", "celsius": 21}
        edit.fill('{"city": "Paris", "celsius": 21, "note": "checked by a reviewer"}')
        page.fill("#steer-message", "[[answer:21 degrees]]")
        page.screenshot(path=str(ARTIFACTS / f"31-paused-correction{shot}.png"), full_page=True)
        page.click("#btn-continue")
        page.wait_for_selector("#steer-result:has-text('Correction applied')")

        # it goes on with the correction, answers, and is graded
        page.wait_for_selector("#steps li:has-text('resumed with a correction')")
        page.wait_for_selector("#steps li:has-text('says “21 degrees”')", timeout=20_000)
        page.wait_for_selector("#open-sample", timeout=20_000)
        assert '"note": "checked by a reviewer"' in page.inner_text(
            f"#traj-messages [data-position='{position}']")
        page.screenshot(path=str(ARTIFACTS / f"32-steered-trajectory{shot}.png"), full_page=True)
        page.click("#open-sample")
        page.wait_for_selector("#steering")
        text = page.inner_text("#steering")
        assert "Steered by a reviewer (1 correction)" in text
        assert "checked by a reviewer" in text and "[[answer:21 degrees]]" in text
        assert "never executed" in text and "→ weather" in text  # the original continuation
        # graded right, but a reviewer's correction is not the model's own: unscored, and why
        assert page.inner_text("#sample-score") == "–"
        assert "steered by a reviewer" in page.inner_text("body")
        page.screenshot(path=str(ARTIFACTS / f"33-stored-sample-steering{shot}.png"), full_page=True)

        # the live list shows the run finishing (w1 runs to its turn cap, unsteered)
        page.goto(f"{url}#/live")
        page.wait_for_selector("#live-runs tr[data-status=finished]", timeout=60_000)
        assert "2/2" in page.inner_text("#live-runs")
        assert "1 steered" in page.inner_text("#live-runs")
        assert run.wait(60) == 0, run.stderr.read() if run.stderr else ""
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
        stub.close()

    with Store(store_path) as store:
        (info,) = store.list_runs()
        rows = {r["item_id"]: json.loads(r["completion"]) for r in store.samples(info.id)}
        (record,) = rows["w0"]["meta"]["steering"]
        assert record["edited_tool_results"][0]["index"] == position
        assert record["added_message"]["content"] == "[[answer:21 degrees]]"
        assert record["reviewer"] == "web"
        assert "steering" not in rows["w1"]["meta"]
        scores = {r["item_id"]: r["value"] for r in store.scores(info.id)}
        assert scores == {"w0": 1.0, "w1": 0.0}


def test_a_solver_that_reports_no_steps_offers_no_pause(viewer, page, tmp_path: Path,  # noqa: F811
                                                        monkeypatch) -> None:
    """A ``solver:`` of one's own that does not report its turns (no ``Episode`` hook): its
    sample in flight has no trajectory, and its page says why instead of offering a pause."""
    import asyncio
    import threading
    import time

    from posttrain.api import arun_eval
    from tests import steer_env

    url, store_path = viewer
    stub = StubServer()
    monkeypatch.setenv("OPENAI_BASE_URL", stub.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    eval_path = steer_env.write_solver_eval(tmp_path / "ev", "solve_silently")
    steer_env.RELEASE.clear()
    failures: list[BaseException] = []

    def run() -> None:
        try:
            asyncio.run(arun_eval(eval_path, ["openai:stub"], store=store_path))
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            failures.append(exc)

    runner = threading.Thread(target=run)
    runner.start()
    try:
        with Store(store_path) as store:  # w0 answered, w1 held in flight by its solver
            deadline = time.monotonic() + 30
            while not store.conn.execute("SELECT 1 FROM samples WHERE item_id = 'w0'"
                                         ).fetchone():
                assert time.monotonic() < deadline and not failures, failures
                time.sleep(0.05)
            run_id = store.list_runs()[0].id
        page.goto(f"{url}#/live/{run_id}/w1/0")
        page.wait_for_selector("#pause-note:not([hidden])")
        note = page.inner_text("#pause-note")
        assert "tests.steer_env:solve_silently" in note and "reports no steps" in note
        assert page.locator("#btn-pause").is_disabled()
        assert page.inner_text("#traj-state") == "running"
        page.screenshot(path=str(ARTIFACTS / "34-solver-without-steps.png"), full_page=True)
    finally:
        steer_env.RELEASE.set()
        runner.join(60)
        stub.close()
    assert not failures, failures
