"""Each trainer runs a few real TRL steps on the tiny model; checkpoints load back (slow)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from posttrain.eval import load_eval
from posttrain.train import quicktask

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    pytest.importorskip("trl")  # posttrain[train]
    from posttrain.train.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny") / "model", task=None, seed=0)


@pytest.fixture(scope="module")
def add_eval(tmp_path_factory):
    rows = quicktask.all_items()[::10]
    return load_eval(quicktask.write_eval(tmp_path_factory.mktemp("ev"), rows, name="add"))


def _loads(path: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    text = tokenizer.apply_chat_template([{"role": "user", "content": "What is 1 + 2?"}],
                                         tokenize=False, add_generation_prompt=True)
    assert text.endswith("<|im_start|>assistant\n")
    assert model.config.model_type == "qwen2"


def test_tiny_model_is_a_plain_hf_folder(tiny: Path) -> None:
    from transformers import AutoTokenizer

    _loads(tiny)
    tokenizer = AutoTokenizer.from_pretrained(tiny)
    assert 900 <= len(tokenizer) <= 1004
    ids = tokenizer("What is 12 + 7?")["input_ids"]
    assert tokenizer.decode(ids) == "What is 12 + 7?"
    digits = [tokenizer.convert_ids_to_tokens(i) for i in tokenizer("12345")["input_ids"]]
    assert digits == list("12345")  # digits split one by one
    assert json.loads((tiny / "posttrain_tiny.json").read_text())["parameters"] < 2_000_000


def test_sft_few_steps_loads_back(tiny: Path, tmp_path: Path) -> None:
    from posttrain.train.sft import train_sft

    rows = quicktask.pretrain_rows(count=32)
    summary = train_sft(str(tiny), rows, tmp_path / "sft", max_steps=3, batch_size=8,
                        learning_rate=1e-3, quiet=True)
    assert summary["steps"] == 3
    _loads(tmp_path / "sft")


def test_sft_lora_is_merged_on_save(tiny: Path, tmp_path: Path) -> None:
    from posttrain.train.sft import train_sft

    rows = quicktask.pretrain_rows(count=16)
    train_sft(str(tiny), rows, tmp_path / "lora", max_steps=2, batch_size=8, lora_rank=4,
              quiet=True)
    assert not (tmp_path / "lora" / "adapter_config.json").exists()
    _loads(tmp_path / "lora")


def test_dpo_few_steps_loads_back(tiny: Path, tmp_path: Path) -> None:
    from posttrain.train.dpo import train_dpo

    pairs = [{"prompt": r["prompt"], "chosen": quicktask.expected(1, 2),
              "rejected": "The answer is 3."} for r in quicktask.pretrain_rows(count=8)]
    summary = train_dpo(str(tiny), pairs, tmp_path / "dpo", max_steps=2, batch_size=4, quiet=True)
    assert summary["steps"] == 2 and summary["loss_type"] == ["sigmoid", "sft"]
    _loads(tmp_path / "dpo")


def test_rft_reward_equals_grader_and_checkpoint_loads(tiny: Path, tmp_path: Path,
                                                      add_eval) -> None:
    from posttrain.train import reward as reward_module
    from posttrain.train.rft import RFTConfig, split_items, train_rft
    from posttrain.types import Completion

    seen: list[tuple[str, dict, float]] = []
    original = reward_module.EvalReward.__call__

    def spy(self, prompts, completions, **columns):
        values = original(self, prompts, completions, **columns)
        seen.extend(self.last)
        return values

    reward_module.EvalReward.__call__ = spy
    try:
        split = split_items(add_eval.items, 10, 8, seed=0)
        config = RFTConfig(steps=3, num_generations=4, prompts_per_step=2, eval_every=2,
                           max_completion_length=12)
        result = train_rft(str(tiny), add_eval, tmp_path / "rft", split, config, quiet=True)
    finally:
        reward_module.EvalReward.__call__ = original
    assert result.steps == 3 and len(seen) == 3 * 4 * 2
    grader = add_eval.graders[0]
    for text, item, value in seen:  # what the trainer saw == what the grader gives
        assert value == grader.grade(Completion(text=text).to_sample(), item).value
    assert [h["step"] for h in result.history if "validation" in h][:2] == [0, 2]
    meta = json.loads((tmp_path / "rft" / "posttrain_train.json").read_text())
    assert meta["best_step"] == result.best_step
    _loads(tmp_path / "rft")


def test_cli_train_sft_from_file(tiny: Path, tmp_path: Path) -> None:
    from posttrain.cli.train import main

    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps({"messages": r["prompt"] + r["completion"]}) + "\n"
                            for r in quicktask.pretrain_rows(count=8)))
    assert main(["train", "sft", "--model", f"hf:{tiny}", "--data", str(data), "-o",
                 str(tmp_path / "out"), "--steps", "2", "--batch-size", "4", "--quiet"]) == 0
    _loads(tmp_path / "out")


def test_cli_train_rft_json(tiny: Path, tmp_path: Path, add_eval, capsys) -> None:
    from posttrain.cli.train import main

    plot = tmp_path / "rewards.svg"
    assert main(["train", "rft", "--model", f"hf:{tiny}", "--eval", str(add_eval.source),
                 "-o", str(tmp_path / "rft"), "--steps", "2", "--group-size", "4",
                 "--prompts-per-step", "2", "--max-tokens", "8", "--heldout", "10",
                 "--validation", "6", "--eval-every", "1", "--json", "--plot", str(plot),
                 "--store", str(tmp_path / "s.db")]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["baseline"]["n"] == report["after"]["n"] == 10
    assert [run["n"] for run in report["runs"]] == [10, 10]  # before and after, stored
    assert report["train_prompts"] == len(add_eval.items) - 16 and report["steps"] == 2
    assert "p_value" in report and plot.read_text().startswith("<svg")
    _loads(tmp_path / "rft")
    # the job is in the store: each logged step as the trainer wrote it, and the outcome
    from posttrain.runner import train_jobs
    from posttrain.runner.store import Store

    with Store(tmp_path / "s.db") as db:
        (listed,) = train_jobs.list_jobs(db)
        job = train_jobs.get_job(db, report["job"])
    assert listed["id"] == report["job"] and job["status"] == "finished"
    assert job["log"] == report["history"] and job["config"]["steps"] == 2
    assert job["result"]["runs"] == [run["run_id"] for run in report["runs"]]
    assert job["result"]["after"] == report["after"]["score"]
