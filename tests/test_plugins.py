"""One way to plug things in: posttrain's own parts and a third-party package's, by decorator.

The plugin test installs a real distribution (built with setuptools by pip, offline) whose
``posttrain.plugins`` entry point adds a grader type, a model provider, a suite and a command;
a separate process then uses them from YAML and from the command line, with no change here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from posttrain import plugins
from posttrain.errors import UserError

PLUGIN = textwrap.dedent('''
    """posttrain_shout: a tiny posttrain plugin (a grader, a provider, a suite, a command)."""
    from pathlib import Path

    from posttrain.graders.base import Grader
    from posttrain.graders.registry import require
    from posttrain.plugins import (register_command, register_grader, register_provider,
                                   register_suite)
    from posttrain.suites import SuiteInfo, write_eval_file, write_rows
    from posttrain.types import Completion, Score


    class Shouted(Grader):
        type = "shouted"

        def __init__(self, name, field):
            super().__init__(name, 1.0)
            self.field = field

        def grade(self, sample, item):
            text = sample["output_text"]
            ok = text == text.upper() and item[self.field].upper() in text
            return Score(1.0 if ok else 0.0, passed=ok, name=self.name)


    @register_grader("shouted")
    def build(spec, context):
        return Shouted(require(spec, "name", str, context, default="shouted"),
                       require(spec, "field", str, context))


    class Echo:
        """Answers with the last user message, upper-cased when the model name says so."""

        def __init__(self, name, model):
            self.name, self.model = name, model
            self.cache_id = f"echo:{model}"
            self.max_concurrency, self.price = 4, None

        async def generate(self, request):
            text = request.messages[-1]["content"]
            return Completion(text.upper() if self.model == "loud" else text)

        async def aclose(self):
            pass


    @register_provider("echo", options={"concurrency": "count"})
    def make(config, *, api_key, withheld, concurrency, timeout_s):
        return Echo(config.name, config.model)


    SUITE = SuiteInfo(name="shout", measures="answers in capitals", default_n=3)


    @register_suite("shout")
    def build_suite(out_dir: Path, *, n, seed, length):
        rows = [{"id": f"w{i}", "word": w} for i, w in enumerate(["cat", "dog", "owl"][:n or 3])]
        write_rows(out_dir / "shout.jsonl", rows)
        return write_eval_file(out_dir, {
            "name": "shout", "dataset": "shout.jsonl",
            "messages": [{"role": "user", "content": "{{item.word}}"}],
            "graders": [{"type": "shouted", "name": "loud", "field": "word"}]})


    @register_command("hello")
    def add(sub):
        p = sub.add_parser("hello", help="say hello (a plugin command)")
        p.set_defaults(func=lambda args: print("hello from a plugin") or 0)
''')

SETUP_CFG = textwrap.dedent("""
    [metadata]
    name = posttrain-shout
    version = 0.1

    [options]
    py_modules = posttrain_shout

    [options.entry_points]
    posttrain.plugins =
        shout = posttrain_shout
""")


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding the installed plugin distribution (code + dist-info with its entry
    point), as `pip install` writes it."""
    source = tmp_path_factory.mktemp("plugin-src")
    (source / "posttrain_shout.py").write_text(PLUGIN)
    (source / "setup.cfg").write_text(SETUP_CFG)
    (source / "setup.py").write_text("from setuptools import setup\nsetup()\n")
    target = tmp_path_factory.mktemp("plugin-site")
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
         "--no-index", "--target", str(target), str(source)],
        capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        pytest.skip(f"cannot build a test distribution here: {result.stderr[-400:]}")
    assert list(target.glob("posttrain_shout-0.1.dist-info/entry_points.txt"))
    return target


def _posttrain(args: list[str], cwd: Path, plugin_path: Path | None) -> subprocess.CompletedProcess:
    env = {**os.environ}
    if plugin_path is not None:
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(plugin_path), env.get("PYTHONPATH", "")) if p)
    return subprocess.run([sys.executable, "-m", "posttrain.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=120)


def test_a_plugin_package_adds_a_grader_provider_suite_and_command(tmp_path: Path,
                                                                   plugin_path: Path) -> None:
    (tmp_path / "eval.yaml").write_text(textwrap.dedent("""
        name: shout
        items: [{id: a, word: cat}, {id: b, word: dog}]
        messages: [{role: user, content: "{{item.word}}"}]
        graders: [{type: shouted, name: loud, field: word}]
    """))
    loud = _posttrain(["eval", "eval.yaml", "--model", "echo:loud", "--model", "echo:quiet",
                       "--json", "--no-cache"], tmp_path, plugin_path)
    assert loud.returncode in (0, 1), loud.stderr
    runs = {r["model"]: r for r in json.loads(loud.stdout)["runs"]}
    assert runs["echo:loud"]["score"] == 1.0 and runs["echo:quiet"]["score"] == 0.0

    hello = _posttrain(["hello"], tmp_path, plugin_path)
    assert hello.returncode == 0 and hello.stdout.strip() == "hello from a plugin"

    suite = _posttrain(["eval", "suite:shout?n=2", "--model", "echo:loud", "--json"], tmp_path,
                       plugin_path)
    assert suite.returncode in (0, 1), suite.stderr
    (run,) = json.loads(suite.stdout)["runs"]
    assert run["score"] == 1.0 and run["n"] == 2

    listing = _posttrain(["plugins", "--json"], tmp_path, plugin_path)
    assert listing.returncode == 0, listing.stderr
    listed = json.loads(listing.stdout)
    assert {"name": "shouted", "from": "plugin"} in listed["grader"]
    assert {"name": "echo", "from": "plugin"} in listed["provider"]
    assert {"name": "shout", "from": "plugin"} in listed["suite"]
    assert {"name": "hello", "from": "plugin", "commands": ["hello"]} in listed["command"]
    assert {"name": "string_check", "from": "posttrain"} in listed["grader"]


def test_without_the_plugin_its_grader_is_unknown_with_one_line(tmp_path: Path) -> None:
    (tmp_path / "eval.yaml").write_text(
        "name: s\nitems: [{id: a, word: cat}]\nmessages: [{role: user, content: hi}]\n"
        "graders: [{type: shouted, name: loud, field: word}]\n")
    result = _posttrain(["eval", "eval.yaml", "--model", "hf:x"], tmp_path, None)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "unknown grader type 'shouted'" in result.stderr
    assert "eval.yaml" in result.stderr and "Traceback" not in result.stderr


def test_a_broken_plugin_is_one_line_naming_it_and_posttrain_still_works(
        tmp_path: Path, plugin_path: Path) -> None:
    broken = tmp_path / "site"
    broken.mkdir()
    (broken / "broken_plugin.py").write_text("raise RuntimeError('boom at import')\n")
    info = broken / "broken_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[posttrain.plugins]\nbroken = broken_plugin\n")
    result = _posttrain(["plugins"], tmp_path, broken)
    assert result.returncode == 1
    assert "plugin 'broken' (broken-plugin, broken_plugin) failed to load: RuntimeError: boom " \
           "at import" in result.stderr
    assert "Traceback" not in result.stderr and "string_check" in result.stdout


def test_own_parts_are_found_without_importing_them() -> None:
    """The source scan names every built-in part, and each module registers what it names."""
    for kind in plugins.KINDS:
        own = plugins.own_names(kind)
        assert own, kind
        for name in own:
            assert plugins.get(kind, name) is not None
    assert {"string_check", "score_model", "ifeval", "tool_use"} <= set(
        plugins.own_names("grader"))
    assert set(plugins.own_names("provider")) == {"openai", "anthropic", "hf", "vllm"}


def test_unknown_names_say_did_you_mean() -> None:
    with pytest.raises(UserError, match="did you mean 'string_check'"):
        plugins.get("grader", "strng_check")
    with pytest.raises(UserError, match="unknown suite 'tool_us'; did you mean 'tool_use'"):
        plugins.get("suite", "tool_us")


def test_looking_up_one_grader_imports_only_its_module() -> None:
    code = ("import sys; from posttrain.graders.registry import build_grader; "
            "build_grader({'type': 'string_check', 'name': 'x', 'input': 'a', 'reference': 'a',"
            " 'operation': 'eq'}); "
            "print(sorted(m for m in sys.modules if m.startswith('posttrain.graders.') or "
            "m.startswith('posttrain.suites.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    loaded = eval(out)  # noqa: S307 - our own printed list
    assert "posttrain.graders.string_check" in loaded
    assert not [m for m in loaded if m.startswith("posttrain.suites.")]
    assert "posttrain.graders.model_graders" not in loaded


def test_every_registration_in_posttrain_is_found_by_the_scan() -> None:
    """Import every module of posttrain's plugin packages: whatever registers itself must be
    what the source scan named (a registration the scan misses would be unreachable)."""
    import importlib
    import pkgutil

    import posttrain

    for module in pkgutil.walk_packages(posttrain.__path__, "posttrain."):
        top = module.name.split(".")[1]
        if top in ("graders", "suites", "models", "cli") and not module.name.endswith(
                ("__main__", "_sandbox_worker")):
            importlib.import_module(module.name)
    for kind, registry in plugins.KINDS.items():
        builtin = {name for name, obj in registry.parts.items()
                   if getattr(obj, "__module__", "").startswith("posttrain.")}
        assert builtin == set(plugins.own_names(kind)), kind


def test_suites_list_reads_each_builtin_suite_info_as_imported() -> None:
    """`posttrain suites list` reads SUITE from source (no import); it must equal the module's."""
    import importlib

    from posttrain import plugins
    from posttrain.suites import _literal_info
    from posttrain.suites.code_edits import formats
    from posttrain.suites.long_context import DEFAULT_LENGTH, KINDS

    for name, module in plugins.KINDS["suite"].index().items():
        literal = _literal_info(module)
        assert literal is not None, f"{module}: SUITE is not all literals"
        assert literal == importlib.import_module(module).SUITE
        assert literal.name == name
    code = _literal_info("posttrain.suites.code_edits")
    assert code is not None and code.components[:len(formats.FORMATS)] == list(formats.FORMATS)
    long = _literal_info("posttrain.suites.long_context")
    assert long is not None and long.default_n == len(KINDS) * 2
    assert long.default_length == DEFAULT_LENGTH
