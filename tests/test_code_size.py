"""Size limits that keep the code readable in one pass: modules <= 600 lines, functions <= 80 lines
(decorators and docstring included), in the three packages."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("das_core", "das_server", "blender_addon")
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 80


def _sources() -> list[Path]:
    return sorted(path for package in PACKAGES for path in (ROOT / package).rglob("*.py") if "wheels" not in path.parts)


def long_functions(source: str) -> list[tuple[str, int]]:
    """(name, lines) of every function or method in `source` longer than the limit."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            first = min([node.lineno, *(decorator.lineno for decorator in node.decorator_list)])
            lines = (node.end_lineno or node.lineno) - first + 1
            if lines > MAX_FUNCTION_LINES:
                found.append((node.name, lines))
    return found


def test_no_module_is_too_long():
    long = {str(path.relative_to(ROOT)): n for path in _sources() if (n := len(path.read_text().splitlines())) > 600}
    assert not long, f"modules over {MAX_MODULE_LINES} lines: {long}; split them along their seams"


def test_no_function_is_too_long():
    long = {
        f"{path.relative_to(ROOT)}:{name}": n for path in _sources() for name, n in long_functions(path.read_text())
    }
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines: {long}; split them into named steps"


def test_the_function_check_can_fail():
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    assert long_functions(f"@staticmethod\ndef long():\n{body}\n") == [("long", MAX_FUNCTION_LINES + 2)]
    assert long_functions("def short():\n    return 1\n") == []
