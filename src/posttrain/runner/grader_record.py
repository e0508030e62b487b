"""Which grader spec gave a run's grades: what a regrade compares, and what ``audit`` groups by.

A grade that changes when a run is re-graded changed for one of three reasons: the item was
edited (``item_changed``), the grader was edited (its spec is not the one that gave the old
grade: ``grader_changed``), or neither (the same grader gave the same answer of the same item
another grade: a fragile grader or judge, what ``audit`` reports). ``score_history`` keeps
the first two per grade; this module says, for a run and a grader, which spec gave its current
grades.

A run's config records it in ``graded_with`` (grader name -> the digest of its spec, None
where it is not known: a re-grade of some items only with an edited spec leaves the run's
grades of that grader from two specs, and a re-grade that stopped part way leaves them so
until it ends). Runs written before ``graded_with`` existed: their ``graders`` (the specs the
run was created with) hold while the run was never re-graded; once re-graded (history rows
kept without ``grader_changed``) nothing is known.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson

#: a run whose grading is not known: it is compared with no other run
UNKNOWN = None
#: ``score_history.grader_changed`` of an import's grades replaced by posttrain's grader (another
#: implementation's grades, not an edited spec: 1)
IMPORTED = 2


def spec_digest(spec: Mapping[str, Any]) -> str:
    """A short digest of one grader's spec (its keys in sorted order)."""
    return _digest(orjson.dumps(spec, option=orjson.OPT_SORT_KEYS, default=str))


def spec_name(spec: Mapping[str, Any]) -> str:
    return str(spec.get("name") or spec.get("type"))


def eval_digests(eval_: Any) -> dict[str, str]:
    """Grader name -> the digest of what its grades depend on besides the answer and the item
    (``eval_``: a ``posttrain.eval.Eval``): its spec, the eval's reasoning mode (what
    ``output_text`` holds) and ``response_format`` (whether ``output_json`` is parsed), and
    the code that grades (:func:`own_code`, :func:`code_digests`). What a run records in
    ``graded_with``; a run whose graders are deterministic and keep these digests gives
    unchanged answers of unchanged items the same grades (``posttrain regrade`` grades only
    the others). Runs recorded before only have their specs' digests (:func:`digests`), which
    never equal these: taken as changed."""
    context = [own_code(), eval_.reasoning, eval_.response_format]
    # keyed by each grader's own name (a spec's `name: ""` is a name, not its type's)
    return {grader.name: _digest(orjson.dumps([spec, *context, *code_digests(grader)],
                                              option=orjson.OPT_SORT_KEYS, default=str))
            for grader, spec in zip(eval_.graders, eval_.grader_specs, strict=False)}


def code_digests(grader: Any) -> list[str]:
    """What a grader's grades depend on that its spec only names (empty for posttrain's own
    graders with inline specs): the code a python grader's ``source_file`` holds, the source
    file of a plugin grader's module (its code can change under the same spec), and the
    versions of the metric libraries it calls (``libraries()``: distribution names)."""
    parts: list[str] = []
    for part in grader.walk():
        source = getattr(part, "source", None)
        if getattr(part, "source_file", None) and isinstance(source, str):
            parts.append("source:" + _digest(source.encode()))
        module = type(part).__module__
        if not module.startswith("posttrain."):
            parts.append(f"module:{module}:{_module_digest(module)}")
        libraries = getattr(part, "libraries", None)
        if callable(libraries):
            parts.extend(f"library:{name}:{_library_version(name)}" for name in libraries())
    return parts


#: the package whose sources :func:`own_code` digests: a grader is posttrain's own code when
#: both its class and the builder that made it from its spec live there
OWN_GRADERS = "posttrain.graders."


def own_deterministic(grader: Any) -> bool:
    """Whether every part of ``grader`` (``walk()``) is deterministic and posttrain's own code,
    digested in :func:`own_code`: its class and the builder registered for its spec's type
    (``built_by``) are in ``posttrain.graders``. Only such grades are copied by a cached rerun
    or kept by a regrade: a plugin's code (its builder, its class, a helper module it calls,
    a class defined where no source file can be read) and a grader built in Python without a
    spec can change with no trace in the run."""
    return all(part.deterministic and type(part).__module__.startswith(OWN_GRADERS)
               and (getattr(part, "built_by", None) or "").startswith(OWN_GRADERS)
               for part in grader.walk())


@functools.cache
def own_code() -> str:
    """posttrain's version, the Python and Unicode versions, and a digest of the source of
    the modules a grade comes from (the graders, templates, reasoning split, the eval's sample
    building): a grade made by other code (an upgrade, an edited checkout) is not taken for
    one these graders give. Read once per process (a few ms: some 30 files)."""
    import sys
    import unicodedata
    from pathlib import Path

    import posttrain

    root = Path(posttrain.__file__).parent
    files = sorted([*root.glob("graders/*.py"), *root.glob("eval/*.py"),
                    *(root / name for name in ("template.py", "reasoning.py", "types.py"))])
    h = hashlib.blake2b(digest_size=8)
    for path in files:
        h.update(path.relative_to(root).as_posix().encode() + b"\0")
        try:
            h.update(path.read_bytes())
        except OSError:
            h.update(b"unread")
    return (f"{posttrain.__version__}:py{sys.version_info[0]}.{sys.version_info[1]}:"
            f"unicode{unicodedata.unidata_version}:{h.hexdigest()}")


def _library_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "absent"


def _digest(body: bytes) -> str:
    return hashlib.blake2b(body, digest_size=8).hexdigest()


def _module_digest(module: str) -> str:
    """The digest of a module's source file ("unread" when it has none this process can read:
    its grades then compare as made by one code)."""
    import sys

    path = getattr(sys.modules.get(module), "__file__", None)
    try:
        with open(path, "rb") as handle:  # type: ignore[arg-type]
            return _digest(handle.read())
    except (OSError, TypeError):
        return "unread"


def digests(specs: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """Grader name -> the digest of its spec (a repeated name: the last, as the store keeps
    one grade per name)."""
    return {spec_name(spec): spec_digest(spec) for spec in specs if isinstance(spec, Mapping)}


def graded_with(config: Mapping[str, Any], *, regraded_unrecorded: bool
                ) -> dict[str, str | None] | None:
    """Grader name -> the digest of the spec that gave the run's current grades of it (None:
    not known). None when the run records no graders at all (a run stored without them: its
    grades are taken as given by whatever spec runs alike were). ``regraded_unrecorded``: the
    run has history rows written before the grader was recorded (a re-grade by an older
    version): the specs the run was created with may no longer be those of its grades."""
    recorded = config.get("graded_with")
    if isinstance(recorded, dict):
        return {str(name): None if digest is None else str(digest)
                for name, digest in recorded.items()}
    specs = config.get("graders")
    if regraded_unrecorded:
        names = config.get("grader_names") or [spec_name(s) for s in specs or ()
                                               if isinstance(s, Mapping)]
        return {str(name): None for name in names}
    if not isinstance(specs, list) or not specs:
        return None
    return dict(digests(specs))


def changed_flags(before: dict[str, str | None] | None, after: Mapping[str, str],
                  imported: bool = False) -> dict[str, int | None]:
    """Per grader of the run's old grades: 1 when the spec that gave them differs from the one
    grading now (or the grader is gone), 0 when it is the same, None when not known.
    ``imported``: the old grades were given elsewhere (an import's: another implementation),
    :data:`IMPORTED` for every grader."""
    names = set(after) | set(before or {})
    if imported:
        return dict.fromkeys(names, IMPORTED)
    if before is None:
        return dict.fromkeys(names)
    out: dict[str, int | None] = {}
    for name in names:
        old = before.get(name)
        new = after.get(name)
        if new is None:
            out[name] = 1  # no longer graded: its old grades were another grader's
        elif name not in before:
            out[name] = 1
        elif old is None:
            out[name] = None
        else:
            out[name] = int(old != new)
    return out


def grading_key(recorded: Mapping[str, str | None] | None, names: Sequence[str],
                primary: str | None, run_id: str) -> str:
    """What a run's headline grade of an answer depends on: the specs of ``primary`` (or of
    every grader in ``names``), as one key; runs with the same key graded an answer alike.
    A run whose spec of one of them is not known gets a key of its own (``run_id``'s); a run
    that records no graders the key of every such run."""
    if recorded is None:
        return "unrecorded"
    wanted = [primary] if primary else list(names or recorded)
    parts = []
    for name in wanted:
        digest = recorded.get(name)
        if digest is None:
            return f"run:{run_id}"
        parts.append(f"{name}={digest}")
    return "|".join(parts)
