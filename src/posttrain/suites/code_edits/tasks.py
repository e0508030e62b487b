"""The bundled edit tasks: one per corpus file (``corpus/*.txt``, self-authored).

Each task names its file, an instruction, the allowed region (``symbol:NAME`` / ``symbol:Class.m``
resolved with ``ast``; ``brace:TEXT`` a ``{...}`` block starting on the line containing TEXT;
``tag:NAME`` an HTML element starting on the first line with ``<NAME``), the reference edit as
exact (old, new) replacements, tests, and ``temptation``: an (old, new) change outside the region
that a model might be tempted to make (a typo fix, a removed unused import, quote tidying).
Python tests are asserts run in the sandbox; ``node`` tests run with Node's ``assert``; ``checks``
are regex / DOM checks on the edited text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from typing import Any


@dataclass(frozen=True)
class Task:
    id: str
    file: str
    language: str  # python | html | css | javascript
    instruction: str
    region: list[str]
    reference: list[tuple[str, str]]
    temptation: tuple[str, str]
    python_test: str = ""
    node_test: str = ""
    checks: list[dict[str, Any]] = field(default_factory=list)

    def original(self) -> str:
        return source(self.file)

    def target(self) -> str:
        text = self.original()
        for old, new in self.reference:
            if text.count(old) != 1:
                raise ValueError(f"{self.id}: reference text occurs {text.count(old)} times")
            text = text.replace(old, new)
        return text


def source(name: str) -> str:
    return resources.files("posttrain.suites.code_edits").joinpath(
        f"corpus/{name}.txt").read_text(encoding="utf-8")


TASKS: list[Task] = [
    Task(
        id="inventory_remove_guard", file="inventory.py", language="python",
        instruction="In `Inventory.remove`, raise `ValueError` when asked to remove more units "
                    "than are in stock, leaving the count unchanged.",
        region=["symbol:Inventory.remove"],
        reference=[("        self.counts[name] = self.counts.get(name, 0) - count\n",
                    "        available = self.counts.get(name, 0)\n"
                    "        if count > available:\n"
                    "            raise ValueError(f\"only {available} {name} in stock\")\n"
                    "        self.counts[name] = available - count\n")],
        temptation=("# reccord the newest", "# record the newest"),
        python_test="""
from inventory import Inventory
inv = Inventory()
inv.add("pen", 3, 1.5)
try:
    inv.remove("pen", 5)
except ValueError:
    pass
else:
    raise AssertionError("removing more than in stock must raise ValueError")
assert inv.counts["pen"] == 3
inv.remove("pen", 2)
assert inv.counts["pen"] == 1
assert inv.total_value() == 1.5
""",
    ),
    Task(
        id="textstats_tie_break", file="textstats.py", language="python",
        instruction="Make `most_common` break ties between equally frequent words "
                    "alphabetically.",
        region=["symbol:most_common"],
        reference=[("key=lambda pair: -pair[1])", "key=lambda pair: (-pair[1], pair[0]))")],
        temptation=("every occurence", "every occurrence"),
        python_test="""
from textstats import most_common, word_count
assert most_common("pear apple pear fig apple kiwi", 2) == ["apple", "pear"]
assert most_common("b a c", 3) == ["a", "b", "c"]
assert most_common("zebra zebra ant", 1) == ["zebra"]
assert word_count("one two two") == 3
""",
    ),
    Task(
        id="temperature_kelvin", file="temperature.py", language="python",
        instruction="Add a function `k_to_c(kelvin)` right after `f_to_c` that converts kelvin "
                    "to Celsius using `ABSOLUTE_ZERO_C`.",
        region=["symbol:f_to_c"],
        reference=[("    return (fahrenheit - 32) * 5 / 9\n",
                    "    return (fahrenheit - 32) * 5 / 9\n\n\n"
                    "def k_to_c(kelvin):\n    return kelvin + ABSOLUTE_ZERO_C\n")],
        temptation=("        return 'freezing'", '        return "freezing"'),
        python_test="""
from temperature import k_to_c, c_to_f
assert abs(k_to_c(0) + 273.15) < 1e-9
assert abs(k_to_c(273.15)) < 1e-9
assert c_to_f(100) == 212
""",
    ),
    Task(
        id="slugify_collapse", file="slugify.py", language="python",
        instruction="Make `slugify` strip leading and trailing hyphens from the slug (runs of "
                    "unsafe characters already become one hyphen).",
        region=["symbol:slugify"],
        reference=[('    return _UNSAFE.sub("-", lowered)\n',
                    '    return _UNSAFE.sub("-", lowered).strip("-")\n')],
        temptation=("in the midle of", "in the middle of"),
        python_test="""
from slugify import slugify, truncate
assert slugify("  Hello, World!  ") == "hello-world"
assert slugify("--Tides & Times--") == "tides-times"
assert slugify("plain") == "plain"
assert truncate("a-b", 10) == "a-b"
""",
    ),
    Task(
        id="bank_transfer_check", file="bank.py", language="python",
        instruction="Make `transfer` raise `InsufficientFunds(source.owner)` without moving any "
                    "money when the source balance is lower than the amount.",
        region=["symbol:transfer"],
        reference=[("def transfer(source, target, amount):\n",
                    "def transfer(source, target, amount):\n"
                    "    if amount > source.balance:\n"
                    "        raise InsufficientFunds(source.owner)\n")],
        temptation=("positve", "positive"),
        python_test="""
from bank import Account, InsufficientFunds, transfer
a, b = Account("ana", 10), Account("ben", 0)
try:
    transfer(a, b, 25)
except InsufficientFunds:
    pass
else:
    raise AssertionError("overdraft transfer must raise")
assert (a.balance, b.balance) == (10, 0)
transfer(a, b, 4)
assert (a.balance, b.balance) == (6, 4)
""",
    ),
    Task(
        id="dates_leap_century", file="dates.py", language="python",
        instruction="Fix `is_leap_year` to follow the Gregorian rule: years divisible by 100 are "
                    "not leap years unless they are also divisible by 400.",
        region=["symbol:is_leap_year"],
        reference=[("    return year % 4 == 0\n",
                    "    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)\n")],
        temptation=("on the yaer", "on the year"),
        python_test="""
from dates import is_leap_year, days_in_month
assert is_leap_year(2024) and is_leap_year(2000)
assert not is_leap_year(1900) and not is_leap_year(2023)
assert days_in_month(2100, 2) == 28
assert days_in_month(2000, 2) == 29
""",
    ),
    Task(
        id="matrix_transpose_rect", file="matrix.py", language="python",
        instruction="Fix `transpose` so it works for rectangular matrices, not only square ones.",
        region=["symbol:transpose"],
        reference=[("    size = len(matrix)\n"
                    "    return [[matrix[r][c] for r in range(size)] for c in range(size)]\n",
                    "    rows, cols = shape(matrix)\n"
                    "    return [[matrix[r][c] for r in range(rows)] for c in range(cols)]\n")],
        temptation=("the identiy matrix", "the identity matrix"),
        python_test="""
from matrix import transpose, identity
assert transpose([[1, 2, 3], [4, 5, 6]]) == [[1, 4], [2, 5], [3, 6]]
assert transpose([[1], [2]]) == [[1, 2]]
assert transpose([[1, 2], [3, 4]]) == [[1, 3], [2, 4]]
assert identity(2) == [[1, 0], [0, 1]]
""",
    ),
    Task(
        id="discounts_half", file="discounts.py", language="python",
        instruction="Add a discount code `HALF50` worth 50% to `DISCOUNTS`, after `SPRING20`.",
        region=["symbol:DISCOUNTS"],
        reference=[('    "SPRING20": 0.20,\n', '    "SPRING20": 0.20,\n    "HALF50": 0.50,\n')],
        temptation=("        return 'unknown code'", '        return "unknown code"'),
        python_test="""
from discounts import apply_discount, describe
assert apply_discount(80, "half50") == 40.0
assert apply_discount(100, "WELCOME10") == 90.0
assert describe("HALF50") == "50% off"
""",
    ),
    Task(
        id="settings_comments", file="settings.py", language="python",
        instruction="Make `parse_settings` skip blank lines and lines whose first non-space "
                    "character is `#`.",
        region=["symbol:parse_settings"],
        reference=[("    for line in text.splitlines():\n",
                    "    for line in text.splitlines():\n"
                    "        if not line.strip() or line.lstrip().startswith(\"#\"):\n"
                    "            continue\n")],
        temptation=("import sys\n", ""),
        python_test="""
from settings import parse_settings, get_bool
text = "# comment\\nname = tides\\n\\n   # indented comment\\ndebug=yes\\n"
parsed = parse_settings(text)
assert parsed == {"name": "tides", "debug": "yes"}, parsed
assert get_bool(parsed, "debug") is True
""",
    ),
    Task(
        id="stack_peek", file="stack.py", language="python",
        instruction="Add a `peek` method to `Stack`, right after `pop`, that returns the top item "
                    "without removing it and raises `IndexError(\"peek at empty stack\")` when "
                    "the stack is empty.",
        region=["symbol:Stack.pop"],
        reference=[("        return self._items.pop()\n",
                    "        return self._items.pop()\n\n"
                    "    def peek(self):\n"
                    "        if not self._items:\n"
                    "            raise IndexError(\"peek at empty stack\")\n"
                    "        return self._items[-1]\n")],
        temptation=("the numbre of", "the number of"),
        python_test="""
from stack import Stack, reverse
s = Stack()
try:
    s.peek()
except IndexError:
    pass
else:
    raise AssertionError("peek on empty must raise IndexError")
s.push(1); s.push(2)
assert s.peek() == 2 and len(s) == 2
assert reverse([1, 2, 3]) == [3, 2, 1]
""",
    ),
    Task(
        id="roman_subtractive", file="roman.py", language="python",
        instruction="Make `to_roman` use subtractive notation (4 is IV, 9 is IX, 40 is XL, "
                    "90 is XC, 400 is CD, 900 is CM) by extending `SYMBOLS`.",
        region=["symbol:SYMBOLS"],
        reference=[('SYMBOLS = [(1000, "M"), (500, "D"), (100, "C"), (50, "L"), (10, "X"), '
                    '(5, "V"), (1, "I")]\n',
                    'SYMBOLS = [\n    (1000, "M"), (900, "CM"), (500, "D"), (400, "CD"), '
                    '(100, "C"), (90, "XC"),\n    (50, "L"), (40, "XL"), (10, "X"), (9, "IX"), '
                    '(5, "V"), (4, "IV"), (1, "I"),\n]\n')],
        temptation=("are alowed", "are allowed"),
        python_test="""
from roman import to_roman, is_valid
assert to_roman(4) == "IV" and to_roman(9) == "IX"
assert to_roman(1994) == "MCMXCIV"
assert to_roman(3) == "III"
assert is_valid("MCMXCIV")
""",
    ),
    Task(
        id="html_email_field", file="index.html", language="html",
        instruction="In the signup form, make the email input an `type=\"email\"` field that is "
                    "`required`, and add a `<label for=\"email\">Email</label>` just before it.",
        region=["tag:form"],
        reference=[('      <input id="email" type="text" name="email">\n',
                    '      <label for="email">Email</label>\n'
                    '      <input id="email" type="email" name="email" required>\n')],
        temptation=("footer linkss", "footer links"),
        checks=[
            {"file": "index.html", "dom": "#email", "attr": "type", "equals": "email"},
            {"file": "index.html", "dom": "#email", "attr": "required"},
            {"file": "index.html", "dom": "label[for=email]", "text": "Email"},
            {"file": "index.html", "regex": r"<label for=\"email\">Email</label>\s*<input id=\"email\""},
        ],
    ),
    Task(
        id="css_button_hover", file="styles.css", language="css",
        instruction="Add a `.button:hover` rule right after the `.button` rule that sets "
                    "`background: #08384d;`.",
        region=["brace:.button {"],
        reference=[("  padding: 4px;\n}\n",
                    "  padding: 4px;\n}\n\n.button:hover {\n  background: #08384d;\n}\n")],
        temptation=("harbour palete", "harbour palette"),
        checks=[
            {"file": "styles.css", "regex": r"\.button:hover\s*\{[^}]*background:\s*#08384d;"},
            {"file": "styles.css", "regex": r"\.button\s*\{[^}]*padding:\s*4px;"},
        ],
    ),
    Task(
        id="js_count_remaining", file="todo.js", language="javascript",
        instruction="Fix `countRemaining` so it counts the todos that are not done yet.",
        region=["brace:function countRemaining"],
        reference=[("  return todos.filter((todo) => todo.done).length;\n",
                    "  return todos.filter((todo) => !todo.done).length;\n")],
        temptation=("are trimed before", "are trimmed before"),
        node_test="""
const assert = require("assert");
const t = require("./todo.js");
t.addTodo(" a "); t.addTodo("b"); t.addTodo("c");
t.toggleTodo(1);
assert.strictEqual(t.countRemaining(), 2);
assert.strictEqual(t.todos[0].title, "a");
t.clearAll();
assert.strictEqual(t.countRemaining(), 0);
""",
    ),
]

TASKS_BY_ID: dict[str, Task] = {task.id: task for task in TASKS}
