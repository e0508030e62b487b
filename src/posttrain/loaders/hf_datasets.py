"""``dataset: hf://OWNER/NAME?split=test&config=NAME&revision=REV`` in an eval file: the rows of
a Hugging Face dataset, read with ``datasets``.

``hf://OWNER/NAME`` is a dataset on the Hub, read through the ``datasets`` cache: once cached it
loads with the Hub off (``HF_HUB_OFFLINE=1`` / ``HF_DATASETS_OFFLINE=1``), and one that is not
cached while the Hub is off is one line saying so. ``hf://./FOLDER`` (or ``hf:///abs/FOLDER``) is
a dataset folder on this machine, relative to the eval file: one written by ``save_to_disk``,
or data files with a dataset card (``posttrain export hf`` writes those). ``split`` is required
when the dataset has more than one; ``config`` names a configuration; ``revision`` pins a Hub
commit. Rows are numbered from 1 in error messages. Needs the ``datasets`` package
(``pip install 'posttrain[hf]'``).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from posttrain.errors import UserError, did_you_mean

PREFIX = "hf://"
OPTIONS = ("split", "config", "revision")
#: the column ``posttrain export hf`` writes each row into whole, as its exact JSON text: Arrow's
#: typed columns change values (ints among floats read back as floats, big ints lose digits,
#: fields some rows lack come back as null); a dataset with this column is read from it
ROW_COLUMN = "posttrain_row"


def parse(uri: str, *, file: Any = None) -> tuple[str, dict[str, str], bool]:
    """(path or hub id, options, local) of an ``hf://`` dataset reference."""
    parts = urlsplit(uri)
    target = uri[len(PREFIX):].split("?", 1)[0]
    options: dict[str, str] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key not in OPTIONS:
            raise UserError(f"{uri}: unknown option {key!r}" + did_you_mean(key, OPTIONS)
                            + f" (hf:// takes {', '.join(OPTIONS)})", file=file,
                            field="dataset")
        options[key] = value
    if not target:
        raise UserError(f"{uri}: name a dataset: hf://OWNER/NAME or hf://./FOLDER", file=file,
                        field="dataset")
    local = target.startswith(("./", "../", "/", "~"))
    return target, options, local


def _to_plain(value: Any) -> Any:
    """A row value as JSON would hold it (Arrow scalars, dates and bytes made plain)."""
    if isinstance(value, dict):
        return {k: _to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_plain(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return json.loads(json.dumps(value, default=str))


def have_datasets() -> bool:
    return importlib.util.find_spec("datasets") is not None


def load_rows(uri: str, base_dir: Path, *, file: Any = None) -> tuple[
        list[tuple[int, dict[str, Any]]], str]:
    """(rows numbered from 1, a description of where they came from)."""
    if not have_datasets():
        raise UserError(f"{uri}: hf:// datasets need the optional package 'datasets': "
                        "pip install 'posttrain[hf]'", file=file, field="dataset")
    target, options, local = parse(uri, file=file)
    import datasets

    split, config, revision = options.get("split"), options.get("config"), options.get("revision")
    bars = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()  # an eval's load prints its own lines, not datasets' bars
    try:
        if local:
            folder = (base_dir / Path(target).expanduser()).resolve()
            if not folder.is_dir():
                raise UserError(f"{uri}: no such dataset folder: {folder}", file=file,
                                field="dataset")
            if revision is not None:  # never silently ignored
                raise UserError(f"{uri}: revision= pins a commit on the Hub; a local folder "
                                "has none (drop it, or read hf://OWNER/NAME)", file=file,
                                field="dataset")
            saved = (folder / "state.json").exists() or (folder / "dataset_dict.json").exists()
            if saved and config is not None:
                raise UserError(f"{uri}: config= names a configuration of data files; a "
                                "save_to_disk folder has one (drop config=)", file=file,
                                field="dataset")
            if saved:
                loaded = datasets.load_from_disk(str(folder))
            else:
                # built afresh each time, outside the shared datasets cache: with the Hub off,
                # datasets 5.2 served a cached build of another folder of the same name
                import tempfile

                with tempfile.TemporaryDirectory(prefix="posttrain-hf-") as cache:
                    loaded = datasets.load_dataset(str(folder), name=config, cache_dir=cache,
                                                   keep_in_memory=True)
            where = str(folder)
        else:
            loaded = datasets.load_dataset(target, name=config, revision=revision)
            where = f"{target}" + (f"@{revision}" if revision else "")
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - datasets raises many kinds: one line, named
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if not local and ("offline" in message.lower() or "connect" in message.lower()
                          or "couldn't reach" in message.lower()):
            message += (" (not in the local datasets cache and the Hub is off or unreachable: "
                        "load it once where there is a network)")
        raise UserError(f"{uri}: {message}", file=file, field="dataset") from None
    finally:
        if bars:
            datasets.enable_progress_bars()
    if isinstance(loaded, (datasets.DatasetDict, dict)):
        names = list(loaded.keys())
        if split is None:
            if len(names) != 1:
                raise UserError(f"{uri}: name a split: ?split=NAME (splits: "
                                f"{', '.join(names)})", file=file, field="dataset")
            split = names[0]
        if split not in loaded:
            raise UserError(f"{uri}: no split {split!r}" + did_you_mean(split, names)
                            + f" (splits: {', '.join(names)})", file=file, field="dataset")
        table = loaded[split]
    else:
        table = loaded
    names = getattr(table, "column_names", None) or []
    if ROW_COLUMN in names:
        rows = _exact_rows(table, uri, file)
    else:
        rows = [(index + 1, _to_plain(dict(row))) for index, row in enumerate(table)]
    return rows, f"{where} [{split or 'train'}]"


def _exact_rows(table: Any, uri: str, file: Any) -> list[tuple[int, dict[str, Any]]]:
    """The rows as ``posttrain export hf`` wrote them, from their exact JSON text."""
    from posttrain.loaders.datasets import exact_json

    rows = []
    for index, typed in enumerate(table):
        text = typed.get(ROW_COLUMN)
        try:
            row = exact_json(text) if isinstance(text, str) else None
        except (ValueError, RecursionError):  # JSONDecodeError is a ValueError
            row = None
        if not isinstance(row, dict):
            raise UserError(f"{uri}: row {index + 1}: {ROW_COLUMN} is not a row's JSON object "
                            f"(posttrain export hf writes each row whole there)", file=file,
                            field="dataset")
        for column, value in typed.items():
            if column != ROW_COLUMN and not _alike(_to_plain(value), row.get(column)):
                raise UserError(
                    f"{uri}: row {index + 1}: column {column!r} differs from {ROW_COLUMN} (edited "
                    f"after posttrain export hf?): edit {ROW_COLUMN} the same way, or remove "
                    f"the {ROW_COLUMN} column to read the typed columns", file=file,
                    field="dataset")
        rows.append((index + 1, row))
    return rows


def _alike(typed: Any, exact: Any) -> bool:
    """Whether Arrow's typed copy of a value is the value (an int read back as a float, a big
    int rounded to a float, a field some rows lack read back as null, also inside structs)."""
    if isinstance(typed, dict) and isinstance(exact, dict):
        return all(_alike(typed.get(key), exact.get(key)) for key in {*typed, *exact})
    if isinstance(typed, list) and isinstance(exact, list):
        return len(typed) == len(exact) and all(map(_alike, typed, exact))
    if isinstance(exact, dict) and typed is None:
        return False
    numbers = (int, float)
    if (isinstance(typed, numbers) and isinstance(exact, numbers)
            and not isinstance(typed, bool) and not isinstance(exact, bool)):
        return typed == exact or float(typed) == float(exact)
    return typed == exact
