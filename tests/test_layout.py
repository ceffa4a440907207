"""The source layout as a reader meets it: the structure drawn from the imports (every import, those
inside functions too) has no circle, no part imports a part above it, and no module grows past
350 lines."""

import ast
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[1] / "src" / "reglab"
LAYERS = [  # lowest first: a part may import its own layer and the layers below it
    {"version", "errors", "plugins", "progress", "allocator", "device", "metrics"},
    {"recipe"},
    {"rundir", "data"},
    {"models", "augment"},
    {"inference"},
    {"training"},
    {"experiments"},
    {"report"},
    {"api"},
    {"cli"},
    {"__init__"},  # the package's face: the Python API and the registries
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SOURCE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports() -> dict[str, set[str]]:
    """Module → the reglab modules it imports."""
    files = {module_name(path): path for path in SOURCE.rglob("*.py")}
    graph = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                target = f"{base}.{node.module}" if node.module else base
                for alias in node.names:  # `from . import metrics` imports a module
                    found.add(f"{target}.{alias.name}" if f"{target}.{alias.name}" in files else target)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                found |= {n for n in names if n in files}
        graph[name] = found - {name}
    return graph


def part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def layer(module: str) -> int:
    return next(i for i, names in enumerate(LAYERS) if part(module) in names)


def test_no_import_runs_upward_and_every_part_has_a_layer():
    graph = imports()
    upward = [f"{a} -> {b}" for a, targets in graph.items() for b in targets if layer(b) > layer(a)]
    assert not upward, upward


def test_the_imports_have_no_circle():
    graph, state, stack, circles = imports(), {}, [], []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                circles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert not circles, circles


def test_no_module_over_350_lines():
    long = {str(path.relative_to(SOURCE)): n for path in SOURCE.rglob("*.py") if (n := len(path.read_text().splitlines())) > 350}
    assert not long, long


def test_the_command_line_and_the_package_start_without_torch():
    """``reglab --help``, a typo'd command, and every worker process start in tens of milliseconds:
    importing the command line or the package (its registries) loads no torch; the Python API
    loads it on first use."""
    import subprocess
    import sys

    probe = "import sys, reglab, reglab.cli; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.strip() == "False"
