"""`train rft` at its edges: prompts that do not fit the context are refused before the baseline,
an environment that answers megabytes cannot blow up a rollout, a step with no scored reward
stops training without saving a model, and Ctrl-C / SIGTERM / SIGKILL leave an honest record."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from posttrain.environment import Step, episode_solver
from posttrain.eval import eval_from_dict
from posttrain.types import Completion
from tests.episode_env import eval_spec, rows

ROOT = Path(__file__).resolve().parents[1]
HUGE = 4_000_000


class FloodEnv:
    """Answers every wrong reply with a 4-million-character message."""

    max_turns = 3

    def reset(self, item: dict[str, Any]) -> list[dict[str, Any]]:
        self.expected = item["expected"]
        return []

    def step(self, action: dict[str, Any]) -> Step:
        solved = (action.get("content") or "").strip() == self.expected
        if solved:
            return Step([], done=True, info={"solved": True, "first_try": True})
        return Step([{"role": "user", "content": "x" * HUGE}], done=False,
                    info={"solved": False, "first_try": False})


flood = episode_solver(FloodEnv)


@pytest.fixture(scope="module")
def tiny() -> tuple[Any, Any, Path]:
    pytest.importorskip("trl")
    from transformers import AutoModelForCausalLM

    from posttrain.train.common import load_tokenizer
    from posttrain.train.tiny import ensure_tiny_model

    folder = ensure_tiny_model(task=None)
    return AutoModelForCausalLM.from_pretrained(folder), load_tokenizer(str(folder)), folder


def _cli(*args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "posttrain.cli", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=600, **kwargs)


def _write(folder: Path, spec: dict[str, Any]) -> Path:
    import yaml

    path = folder / "eval.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


# ---- the context ----------------------------------------------------------------------------------
def test_a_prompt_longer_than_the_context_is_refused_before_the_baseline(
        tiny: tuple[Any, Any, Path], tmp_path: Path) -> None:
    """The tool_use suite's prompts (tools in the system message) do not fit the tiny model's
    256 positions: one line naming an item, exit 2, no run stored, nothing trained."""
    _, _, folder = tiny
    built = _cli("suites", "build", "tool_use", "-o", str(tmp_path / "tu"), "--n", "24")
    assert built.returncode == 0, built.stderr
    store = tmp_path / "s.db"
    out = _cli("train", "rft", "--eval", str(tmp_path / "tu" / "eval.yaml"), "--model",
               f"hf:{folder}", "-o", str(tmp_path / "o"), "--store", str(store), "--steps", "1")
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert "no room for one model turn" in out.stderr and "context is 256" in out.stderr
    assert "item '" in out.stderr and "--episode-tokens" not in out.stderr
    assert not (tmp_path / "o").exists()
    if store.exists():  # no baseline was run
        with sqlite3.connect(store) as conn:
            assert conn.execute("SELECT COUNT(*) FROM sqlite_master WHERE name = 'runs'"
                                ).fetchone()[0] == 0 or \
                conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 0


def test_a_turn_that_does_not_fit_names_the_room_left(tiny: tuple[Any, Any, Path],
                                                      tmp_path: Path) -> None:
    from posttrain.errors import UserError
    from posttrain.eval import load_eval
    from posttrain.train.fits import check_context, prompt_tokens

    _, tokenizer, folder = tiny
    ev = load_eval(_write(tmp_path, eval_spec(rows(8))))
    longest, _ = prompt_tokens(tokenizer, ev, ev.items, episodes=True)[0]
    room = 256 - longest
    assert check_context(str(folder), tokenizer, ev, ev.items, answer_tokens=room,
                         episodes=True, option="--max-tokens") == 256
    with pytest.raises(UserError, match=f"{room} tokens are left for one model turn, "
                                        f"{room + 1} asked; give --max-tokens {room} or less"):
        check_context(str(folder), tokenizer, ev, ev.items, answer_tokens=room + 1,
                      episodes=True, option="--max-tokens")
    single = load_eval(_write(tmp_path, {**eval_spec(rows(8)), "solver": None}))
    with pytest.raises(UserError, match="left for the answer"):
        check_context(str(folder), tokenizer, single, single.items, answer_tokens=255,
                      episodes=False, option="--max-tokens")


def test_an_episode_budget_past_the_context_is_kept_within_it(
        tiny: tuple[Any, Any, Path]) -> None:
    """--episode-tokens far above the model's 256 positions: each episode stops at the context
    instead of failing mid-training."""
    from posttrain.train.episodes import environment_of, play

    model, tokenizer, _ = tiny
    ev = eval_from_dict(eval_spec(rows(8)))
    jobs = [(item, ev.request_for(item)) for item in ev.items]
    rollouts, _ = play(model, tokenizer, ev, jobs, environment_of(ev), temperature=1.0,
                       turn_tokens=200, episode_tokens=100_000)
    for rollout in rollouts:
        assert len(rollout.prompt_ids) + len(rollout.completion_ids) < 256


def test_a_flood_from_the_environment_is_cut_to_the_budget(tiny: tuple[Any, Any, Path]) -> None:
    """A 4-million-character reply: what the policy sees and trains over stays within the
    episode's budget; the transcript the grader reads keeps the whole message."""
    from posttrain.train.episodes import play

    model, tokenizer, _ = tiny
    ev = eval_from_dict({**eval_spec(rows(4)), "solver": "tests.test_rft_faults:flood"})
    jobs = [(item, ev.request_for(item)) for item in ev.items]
    rollouts, _ = play(model, tokenizer, ev, jobs, FloodEnv, temperature=1.0, turn_tokens=12,
                       episode_tokens=64)
    flooded = 0
    for rollout in rollouts:
        assert len(rollout.completion_ids) <= 64 and len(rollout.env_mask) <= 64
        users = [m for m in rollout.completion.transcript[1:] if m["role"] == "user"]
        if users:
            flooded += 1
            assert len(users[0]["content"]) == HUGE
            assert rollout.budget_hit
    assert flooded  # the untrained model never answers right: every episode is flooded


def test_capped_cuts_only_environment_messages_after_the_prompt() -> None:
    from posttrain.train.episodes import capped

    long = "y" * 50
    messages = [{"role": "user", "content": long}, {"role": "assistant", "content": long},
                {"role": "tool", "content": long, "tool_call_id": "1"},
                {"role": "user", "content": "short"}]
    out = capped(messages, 1, 10)
    assert out[0]["content"] == long and out[1]["content"] == long
    assert out[2]["content"].startswith("y" * 10 + "\n[... 40 more characters cut")
    assert out[2]["tool_call_id"] == "1" and out[3]["content"] == "short"
    assert messages[2]["content"] == long  # the episode's own messages are not changed


# ---- rewards that are never scored ------------------------------------------------------------------
def test_steps_with_no_scored_reward_stop_training() -> None:
    """No reward scored in the first 3 GRPO steps (all of a shorter run): training stops. Once
    one is scored, an all-unscored step is skipped and counted, not fatal (a flaky judge)."""
    from posttrain.train.episodes import EpisodeReward, _completion_record
    from posttrain.train.reward import EvalReward, NoScoredReward

    ev = eval_from_dict(eval_spec(rows(4)))
    item = ev.items[0]
    unreadable = json.dumps({"item_id": item.id,
                             "completion": _completion_record(Completion(text="x"))})
    solved = json.dumps({"item_id": item.id, "completion": _completion_record(
        Completion(text="x", meta={"solved": True, "first_try": True}))})
    state = type("State", (), {"global_step": 0, "max_steps": 200})()
    reward = EpisodeReward(ev, {item.id: item})
    for _ in range(2):
        assert reward(None, [None, None], episode=[unreadable] * 2, trainer_state=state) == \
            [None, None]
    with pytest.raises(NoScoredReward, match="none of the 6 rewards of the first 3 GRPO steps"):
        reward(None, [None, None], episode=[unreadable] * 2, trainer_state=state)
    assert reward.stats["unscored"] == 6
    short = type("State", (), {"global_step": 0, "max_steps": 1})()
    with pytest.raises(NoScoredReward, match="of the first 1 GRPO steps"):
        EpisodeReward(ev, {item.id: item})(None, [None], episode=[unreadable],
                                           trainer_state=short)
    # one scored reward early on: later all-unscored steps go on
    flaky = EpisodeReward(ev, {item.id: item})
    assert flaky(None, [None, None], episode=[unreadable, solved]) == [None, 1.0]
    for _ in range(5):
        assert flaky(None, [None], episode=[unreadable]) == [None]
    # single-turn: a grader that reads what only a solver's sample has
    single = eval_from_dict({**eval_spec(rows(4)), "solver": None})
    plain = EvalReward(single)
    with pytest.raises(NoScoredReward, match="the grader said"):
        for _ in range(3):
            plain([[{"role": "user", "content": "q"}]] * 2, ["3", "4"],
                  item_json=[json.dumps(i.data) for i in single.items[:2]])


def test_a_killed_training_process_reads_as_died(tmp_path: Path) -> None:
    from posttrain.runner import train_jobs
    from posttrain.runner.store import Store

    store = tmp_path / "s.db"
    started = subprocess.run([sys.executable, "-c", (
        "import sys; from posttrain.runner.store import Store; "
        "from posttrain.runner import train_jobs; "
        f"s = Store({str(store)!r}); print(train_jobs.start_job(s, kind='rft', model='m', "
        "eval_name='e', out_dir='o', config={}))")], capture_output=True, text=True, check=True)
    job_id = started.stdout.strip()
    with Store(store) as db:
        mine = train_jobs.start_job(db, kind="rft", model="m", eval_name="e", out_dir="o",
                                    config={})
        statuses = {job["id"]: job["status"] for job in train_jobs.list_jobs(db)}
        assert statuses == {job_id: "died", mine: "running"}
        listed = _cli("train", "jobs", "--store", str(store))
        assert listed.returncode == 0, listed.stderr
        lines = listed.stdout.splitlines()
        assert len(lines) == 2 and any(line.startswith(f"{job_id}  died ") for line in lines)
        assert json.loads(_cli("train", "jobs", "--store", str(store), "--json").stdout)[0][
            "status"] in ("died", "running")
        assert train_jobs.get_job(db, job_id)["status"] == "died"  # type: ignore[index]
        # a job on another host cannot be checked from here: it stays running
        db.conn.execute("UPDATE train_jobs SET config = json_set(config, '$._process.host', "
                        "'elsewhere') WHERE id = ?", (job_id,))
        db.conn.commit()
        assert train_jobs.get_job(db, job_id)["status"] == "running"  # type: ignore[index]
        train_jobs.finish_job(db, mine, status="finished")
        assert train_jobs.get_job(db, mine)["status"] == "finished"  # type: ignore[index]


# ---- training (slow) --------------------------------------------------------------------------------
@pytest.mark.slow
def test_graders_that_cannot_grade_the_answers_refuse_before_training(
        tiny: tuple[Any, Any, Path], tmp_path: Path) -> None:
    """Single-turn RFT on an eval whose graders read sample.meta (only a solver's samples have
    it): every baseline grade is unscored, so training is refused and no model is saved."""
    _, _, folder = tiny
    path = _write(tmp_path, {**eval_spec(rows(30)), "solver": None})
    out = _cli("train", "rft", "--eval", str(path), "--model", f"hf:{folder}", "-o",
               str(tmp_path / "o"), "--store", str(tmp_path / "s.db"), "--steps", "2",
               "--heldout", "6", "--validation", "0", "--group-size", "2",
               "--prompts-per-step", "2")
    assert out.returncode == 2, out.stderr[-2000:]
    assert "Traceback" not in out.stderr
    assert "none of the 6 held-out items got a scored grade" in out.stderr
    assert not (tmp_path / "o" / "posttrain_train.json").exists()


@pytest.mark.slow
def test_no_scored_reward_mid_training_saves_nothing(tiny: tuple[Any, Any, Path],
                                                    tmp_path: Path) -> None:
    from posttrain.eval import load_eval
    from posttrain.train.reward import NoScoredReward
    from posttrain.train.rft import RFTConfig, split_items, train_rft

    _, _, folder = tiny
    ev = load_eval(_write(tmp_path, {**eval_spec(rows(30)), "solver": None}))
    config = RFTConfig(steps=3, num_generations=2, prompts_per_step=2, heldout=6,
                       validation=0, max_completion_length=8)
    split = split_items(ev.items, config.heldout, config.validation, config.seed)
    out = tmp_path / "o"
    with pytest.raises(NoScoredReward, match="of the first 3 GRPO steps"):
        train_rft(f"hf:{folder}", ev, out, split, config, quiet=True)
    assert not (out / "posttrain_train.json").exists() and not (out / ".trl").exists()


def _wait_for_step(store: Path, proc: subprocess.Popen[str], seconds: float = 300) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        try:
            with sqlite3.connect(store) as conn:
                if conn.execute("SELECT COUNT(*) FROM train_log WHERE entry LIKE '%reward%'"
                                ).fetchone()[0]:
                    return
        except sqlite3.OperationalError:
            pass
        time.sleep(0.3)
    raise AssertionError("no GRPO step logged in time")


@pytest.mark.slow
@pytest.mark.parametrize("how", ["SIGINT", "SIGTERM", "SIGTERM in background", "SIGKILL"])
def test_stopping_a_training_run(tiny: tuple[Any, Any, Path], tmp_path: Path, how: str) -> None:
    """Ctrl-C or SIGTERM after a step: the policy so far is saved and marked interrupted, one
    line, exit 130, the job `interrupted` (SIGTERM too where SIGINT is ignored, as in a script's
    background job); SIGKILL: the job reads `died`."""
    from posttrain.runner import train_jobs
    from posttrain.runner.store import Store

    _, _, folder = tiny
    path = _write(tmp_path, eval_spec(rows(40)))
    store, out = tmp_path / "s.db", tmp_path / "o"
    proc = subprocess.Popen(
        [sys.executable, "-m", "posttrain.cli", "train", "rft", "--eval", str(path), "--model",
         f"hf:{folder}", "-o", str(out), "--store", str(store), "--steps", "500",
         "--heldout", "6", "--validation", "4", "--eval-every", "1", "--group-size", "2",
         "--prompts-per-step", "2", "--max-tokens", "12", "--episode-tokens", "32"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=(lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
        if how.endswith("background") else None)
    try:
        _wait_for_step(store, proc)
        proc.send_signal(getattr(signal, how.split()[0]))
        _, stderr = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
    with Store(store) as db:
        (job,) = train_jobs.list_jobs(db)
    if how == "SIGKILL":
        assert job["status"] == "died"
        return
    assert proc.returncode == 130, stderr[-3000:]
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr
    assert "never retrieved" not in stderr
    assert re.search(rf"interrupted after \d+ of 500 GRPO steps: .* is saved in {out} ",
                     stderr), stderr[-2000:]
    meta = json.loads((out / "posttrain_train.json").read_text())
    assert meta["interrupted"] is True and meta["steps"] >= 1
    assert not (out / ".trl").exists() and not out.with_name("o.best").exists()
    assert job["status"] == "interrupted"
    with Store(store) as db:
        result = train_jobs.get_job(db, job["id"])["result"]  # type: ignore[index]
    assert result["saved"] == str(out) and result["steps"] == meta["steps"]


@pytest.mark.slow
def test_held_out_samples_not_scored_are_counted_in_the_report(tiny: tuple[Any, Any, Path],
                                                              tmp_path: Path) -> None:
    """A score grader whose reference is missing for every 4th item: those held-out grades are
    unscored, counted 0 in both means, and the report says how many (it said nothing)."""
    from posttrain.eval import load_eval
    from posttrain.train.loop import rft_with_report
    from posttrain.train.rft import RFTConfig

    _, _, folder = tiny
    data = [{**row, **({"flag": "true"} if index % 4 else {})}
            for index, row in enumerate(rows(40), start=1)]
    spec = eval_spec(data)
    spec["graders"][0]["reference"] = "{{item.flag}}"
    ev = load_eval(_write(tmp_path, spec))
    config = RFTConfig(steps=2, num_generations=2, prompts_per_step=2, heldout=12,
                       validation=0, max_completion_length=12, episode_tokens=32)
    report = rft_with_report(f"hf:{folder}", ev, tmp_path / "o", config, quiet=True,
                             store=tmp_path / "s.db")
    missing = report["baseline"]["not_scored"]
    assert missing > 0 and report["after"]["not_scored"] == missing
    assert f"not scored on held-out (a grader's problem; counted 0 in both means): before " \
           f"{missing} of 12 items, after {missing}" in report["text"]


@pytest.mark.parametrize(("flags", "field"), [
    (["--group-size", "1"], "--group-size"), (["--group-size", "0"], "--group-size"),
    (["--eval-every", "0"], "--eval-every"), (["--prompts-per-step", "0"], "--prompts-per-step"),
    (["--episode-tokens", "0"], "--episode-tokens"), (["--episode-tokens", "-5"],
                                                       "--episode-tokens"),
    (["--max-tokens", "0"], "--max-tokens"), (["--temperature", "0"], "--temperature"),
    (["--temperature", "-1"], "--temperature"), (["--kl", "-1"], "--kl"),
    (["--heldout", "0"], "--heldout"), (["--heldout", "2.5"], "--heldout"),
    (["--validation", "-1"], "--validation"), (["--fault-rate", "0.5"], "--fault-rate"),
])
def test_grpo_settings_are_refused_before_anything_loads(tmp_path: Path, flags: list[str],
                                                         field: str) -> None:
    """Each was a traceback after the baseline (TRL's own checks) or taken silently (a negative
    KL penalty, a sampling temperature of 0): now one line naming the flag, exit 2, before the
    eval or the model is read (neither exists here)."""
    out = _cli("train", "rft", "--eval", str(tmp_path / "missing.yaml"), "--model",
               "hf:/nonexistent", "-o", str(tmp_path / "o"), *flags)
    assert out.returncode == 2, out.stderr
    assert out.stderr.startswith(f"posttrain: error: {field}: "), out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_a_finished_model_is_not_overwritten_without_asking(tmp_path: Path) -> None:
    out_dir = tmp_path / "o"
    out_dir.mkdir()
    (out_dir / "posttrain_train.json").write_text(json.dumps({"kind": "rft", "steps": 80}))
    base = ["--eval", str(tmp_path / "missing.yaml"), "--model", "hf:/nonexistent", "-o",
            str(out_dir)]
    for kind in (["rft"], ["sft", "--data", str(tmp_path / "d.jsonl")]):
        refused = _cli("train", *kind, *base[2:] if kind[0] == "sft" else base)
        assert refused.returncode == 2 and "already holds a trained model" in refused.stderr
        assert "--overwrite" in refused.stderr
    # with --overwrite, or over an interrupted run's policy, the next check speaks instead
    allowed = _cli("train", "rft", *base, "--overwrite")
    assert allowed.returncode == 2 and "already holds" not in allowed.stderr
    (out_dir / "posttrain_train.json").write_text(json.dumps({"interrupted": True}))
    allowed = _cli("train", "rft", *base)
    assert allowed.returncode == 2 and "already holds" not in allowed.stderr


def test_the_interrupt_line_starts_on_its_own_line_after_the_trainers_progress_bar(
        tmp_path, monkeypatch, capsys) -> None:
    """Ctrl-C in the middle of a training step leaves tqdm's bar without a newline: the bar is
    closed first, so the line saying what was saved is a line of its own."""
    pytest.importorskip("transformers")  # training is posttrain[train]
    tqdm = pytest.importorskip("tqdm")

    from posttrain.cli import main
    from posttrain.cli import train as train_cli

    def interrupted_mid_step(_args: Any) -> dict[str, Any]:
        bar = tqdm.tqdm(total=10, file=sys.stderr, ncols=60)
        bar.update(3)
        raise KeyboardInterrupt

    monkeypatch.setattr(train_cli, "_train", interrupted_mid_step)
    path = _write(tmp_path, eval_spec(rows(8)))
    code = main(["train", "rft", "--eval", str(path), "--model", "hf:nowhere",
                 "-o", str(tmp_path / "o"), "--store", str(tmp_path / "s.db")])
    err = capsys.readouterr().err
    assert code == 130
    line = next(line for line in err.split("\n") if "interrupted" in line)
    assert line.startswith("interrupted"), repr(err[-300:])
