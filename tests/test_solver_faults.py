"""A solver or environment of one's own that breaks is the eval's own problem, not the model's:
one line naming it and exit 2 (with the answers stored so far kept), never a traceback; the same
for a solver module that does not import and for ``train``'s numeric options."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from posttrain.cli import main
from tests import steer_env
from tests.conftest import StubServer

ENV = '''
from posttrain.environment import Step, episode_solver


class Env:
    max_turns = 3

    def reset(self, item):
        self.item_id = item["id"]
        return []

    def step(self, action):
        if self.item_id == "w1":
            {fault}
        return Step([], done=True, info={{}})


solve = episode_solver(Env)
'''


def _eval(tmp_path: Path, module: str) -> Path:
    """The weather eval with its solver in a module of its own beside it (a name of its own
    per test: an imported module stays in ``sys.modules``)."""
    path = steer_env.write_weather_eval(tmp_path / "ev", n=2)
    name = f"my_env_{abs(hash(str(tmp_path)))}"
    (path.parent / f"{name}.py").write_text(module)
    path.write_text(path.read_text().replace("tests.steer_env:solve", f"{name}:solve"))
    return path


def _run(path: Path, tmp_path: Path) -> int:
    return main(["eval", str(path), "--model", "openai:stub", "--store", str(tmp_path / "s.db"),
                 "--no-progress", "--concurrency", "1"])


@pytest.mark.parametrize("fault,says", [
    ('return "garbage"', "Env.step() must return a Step (observation, done, info), got str"),
    ('raise RuntimeError("env step boom")', "raised RuntimeError: env step boom"),
    # a malformed observation failed inside the chat template and was stored as the model's error
    ('return Step([{"rol": 5}], done=False, info={})',
     "Env.step(): message 0: role must be one of system, user, assistant, tool, got None"),
    ('return Step([{"role": "user", "content": {"x": 1}}], done=False, info={})',
     "Env.step(): message 0: content must be text, got dict"),
    ('return Step("hello", done=False, info={})',
     "Env.step() must give a list of messages, got str"),
])
def test_a_broken_environment_is_one_line_and_keeps_the_answers(
        tmp_path: Path, stub_server: StubServer, monkeypatch, capsys, fault: str,
        says: str) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", stub_server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    path = _eval(tmp_path, ENV.format(fault=fault))
    assert _run(path, tmp_path) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    assert ":solve'" in err[0] and says in err[0] and "item 'w1'" in err[0]
    with sqlite3.connect(tmp_path / "s.db") as conn:  # w0, answered first, is kept
        assert conn.execute("SELECT item_id FROM samples").fetchall() == [("w0",)]


@pytest.mark.parametrize("module,says", [
    ("def solve(:\n", "invalid syntax"),
    ("raise RuntimeError('boom at import')\n", "importing it raised RuntimeError: boom at import"),
])
def test_a_solver_module_that_does_not_import_is_one_line(
        tmp_path: Path, stub_server: StubServer, monkeypatch, capsys, module: str,
        says: str) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", stub_server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    path = _eval(tmp_path, module)
    assert _run(path, tmp_path) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    assert "cannot load solver 'my_env_" in err[0] and says in err[0]


@pytest.mark.parametrize("flag,value,says", [
    ("--steps", "0", "--steps: must be at least 1, got 0"),
    ("--lora", "-4", "--lora: must be at least 1, got -4"),
    ("--lr", "0", "--lr: must be a positive learning rate, got 0"),
])
def test_train_refuses_a_step_count_rank_or_rate_that_cannot_train(
        tmp_path: Path, capsys, flag: str, value: str, says: str) -> None:
    """``--steps 0`` was read as "not given" and trained the default 200 steps."""
    for kind in ("sft", "rft"):
        data = ["--data", str(tmp_path / "none.jsonl")] if kind == "sft" else \
            ["--eval", str(tmp_path / "none.yaml")]
        assert main(["train", kind, *data, "--model", "hf:nowhere", "-o",
                     str(tmp_path / "out"), flag, value]) == 2
        err = capsys.readouterr().err
        assert says in err and "Traceback" not in err
        assert not (tmp_path / "out").exists()
