"""Shared pieces of the trainers: CPU-safe TRL settings, model paths, LoRA, saving."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from posttrain.errors import UserError

#: experiment trackers TRL reports to through transformers, and the packages each needs (any
#: one of them); nothing is reported unless asked (``--report-to``, a job's ``integrations``)
REPORTERS: dict[str, tuple[str, ...]] = {
    "tensorboard": ("tensorboard", "tensorboardX"), "wandb": ("wandb",),
    "mlflow": ("mlflow",), "comet_ml": ("comet_ml",), "clearml": ("clearml",),
    "trackio": ("trackio",),
}
_report_to: ContextVar[tuple[str, ...]] = ContextVar("posttrain_report_to", default=())


def check_report_to(value: str | list[str] | None, *, field: str = "--report-to",
                    file: Any = None) -> tuple[str, ...]:
    """Tracker names (``wandb,tensorboard``) checked: known, and their package installed."""
    import importlib.util

    from posttrain.errors import did_you_mean

    if value is None:
        return ()
    names = [v.strip() for v in (value.split(",") if isinstance(value, str) else value)
             if v.strip()]
    if names in ([], ["none"]):
        return ()
    for name in names:
        if name not in REPORTERS:
            raise UserError(f"unknown tracker {name!r}" + did_you_mean(name, REPORTERS)
                            + f" (known: {', '.join(REPORTERS)}, none)", file=file, field=field)
        if not any(importlib.util.find_spec(p) is not None for p in REPORTERS[name]):
            raise UserError(f"reporting to {name} needs the package {REPORTERS[name][-1]!r}: "
                            f"pip install {REPORTERS[name][-1]}", file=file, field=field)
    return tuple(dict.fromkeys(names))


def integration_trackers(integrations: Any, *, file: Any = None) -> tuple[tuple[str, ...],
                                                                        list[str]]:
    """An OpenAI fine-tuning job's ``integrations`` as (trackers, notes): ``{type: wandb, wandb:
    {project, name, entity, tags}}`` reports to W&B, its settings in the environment variables
    W&B reads (``WANDB_PROJECT``, ``WANDB_NAME``, ``WANDB_ENTITY``, ``WANDB_TAGS``). A job file
    written for OpenAI's hosted training names W&B for OpenAI to call: without the ``wandb``
    package here that is a note, not an error (``--report-to wandb`` asked here is one)."""
    import importlib.util

    trackers: list[str] = []
    notes: list[str] = []
    for entry in integrations or []:
        kind = entry.get("type") if isinstance(entry, dict) else entry
        if kind != "wandb":
            continue  # the job reader warns about the others
        if importlib.util.find_spec("wandb") is None:
            where = f"{file}: " if file is not None else ""
            notes.append(f"{where}integrations: wandb: not reported (the package 'wandb' is "
                         "not installed here: pip install wandb)")
            continue
        settings = (entry.get("wandb") if isinstance(entry, dict) else None) or {}
        for key, env in (("project", "WANDB_PROJECT"), ("name", "WANDB_NAME"),
                         ("entity", "WANDB_ENTITY")):
            if settings.get(key):
                os.environ[env] = str(settings[key])
        if settings.get("tags"):
            os.environ["WANDB_TAGS"] = ",".join(str(t) for t in settings["tags"])
        trackers.append("wandb")
    return (check_report_to(trackers, field="integrations", file=file) if trackers else ()), notes


@contextmanager
def reporting(trackers: tuple[str, ...]) -> Iterator[None]:
    """Trainers started inside report their logs to ``trackers`` (TRL's ``report_to``)."""
    token = _report_to.set(tuple(trackers))
    try:
        yield
    finally:
        _report_to.reset(token)


def model_path(spec: str) -> str:
    """``hf:PATH_OR_REPO`` (or a bare path) -> what ``from_pretrained`` takes: a pulled name
    (``hf:smollm2-135m-instruct``) is its folder, a GGUF (``hf:FILE.gguf``,
    ``hf:FOLDER?gguf=FILE``) is converted once (cached) and its folder returned."""
    if not spec.startswith("hf:") and ":" in spec.split("/")[0] and not Path(spec).exists():
        raise UserError(f"training needs a local Hugging Face model (hf:PATH), got {spec!r}",
                        field="--model")
    from posttrain.models.local import load_path

    return load_path(spec, log=lambda message: print(f"posttrain: {message}", flush=True))


def has_accelerator() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def base_args(out_dir: str | Path, *, seed: int, learning_rate: float, max_steps: int,
              batch_size: int, quiet: bool, logging_steps: int = 10) -> dict[str, Any]:
    """TrainingArguments shared by SFT/DPO/GRPO; on CPU: no bf16, no gradient checkpointing."""
    gpu = has_accelerator()
    return {
        "output_dir": str(out_dir), "seed": seed, "learning_rate": learning_rate,
        "max_steps": max_steps, "per_device_train_batch_size": batch_size,
        "use_cpu": not gpu, "bf16": gpu, "gradient_checkpointing": False,
        "report_to": list(_report_to.get()) or "none", "save_strategy": "no",
        "logging_steps": logging_steps,
        "disable_tqdm": quiet, "dataloader_num_workers": 0, "lr_scheduler_type": "constant",
        "warmup_steps": 0,
    }


def lora_config(rank: int) -> Any:
    from peft import LoraConfig

    return LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.0,
                      target_modules="all-linear", task_type="CAUSAL_LM")


def save_plain(model: Any, tokenizer: Any, out_dir: str | Path, meta: dict[str, Any]) -> Path:
    """Save a folder that loads with ``AutoModelForCausalLM.from_pretrained`` (LoRA merged)."""
    out_dir = Path(out_dir)
    if hasattr(model, "merge_and_unload") and hasattr(model, "peft_config"):
        import copy

        model = copy.deepcopy(model).merge_and_unload()  # the live model keeps its adapters
    tmp = out_dir.with_name(out_dir.name + ".saving")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    (tmp / "posttrain_train.json").write_text(json.dumps(meta, indent=1, default=str))
    if out_dir.exists():
        # keep files the user may have put there (logs, plots) but replace the model files
        for child in tmp.iterdir():
            target = out_dir / child.name
            if target.is_dir():
                shutil.rmtree(target)
            os.replace(child, target)
        shutil.rmtree(tmp)
    else:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        tmp.rename(out_dir)
    return out_dir


def load_tokenizer(path: str) -> Any:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def quiet_libraries() -> None:
    """Keep library chatter (warnings, info logs) out of the CLI's output."""
    import logging
    import warnings

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    for name in ("transformers", "trl", "datasets", "accelerate", "peft"):
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    except ImportError:
        pass
    try:
        import datasets

        datasets.disable_progress_bars()
        datasets.logging.set_verbosity_error()
    except ImportError:
        pass
    warnings.filterwarnings("ignore", category=UserWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)


def train_timed(trainer: Any, *, quiet: bool) -> tuple[Any, float]:
    """``trainer.train()`` (without its console output when quiet); (result, seconds)."""
    import time

    if quiet:
        from transformers.trainer_callback import PrinterCallback, ProgressCallback

        trainer.remove_callback(PrinterCallback)
        trainer.remove_callback(ProgressCallback)
    started = time.perf_counter()
    result = trainer.train()
    return result, time.perf_counter() - started
