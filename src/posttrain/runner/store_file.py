"""A store file checked before it is opened for reading (``Store(reading=True)``, the CLI's reading
commands and the viewer both use it).

:class:`posttrain.runner.store.Store` creates its schema in a file that holds none; a command
that only reads (``store info``, ``runs``, ``report``, ``view``) must not write one into an
empty file it was pointed at by mistake.
"""

from __future__ import annotations

from pathlib import Path

from posttrain.errors import UserError


def refuse_empty_store(path: str | Path) -> None:
    """A UserError (exit 2) when the file at ``path`` holds no database tables at all (an empty
    file, or an empty SQLite database): opening it as a store would write a whole schema into
    it, which a command that only reads must not do. Read with SQLite's read-only mode, so the
    check itself writes nothing; a file it cannot read that way is left to the store to judge
    (its own messages: not a database, another program's, a read-only folder)."""
    import sqlite3
    from urllib.parse import quote

    file = Path(path)
    if not file.is_file():
        return
    if file.stat().st_size == 0 and not file.with_name(file.name + "-wal").exists():
        raise UserError("empty store: the file is empty (0 bytes), not a posttrain store; "
                        "`posttrain eval --store` creates one", file=path)
    try:
        conn = sqlite3.connect(f"file:{quote(str(file.resolve()))}?mode=ro", uri=True)
    except sqlite3.Error:
        return
    try:
        tables = conn.execute("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'"
                              ).fetchone()[0]
    except sqlite3.Error:
        return
    finally:
        conn.close()
    if not tables:
        raise UserError("empty store: an SQLite database with no tables, not a posttrain store; "
                        "`posttrain eval --store` creates one", file=path)
