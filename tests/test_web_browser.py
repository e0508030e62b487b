"""The viewer in a real browser: Playwright driving Debian's Chromium through a vote and a review.

Screenshots are kept under ``artifacts/web/`` (gitignored) as test artifacts.
Needs ``apt-get install chromium`` and ``pip install playwright`` (never ``playwright install``).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.test_web_helpers import LONG_MODEL, add_runs, build, serving

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts" / "web"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.slow
#: at least one chart, and every chart drawn (an empty page is not "all drawn")
ALL_CHARTS_DRAWN = ("(f => f.length > 0 && f.every(x => x.dataset.ready === '1'))("
                    "[...document.querySelectorAll('figure[data-chart]')])")




@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path, Path, dict[str, str]]]:
    store_path, eval_path, runs = build(tmp_path)
    with serving(store_path, seed=3) as base:
        yield base, store_path, eval_path, runs


@pytest.fixture
def page():
    if not Path(CHROMIUM).exists() or shutil.which(CHROMIUM) is None:
        pytest.skip(f"no Chromium at {CHROMIUM}: apt-get install -y chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed: pip install playwright")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        tab = context.new_page()
        errors: list[str] = []
        tab.on("pageerror", lambda exc: errors.append(str(exc)))
        yield tab
        browser.close()
        assert not errors, errors


def test_browse_vote_and_review(server, page) -> None:
    from posttrain.analysis.results import load_results
    from posttrain.runner.store import Store

    url, store_path, eval_path, runs = server
    # runs page: scores with CIs, pick two runs
    page.goto(url)
    page.wait_for_selector("#runs tbody tr")
    assert page.locator("#runs tbody tr").count() == 2
    assert "0.750" in page.inner_text("#runs")
    page.screenshot(path=str(ARTIFACTS / "01-runs.png"), full_page=True)

    # a run: charts, filters
    page.click(f"a[href='#/run/{runs['model-b']}']")
    page.wait_for_selector("#samples tbody tr")
    page.wait_for_function(ALL_CHARTS_DRAWN)
    charts = [f.get_attribute("data-chart") for f in page.locator("figure[data-chart]").all()]
    assert charts == ["score-by-tag", "latency", "frontier", "score-over-time"]
    assert page.locator("figure[data-ready='1'] svg.marks").count() == 4
    page.select_option("#filter", "errors")
    page.wait_for_function("document.querySelectorAll('#samples tbody tr').length === 1")
    assert "HTTP 500" in page.inner_text("#samples")
    page.screenshot(path=str(ARTIFACTS / "02-run-errors.png"), full_page=True)

    # blind vote: pick both runs, vote for model-a's answer on the two items where the
    # answers differ (q3: both said "Canberra", never offered)
    page.goto(url)
    page.wait_for_selector("#runs tbody tr")
    for box in page.locator("#runs input[type=checkbox]").all():
        box.check()
    page.click("#btn-vote")
    model_a = {"q1": "Paris", "q2": "Tokyo"}
    for index in range(2):
        page.wait_for_selector("#answer-left")
        body = page.inner_text("main")
        assert "model-a" not in body and "model-b" not in body  # blind until the vote
        assert f"{index} of 2 answer pairs voted" in page.inner_text("#arena-progress")
        assert "1 pair(s) with identical answers skipped" in body
        left = page.inner_text("#answer-left").strip()
        right = page.inner_text("#answer-right").strip()
        assert left != right
        choice = "left" if left in model_a.values() else "right"
        if index == 0:
            page.screenshot(path=str(ARTIFACTS / "03-vote-blind.png"), full_page=True)
        page.click(f"#vote-{choice}")
        page.wait_for_selector("#reveal:has-text('model-a')")
        if index == 0:
            page.screenshot(path=str(ARTIFACTS / "04-vote-revealed.png"), full_page=True)
        page.click("#btn-next")
        # the next pair (or the end) has replaced the revealed one
        page.wait_for_selector("#reveal:empty, #arena-done", state="attached")
    page.wait_for_selector("#arena-done")
    # q2 was graded Tokyo 1 / Kyoto 0 and the vote agreed; q1 both graded 1: not counted
    assert "agreement with the grades: 1/1 (100%)" in page.inner_text("#arena-progress")
    page.screenshot(path=str(ARTIFACTS / "04b-vote-done.png"), full_page=True)
    with Store(store_path) as store:
        votes = store.votes()
        assert len(votes) == 2
        for vote in votes:
            winner = vote["run_a"] if vote["winner"] == "a" else vote["run_b"]
            assert winner == runs["model-a"]

    # review: q3's reference "Sydney" is wrong; fix it and see both runs re-graded
    page.goto(f"{url}#/sample/{runs['model-a']}/q3/0")
    page.wait_for_selector("#review")
    assert page.inner_text("#sample-score") == "0.000"
    assert "Capital of Australia?" in page.inner_text(".msg.user")
    assert "no match" in page.inner_text(".grade")
    page.check("input[name=verdict][value=misgraded]")
    page.check("#ref-edit")
    assert page.input_value("#ref-value") == "Sydney"
    page.fill("#ref-value", "Canberra")
    page.fill("#review-note", "Canberra is the capital")
    page.screenshot(path=str(ARTIFACTS / "05-review-form.png"), full_page=True)
    page.click("#review-submit")
    page.wait_for_selector("#review-result:has-text('Re-graded 2')")
    page.wait_for_selector("#sample-score:has-text('1.000')")
    page.screenshot(path=str(ARTIFACTS / "06-review-done.png"), full_page=True)
    rows = [json.loads(line) for line in (eval_path.parent / "data.jsonl").read_text().splitlines()]
    assert rows[2]["answer"] == "Canberra"
    assert (eval_path.parent / "data.history.jsonl").exists()
    with Store(store_path) as store:
        assert load_results(store, runs["model-b"]).item_scores()["q3"] == 1.0

    # side by side with a diff
    page.goto(f"{url}#/compare/{runs['model-a']}/{runs['model-b']}")
    page.wait_for_selector("#compare ins")
    assert "Kyoto" in page.inner_text("#compare")
    page.screenshot(path=str(ARTIFACTS / "07-compare.png"), full_page=True)


def test_matrix_filters_keys_exports_and_permalink(server, page) -> None:
    url, store_path, eval_path, runs = server
    more = add_runs(store_path, eval_path)
    page.goto(f"{url}#/matrix/capitals")
    page.wait_for_selector("#matrix tbody tr")
    # columns: the latest run of each model (model-a's second run, not its first)
    heads = page.locator("#matrix thead th.col")
    assert heads.count() == 3
    names = [heads.nth(i).locator(".col-name").inner_text() for i in range(3)]
    # the long path is cut to its last two parts, the full name on hover
    assert names == ["qwen2.5-0.5b-instruct-sft/checkpoint-300 [default]", "model-a [default]",
                     "model-b [default]"]
    assert heads.nth(0).locator("a").get_attribute("title").startswith(LONG_MODEL)
    # column header: score, CI, coverage, cost, latency (model-b: 3 of 4 scored, one error)
    b_head = heads.nth(2).inner_text()
    assert "0.250" in b_head and "cov 3/4 (75%)" in b_head and "$0.003" in b_head
    cells = page.locator("#matrix tbody tr[data-item=q4] td.cell")
    assert [cells.nth(i).get_attribute("data-status") for i in range(3)] == ["pass", "pass",
                                                                             "error"]
    assert "HTTP 500" in cells.nth(2).inner_text()
    # sticky header: still at the top of the scrolled table
    page.screenshot(path=str(ARTIFACTS / "10-matrix.png"), full_page=True)

    # disagreement: q1 (all pass) is the only row where every column agrees
    page.check("#matrix-disagree")
    page.wait_for_function("document.querySelectorAll('#matrix tbody tr').length === 3")
    assert "disagree=1" in page.url
    assert page.locator("#matrix tbody tr[data-item=q1]").count() == 0
    page.uncheck("#matrix-disagree")
    # changed since the previous run: model-a's q2 went from Tokyo (pass) to Osaka (fail)
    page.check("#matrix-changed")
    page.wait_for_function("document.querySelectorAll('#matrix tbody tr').length === 1")
    row = page.locator("#matrix tbody tr").first
    assert row.get_attribute("data-item") == "q2"
    assert row.locator(".changed").count() == 1
    assert "previous run: pass" in row.locator(".changed").get_attribute("title")
    page.screenshot(path=str(ARTIFACTS / "11-matrix-changed.png"), full_page=True)
    page.uncheck("#matrix-changed")
    page.wait_for_function("document.querySelectorAll('#matrix tbody tr').length === 4")
    # status filter, then search (press / to focus it)
    page.select_option("#matrix-status", "error")
    page.wait_for_function("document.querySelectorAll('#matrix tbody tr').length === 1")
    page.select_option("#matrix-status", "")
    page.wait_for_function("document.querySelectorAll('#matrix tbody tr').length === 4")
    page.locator("#matrix td.cell").first.focus()
    page.keyboard.press("/")
    page.keyboard.type("kyoto")
    page.keyboard.press("Enter")
    page.wait_for_function("document.querySelectorAll('#matrix tbody tr').length === 1")
    assert page.locator("#matrix tbody tr").first.get_attribute("data-item") == "q2"
    assert "q=kyoto" in page.url

    # a permalink reproduces the view; exports carry the same filters
    permalink = page.url
    page.goto(url)
    page.wait_for_selector("#runs")
    page.goto(permalink)
    page.wait_for_function("document.querySelectorAll('#matrix tbody tr').length === 1")
    assert page.input_value("#matrix-search") == "kyoto"
    with page.expect_download() as info:
        page.click("#export-csv")
    text = Path(info.value.path()).read_text()
    lines = text.strip().splitlines()
    assert lines[0].startswith("item_id,tags,run,model,variant,status,score")
    assert len(lines) == 4 and all(line.startswith("q2,") for line in lines[1:])
    assert "Kyoto" in text and "Osaka" in text
    with page.expect_download() as info:
        page.click("#export-json")
    exported = json.loads(Path(info.value.path()).read_text())
    assert exported["filters"] == {"search": "kyoto", "sort": "item"}
    assert exported["total"] == 1 and len(exported["rows"]) == 3

    # keyboard: from the first cell, down twice and right once, Enter opens that answer
    page.goto(f"{url}#/matrix/capitals")
    page.wait_for_selector("#matrix tbody tr")
    page.locator("#matrix td.cell[data-r='0'][data-c='0']").focus()
    for key in ("ArrowDown", "ArrowDown", "ArrowRight"):
        page.keyboard.press(key)
    assert page.evaluate("document.activeElement.dataset.r + ',' + document.activeElement.dataset.c"
                         ) == "2,1"
    page.keyboard.press("Enter")
    page.wait_for_selector("#sample-score")
    assert f"#/sample/{more['model-a']}/q3/0" in page.url

    # sort by a column's score, descending (model-b: q1 is its only 1.0)
    page.goto(f"{url}#/matrix/capitals?sort=-score&col=2")
    page.wait_for_selector("#matrix tbody tr")
    assert page.locator("#matrix tbody tr").first.get_attribute("data-item") == "q1"


def test_charts_transcript_and_paired_compare(server, page) -> None:
    url, store_path, eval_path, runs = server
    more = add_runs(store_path, eval_path)
    # a run: three Vega-Lite charts drawn from the vendored library (no network)
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(f"{url}#/run/{more[LONG_MODEL]}")
    page.wait_for_selector("figure[data-chart=frontier]")
    page.wait_for_function(ALL_CHARTS_DRAWN)
    assert all(r.startswith(url) for r in requests), requests
    frontier = page.text_content("figure[data-chart=frontier]")
    # labels are short names, whole; only model-b's cost is known (the others are $0 with no
    # price), so the x axis is p95 latency and every run is drawn
    assert "qwen2.5-0.5b-instruct-sft/checkpoint-300 [default]" in frontier
    assert "model-a [default]" in frontier and "model-b [default]" in frontier
    assert "p95 latency (s)" in frontier and "cost unknown for 2 of 3 runs" in frontier
    assert "not drawn" not in frontier
    tags = page.text_content("figure[data-chart=score-by-tag]")
    assert "europe (n=2)" in tags and "oceania (n=1)" in tags
    assert "latency per answer (s)" in page.text_content("figure[data-chart=latency]")
    # the histogram comes counted from the server: its bars drawn, every answer counted
    latency = page.evaluate(f"fetch('api/runs/{more[LONG_MODEL]}').then(r => r.json())"
                            ".then(d => d.charts.latency)")
    assert latency["n"] >= 1 and latency["bins"]
    assert f"Latency, {latency['n']} answers" in page.text_content(
        "figure[data-chart=latency] figcaption")
    assert page.locator("figure[data-chart=latency] .mark-rect path").count() == \
        len(latency["bins"])
    # 'Compare with': every other run, told apart by name, variant and time
    assert page.locator("details.others li").count() == 3
    page.screenshot(path=str(ARTIFACTS / "20-run-charts.png"), full_page=True)
    # a chart exports as SVG and PNG (vega-embed's menu; its online editor is turned off)
    page.click("figure[data-chart=frontier] details summary")
    menu = page.inner_text("figure[data-chart=frontier] .vega-actions")
    assert "Save as SVG" in menu and "Save as PNG" in menu and "Editor" not in menu
    link = page.locator("figure[data-chart=frontier] .vega-actions a:has-text('Save as SVG')")
    link.dispatch_event("mousedown")  # vega-embed makes the image on mousedown, then links it
    page.wait_for_function("el => el.getAttribute('href') !== '#'",  # a blob: URL
                           arg=link.element_handle())
    with page.expect_download() as info:
        link.click()
    svg = Path(info.value.path()).read_text()
    assert svg.startswith("<svg") and "checkpoint-300" in svg

    # the transcript of a tool-use answer: turns, calls with arguments, results, state check
    page.goto(f"{url}#/sample/{more[LONG_MODEL]}/q4/0")
    page.wait_for_selector("#transcript")
    text = page.inner_text("#transcript")
    assert "Transcript (5 messages after the prompt)" in text
    assert "→ lookup_capital" in text and '"country": "Italy"' in text
    assert "tool result · call_0_0" in text.lower()  # the role label is upper-cased by CSS
    assert "matches the expected final state" in page.inner_text("#state-check")
    assert page.locator("#tool-calls tbody tr").count() == 2
    page.screenshot(path=str(ARTIFACTS / "21-transcript.png"), full_page=True)

    # side by side: paired differences by tag, a chart with a zero line
    page.goto(f"{url}#/compare/{runs['model-a']}/{runs['model-b']}")
    page.wait_for_selector("figure[data-chart=paired-by-tag][data-ready='1'] svg")
    assert "B − A = -0.500 over 4 paired items" in page.inner_text("#paired-overall")
    chart = page.text_content("figure[data-chart=paired-by-tag]")
    assert "europe (n=2)" in chart and "asia (n=1)" in chart
    page.screenshot(path=str(ARTIFACTS / "22-compare.png"), full_page=True)


def test_training_page_draws_the_reward_curve_as_it_grows(server, page) -> None:
    """A job in the store (as `train rft` records it): listed, its reward and validation per
    step drawn; a step logged while the page is open shows on reload; the outcome links the
    before / after runs side by side."""
    from posttrain.runner import train_jobs
    from posttrain.runner.store import Store

    base, store_path, _, runs = server
    with Store(store_path) as db:
        job = train_jobs.start_job(db, kind="rft", model=f"hf:{LONG_MODEL}", eval_name="qa",
                                   out_dir="/tmp/out", config={"steps": 3})
        train_jobs.log_step(db, job, {"step": 0, "validation": 0.25})
        train_jobs.log_step(db, job, {"step": 1, "reward": 0.3, "reward_std": 0.2})
    page.goto(base + "#/training")
    page.wait_for_selector("#jobs")
    assert page.locator(f"tr[data-job='{job}'] td").nth(4).inner_text() == "running"
    page.click(f"a[href='#/training/{job}']")
    page.wait_for_function(ALL_CHARTS_DRAWN)
    assert page.locator("figure[data-chart='reward'] svg.marks").count() == 1
    with Store(store_path) as db:
        train_jobs.log_step(db, job, {"step": 2, "reward": 0.6, "reward_std": 0.1,
                                      "validation": 0.5})
        before, after = list(runs.values())[:2]
        train_jobs.finish_job(db, job, status="finished", result={
            "baseline": 0.25, "after": 0.5, "n": 8, "diff": 0.25, "ci": [0.0, 0.5],
            "test": "sign-flip", "p_value": 0.06, "runs": [before, after]})
    page.reload()
    page.wait_for_function(ALL_CHARTS_DRAWN)
    marks = page.locator("figure[data-chart='reward'] svg.marks [aria-roledescription='line mark']")
    assert marks.count() == 2  # training reward and validation
    points = page.locator("figure[data-chart='reward'] svg.marks [aria-roledescription='point']")
    assert points.count() == 4  # rewards at steps 1, 2; validations at 0, 2
    outcome = page.locator("#outcome").inner_text()
    assert "before 0.250 → after 0.500 (n=8)" in outcome and "p = 0.0600" in outcome
    assert page.locator("#outcome a").get_attribute("href") == f"#/compare/{before}/{after}"
    page.screenshot(path=str(ARTIFACTS / "training.png"), full_page=True)


def test_score_over_time_is_shelf_life_by_release_date(server, page) -> None:
    """Every run's model has a `released:` date: the chart is placed by release date and says
    so; with one date missing it falls back to run date and says why."""
    from posttrain.runner.store import Store

    base, store_path, _, runs = server
    with Store(store_path) as store:
        store.update_run_config(runs["model-a"], {"model": {"released": "2024-07-18"}})
    page.goto(base + f"#/run/{runs['model-a']}")
    page.wait_for_function(ALL_CHARTS_DRAWN)
    caption = page.locator("figure[data-chart='score-over-time'] figcaption").inner_text()
    assert "by run date" in caption and "no released: date" in caption
    with Store(store_path) as store:
        store.update_run_config(runs["model-b"], {"model": {"released": "2025-04-14"}})
    page.reload()
    page.wait_for_function(ALL_CHARTS_DRAWN)
    figure = page.locator("figure[data-chart='score-over-time']")
    assert figure.locator("figcaption").inner_text().startswith("Shelf life: the latest 2 runs")
    assert "model release date" in figure.locator("svg.marks").text_content()
    figure.screenshot(path=str(ARTIFACTS / "shelf-life.png"))


#: a fine-tuned model with a long path and variant: its frontier label is longer than the plot
LONGER_MODEL = ("hf:/home/me/models/a-really-long-finetuned-model-name-sft-dpo-rft-v2/"
                "checkpoint-000900")
FRONTIER_LABELS = """() => {
  const fig = document.querySelector("figure[data-chart='frontier']");
  const box = e => e.getBoundingClientRect();
  const labels = [...fig.querySelectorAll("g.mark-text.role-mark text")].map(t => {
    const r = box(t); return {text: t.textContent, left: r.left, right: r.right, top: r.top, bottom: r.bottom}; });
  const domains = [...fig.querySelectorAll(".role-axis-domain")].map(box);
  const xAxis = domains.reduce((a, b) => (b.width > a.width ? b : a));
  return {labels, plotLeft: xAxis.left};
}"""


def _same_place_runs(store_path: Path, eval_path: Path) -> dict[str, str]:
    """Runs whose points coincide on the frontier with model-a's latest (0.5 at $0), one a
    little faster (model-d), and one with a long name (its label drawn left of its point)."""
    answers = {"q1": "Paris", "q2": "Osaka", "q3": "Canberra", "q4": "Rome"}
    return _more_runs(store_path, eval_path, answers, [
        ("model-c", "default", 0.0), ("openai:gpt-4o-mini", "default", 0.0),
        ("model-d", "default", 0.0),
        (LONGER_MODEL, "a-long-variant-name-with-many-words", 0.01)], latency={"model-d": 0.48})


def _more_runs(store_path: Path, eval_path: Path, answers: dict[str, str],
               models: list[tuple[str, str, float]],
               latency: dict[str, float] | None = None) -> dict[str, str]:
    """A finished run per (model, variant, cost per answer), each with these answers (each in
    0.5 s unless ``latency`` names the model)."""
    from posttrain.eval import load_eval
    from posttrain.runner.store import Store
    from posttrain.types import Completion

    ev = load_eval(eval_path)
    runs = {}
    with Store(store_path) as store:
        for model, variant, cost in models:
            run = store.create_run(run_key=f"k3-{model}", eval_name=ev.name,
                                   eval_path=str(eval_path), eval_hash=ev.fingerprint(),
                                   model=model, variant=variant, epochs=1, config={},
                                   items=ev.items)
            for item in ev.items:
                completion = Completion(text=answers[item.id],
                                        latency_s=(latency or {}).get(model, 0.5), cost_usd=cost,
                                        input_tokens=20, output_tokens=4)
                sample = completion.to_sample()
                store.record_sample(run.id, item.id, 0, completion=completion, request_key=None,
                                    attempts=1, scores=[g.grade(sample, item.data)
                                                        for g in ev.graders])
            store.finish_run(run.id)
            runs[model] = run.id
    return runs


def test_frontier_labels_neither_overlap_nor_run_over_the_axis(tmp_path: Path, page) -> None:
    """Three runs at the same point drew their names over each other, and a long name at the
    right ran left over the y axis (unreadable): now stacked, and cut to the room they have."""
    store_path, eval_path, runs = build(tmp_path)
    add_runs(store_path, eval_path)
    _same_place_runs(store_path, eval_path)
    with serving(store_path) as base:
        page.goto(f"{base}#/run/{runs['model-b']}")
        page.wait_for_function(ALL_CHARTS_DRAWN)
        page.screenshot(path=str(ARTIFACTS / "21-frontier-labels.png"), full_page=True)
        found = page.evaluate(FRONTIER_LABELS)
    labels = found["labels"]
    assert len(labels) == 7, labels
    assert any(t["text"].startswith("…") and t["text"].endswith("many-words]") for t in labels)
    for t in labels:
        assert t["left"] >= found["plotLeft"] - 1, (t, found["plotLeft"])
    for i, a in enumerate(labels):
        for b in labels[i + 1:]:
            apart = (a["right"] <= b["left"] + 1 or b["right"] <= a["left"] + 1
                     or a["bottom"] <= b["top"] + 1 or b["bottom"] <= a["top"] + 1)
            assert apart, (a, b)


def test_compare_folds_a_long_stretch_both_answers_share(tmp_path: Path, page) -> None:
    """Two 5,000-character answers that differ in one word filled a screen each in the side by
    side view; what both share is folded now, the change and its surroundings shown."""
    store_path, eval_path, _ = build(tmp_path)
    long = "lorem ipsum " * 200
    runs = {}
    for model, word in [("model-x", "Paris"), ("model-y", "Lyon")]:
        answers = {q: f"{long}{word} {long}" for q in ("q1", "q2", "q3", "q4")}
        runs.update(_more_runs(store_path, eval_path, answers, [(model, "default", 0.0)]))
    with serving(store_path) as base:
        page.goto(f"{base}#/compare/{runs['model-x']}/{runs['model-y']}")
        page.wait_for_selector("#compare ins")
        row = page.locator("#compare tbody tr").first
        assert "Lyon" in row.inner_text() and "Paris" in row.inner_text()
        assert row.locator("details.same").count() == 2
        assert row.bounding_box()["height"] < 400
        page.screenshot(path=str(ARTIFACTS / "23-compare-long.png"), full_page=True)
        row.locator("details.same summary").first.click()
        assert len(row.inner_text()) > 2400


def test_arena_of_two_runs_with_the_same_answers_says_there_is_nothing_to_vote_on(
        tmp_path: Path, page) -> None:
    """It said "All 0 answer pairs that differ are voted on." under a full progress bar."""
    store_path, eval_path, _ = build(tmp_path)
    answers = {"q1": "Paris", "q2": "Tokyo", "q3": "Canberra", "q4": "Rome"}
    runs = _more_runs(store_path, eval_path, answers,
                      [("model-x", "default", 0.0), ("model-y", "default", 0.0)])
    with serving(store_path) as base:
        page.goto(f"{base}#/arena/{runs['model-x']}/{runs['model-y']}")
        page.wait_for_selector("#arena-done")
        assert "Nothing to vote on" in page.inner_text("#arena-done")
        assert "4 shared items" in page.inner_text("#arena-done")
        width = page.evaluate("document.querySelector('#arena-progress .bar span').style.width")
        assert width == "0%"
        page.screenshot(path=str(ARTIFACTS / "24-arena-nothing-to-vote.png"), full_page=True)


def test_no_cost_recorded_is_not_shown_as_zero_dollars(tmp_path: Path, page) -> None:
    """Runs of a model with no price showed "$0" (runs list, run page, matrix column) where
    `posttrain report` prints "-" and the frontier says "cost unknown"."""
    store_path, eval_path, runs = build(tmp_path)
    more = add_runs(store_path, eval_path)
    with serving(store_path) as base:
        page.goto(base)
        page.wait_for_selector("#runs tbody tr")
        row = page.locator("#runs tbody tr", has=page.locator(f"a[href='#/run/{more[LONG_MODEL]}']"))
        assert "$0" not in row.inner_text() and "–" in row.inner_text()
        assert "$0.0030" in page.inner_text("#runs")  # model-b's recorded cost
        page.goto(f"{base}#/run/{more[LONG_MODEL]}")
        page.wait_for_selector("#samples tbody tr")
        assert "no cost recorded" in page.inner_text("main") and "$0 " not in page.inner_text("main")
        page.goto(f"{base}#/matrix/capitals")
        page.wait_for_selector("#matrix")
        heads = page.inner_text("#matrix thead")
        assert "no cost" in heads and "$0 " not in heads and "$0.0030" in heads
        page.screenshot(path=str(ARTIFACTS / "25-matrix-no-cost.png"), full_page=True)


def test_no_console_error_on_the_viewer_pages(server, page) -> None:
    """The browser's favicon.ico request got a 404 on every visit (an error in the console); now the page names an empty icon."""
    url, _, _, runs = server
    failed: list[str] = []
    page.on("console", lambda m: m.type == "error" and failed.append(f"{m.text} {m.location}"))
    for where in ("", f"#/run/{runs['model-b']}", "#/matrix/capitals", "#/training"):
        page.goto(url + where)
        page.wait_for_timeout(800)
    assert not failed, failed


def test_a_right_to_left_answer_reads_right_to_left(tmp_path: Path, page) -> None:
    """An Arabic answer was laid out left to right, flush left, in the sample, matrix and run
    pages; each text now takes its direction from its first strong letter (dir=auto)."""
    store_path, eval_path, _ = build(tmp_path)
    arabic = "عاصمة فرنسا هي باريس"
    runs = _more_runs(store_path, eval_path, dict.fromkeys(("q1", "q2", "q3", "q4"), arabic),
                      [("model-ar", "default", 0.0)])
    direction = "el => getComputedStyle(el).direction"
    with serving(store_path) as base:
        page.goto(f"{base}#/sample/{runs['model-ar']}/q1/0")
        answer = page.locator(".msg.assistant .content").last
        answer.wait_for()
        assert answer.evaluate(direction) == "rtl"
        assert page.locator(".msg.user .content").first.evaluate(direction) == "ltr"
        page.screenshot(path=str(ARTIFACTS / "26-sample-rtl.png"), full_page=True)
        page.goto(f"{base}#/matrix/capitals")
        page.wait_for_selector("#matrix tbody tr")
        cell = page.locator("#matrix .cell-text", has_text=arabic).first
        assert cell.evaluate(direction) == "rtl"
        page.goto(f"{base}#/run/{runs['model-ar']}")
        page.wait_for_selector("#samples tbody tr")
        assert page.locator("#samples td", has_text=arabic).first.evaluate(direction) == "rtl"


#: form controls with no name but a placeholder (or none at all, as the reference field select)
UNLABELLED = """[...document.querySelectorAll('input, select, textarea')].filter(e =>
  e.type !== 'hidden' && !e.getAttribute('aria-label') && !e.labels?.length && !e.title)
  .map(e => e.tagName.toLowerCase() + '#' + e.id)"""


def test_every_form_control_has_a_label(server, page) -> None:
    """The reference field select had no name at all; the matrix search, review note and voter
    fields only a placeholder (gone once typed in)."""
    url, _, _, runs = server
    a, b = runs["model-a"], runs["model-b"]
    for where in ("", f"#/run/{b}", f"#/sample/{b}/q1/0", "#/matrix/capitals",
                  f"#/compare/{a}/{b}", f"#/arena/{a}/{b}"):
        page.goto(url + where)
        page.wait_for_selector("main h1")
        page.wait_for_timeout(300)
        assert page.evaluate(UNLABELLED) == [], where


def test_a_short_chart_is_not_stretched_to_the_height_of_its_row(server, page) -> None:
    """The score-by-tag chart (3 rows) was drawn in a box as tall as the latency histogram
    beside it: half the box blank."""
    url, _, _, runs = server
    page.goto(f"{url}#/run/{runs['model-b']}")
    page.wait_for_function(ALL_CHARTS_DRAWN)
    blank = page.evaluate("""[...document.querySelectorAll('figure[data-chart]')].map(f => {
        const inner = [...f.children].reduce((h, c) => h + c.getBoundingClientRect().height, 0);
        return f.getBoundingClientRect().height - inner; })""")
    assert max(blank) < 40, blank


def test_score_over_time_ticks_read_apart(server, page) -> None:
    """Runs made seconds apart had every run-date tick read "Nov 30 16:38"."""
    url, store_path, eval_path, runs = server
    add_runs(store_path, eval_path)
    page.goto(f"{url}#/run/{runs['model-b']}")
    page.wait_for_function(ALL_CHARTS_DRAWN)
    ticks = page.evaluate("""[...document.querySelectorAll(
        "figure[data-chart='score-over-time'] .role-axis-label text")].map(t => t.textContent)""")
    dates = [t for t in ticks if ":" in t]
    assert dates and len(dates) == len(set(dates)), ticks


def test_an_inline_handler_cannot_run_in_the_page(server, page) -> None:
    """Under the page's CSP, HTML with an event handler put into the page does not run it, and
    the charts (Vega) still draw with no CSP violation."""
    url, _, _, runs = server
    violations: list[str] = []
    page.on("console", lambda m: "Content Security Policy" in m.text and violations.append(m.text))
    page.goto(f"{url}#/run/{runs['model-b']}")
    page.wait_for_function(ALL_CHARTS_DRAWN)
    assert violations == [], violations
    page.evaluate("""document.querySelector('main').insertAdjacentHTML('beforeend',
        '<img src=x onerror="window.__xss=1">')""")
    page.wait_for_timeout(300)
    assert page.evaluate("window.__xss") is None


def test_a_chart_exports_as_svg_and_png_under_the_pages_csp(server, page) -> None:
    """vega-embed's menu saves a chart as SVG and as PNG (data: and blob: URLs the CSP allows)."""
    url, _, _, runs = server
    page.goto(f"{url}#/run/{runs['model-b']}")
    page.wait_for_function(ALL_CHARTS_DRAWN)
    figure = page.locator("figure[data-chart='score-by-tag']")
    for kind in ("svg", "png"):
        figure.locator("details").evaluate("d => { d.open = true; }")
        with page.expect_download() as download:
            figure.locator(f"a:has-text('Save as {kind.upper()}')").click()
        saved = download.value
        assert saved.suggested_filename == f"score-by-tag.{kind}"
        head = Path(saved.path()).read_bytes()[:8]
        assert head.startswith(b"<svg" if kind == "svg" else b"\x89PNG"), head


def test_a_read_only_store_says_so_on_the_page(tmp_path: Path, page) -> None:
    """Opened for reading (the file is not writable here), the page says votes and reviews are
    off before anyone tries; a writable store shows no such line."""
    from tests.test_store_read_only import _lock

    store_path, _eval_path, _runs = build(tmp_path)
    with serving(store_path, seed=3) as base:
        page.goto(base)
        page.wait_for_selector("#runs tbody tr")
        assert page.locator("#read-only").count() == 0
    from posttrain.runner.store import Store

    with Store(store_path) as store:  # everything in the file, no -wal to open
        store.checkpoint("TRUNCATE")
    for extra in ("-wal", "-shm"):
        Path(str(store_path) + extra).unlink(missing_ok=True)
    for _ in _lock([store_path]):
        with serving(store_path, seed=3) as base:
            page.goto(base)
            page.wait_for_selector("#read-only")
            assert "read-only store" in page.inner_text("header")
            page.wait_for_selector("#runs tbody tr")
            page.screenshot(path=str(ARTIFACTS / "read-only.png"))
