"""A run's per-item figures as compare, the matrix and audit read them, from the facts kept in
the store (``posttrain.runner.facts``): the same numbers as ``RunResults``, without reading
every answer."""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Sequence
from typing import Any

import orjson

from posttrain.runner.facts import ensure, unpack
from posttrain.runner.store import RunInfo, Store
from posttrain.types import Item

#: item id lists shared between runs of the same items (one list object, one dict per column)
_SHARED_IDS: dict[bytes, list[str]] = {}


def field_groups(value: Any, by: str) -> list[str]:
    """The groups of an item whose field ``by`` holds ``value`` (``--by FIELD``): one per value
    of a list, else the value; an item without it is in ``(no FIELD)``, never left out."""
    if isinstance(value, list):
        return [str(v) for v in value] if value else [missing_group(by)]
    return [missing_group(by)] if value is None else [str(value)]


def missing_group(by: str) -> str:
    return f"(no {by})"


class RunCells:
    """A run's per-item figures read from the kept facts: what compare, the matrix and audit
    ask of ``RunResults``, without reading its answers."""

    def __init__(self, store: Store, run: RunInfo) -> None:
        self.store = store
        self.tables, self._packed = ensure(store, run)
        self.run = store.get_run(run.id)
        body = self._packed["ids"]
        ids = _SHARED_IDS.get(body)
        if ids is None:
            if len(_SHARED_IDS) >= 32:  # a long-lived viewer reads many evals: keep a few
                _SHARED_IDS.clear()
            ids = _SHARED_IDS[body] = orjson.loads(body)
        self.ids: list[str] = ids
        self._cache: dict[str, Any] = {}

    def _column(self, name: str, *, absent: bool = False) -> dict[str, float]:
        """Item -> value of a packed column (``absent``: NaN marks an item without one)."""
        values = self._cache.get(name)
        if values is None:
            column = unpack("d", self._packed[name])
            if absent:
                values = {i: v for i, v in zip(self.ids, column, strict=True) if v == v}
            else:
                values = dict(zip(self.ids, column, strict=True))
            self._cache[name] = values
        return values

    def packed(self, name: str) -> bytes:
        """One of the run's packed columns (``runner.facts._pack``)."""
        return self._packed[name]

    # ---- the RunResults questions --------------------------------------------------------
    def item_ids(self) -> list[str]:
        return self.ids

    def item_scores(self, *, scored_only: bool = False) -> dict[str, float]:
        return self._column("scored_only", absent=True) if scored_only else self._column("score")

    def item_pass_rates(self) -> dict[str, float]:
        return self._column("pass_rate")

    def _tag_lists(self) -> tuple[list[list[Any]], array[Any]]:
        return ([orjson.loads(text) for text in orjson.loads(self._packed["tags"])],
                unpack("i", self._packed["tag_index"]))

    def tags(self) -> dict[str, list[Any]]:
        """Item -> its tags."""
        lists, index = self._tag_lists()
        return {item_id: lists[k] for item_id, k in zip(self.ids, index, strict=True)}

    def component_scores(self) -> dict[str, dict[str, float]]:
        return {name: self._column(f"component:{name}", absent=True)
                for name in orjson.loads(self._packed["components"])}

    def component_scored(self) -> dict[str, int]:
        return {name: n for name, n in orjson.loads(self._packed["components"]).items() if n}

    def group_names(self, by: str | None) -> Iterable[tuple[str, list[str]]]:
        """(item id, its group names) in the run's order: its tags, or its field ``by``."""
        if by is None:
            for item_id, tags in self.tags().items():
                yield item_id, [str(t) for t in tags]
            return
        for item_id, data in self.store.conn.execute(
                "SELECT item_id, data FROM run_items WHERE run_id = ? ORDER BY position",
                (self.run.id,)):
            yield item_id, field_groups(orjson.loads(data).get(by), by)

    def groups(self, by: str | None) -> dict[str, list[str]]:
        """Group -> its item ids in the run's order (``selection.item_groups`` of this run)."""
        if by is not None:
            return _local_groups(self.group_names(by))
        lists, index = self._tag_lists()
        names_of = [list(dict.fromkeys(str(t) for t in tags)) for tags in lists]
        groups: dict[str, list[str]] = {}
        for item_id, k in zip(self.ids, index, strict=True):
            for name in names_of[k]:
                members = groups.get(name)
                if members is None:
                    groups[name] = [item_id]
                else:
                    members.append(item_id)
        return groups

    def items_of(self, ids: Sequence[str]) -> dict[str, Item]:
        """These items (id, data, tags), read for these ids only."""
        out: dict[str, Item] = {}
        for chunk in _chunks(ids):
            for item_id, tags, data in self.store.conn.execute(
                    "SELECT item_id, tags, data FROM run_items WHERE run_id = ? AND item_id IN "
                    f"({','.join('?' * len(chunk))})", (self.run.id, *chunk)):
                out[item_id] = Item(id=item_id, data=orjson.loads(data), tags=orjson.loads(tags))
        return out

    def answers_of(self, ids: Sequence[str]
                   ) -> dict[str, list[tuple[int, bool, Any, str | None]]]:
        """Item -> its answers (epoch, answered, completion record or None, error), in epoch
        order, read for these items only."""
        out: dict[str, list[tuple[int, bool, Any, str | None]]] = {}
        for chunk in _chunks(ids):
            for item_id, epoch, completion, error in self.store.conn.execute(
                    "SELECT item_id, epoch, completion, error FROM samples WHERE run_id = ? "
                    f"AND item_id IN ({','.join('?' * len(chunk))}) ORDER BY item_id, epoch",
                    (self.run.id, *chunk)):
                out.setdefault(item_id, []).append(
                    (epoch, bool(completion), orjson.loads(completion) if completion else None,
                     error))
        return out


def _local_groups(pairs: Iterable[tuple[str, list[str]]]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for item_id, names in pairs:
        for name in dict.fromkeys(names):
            groups.setdefault(name, []).append(item_id)
    return groups


def _chunks(ids: Sequence[str], size: int = 500) -> Iterable[list[str]]:
    ids = list(ids)
    for start in range(0, len(ids), size):
        yield ids[start:start + size]


def load_cells(store: Store, runs: Sequence[RunInfo]) -> list[RunCells]:
    return [RunCells(store, run) for run in runs]

