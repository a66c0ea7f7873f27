"""The package's shape: imports go one way (no circles), no module takes another's private
names, and only app.py imports gradio."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "fomm_space"


def modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        found[name.removesuffix(".__init__")] = path
    return found


def imports(name: str, path: Path, known: dict[str, Path]) -> list[tuple[str, str]]:
    """(module imported, name taken) for every ``from ... import`` of the package in a
    module, at any depth (functions too)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            if base.split(".")[0] == "fomm_space":
                for alias in node.names:
                    full = f"{base}.{alias.name}"
                    found.append((full if full in known else base, alias.name))
    return found


def test_imports_form_no_circle():
    known = modules()
    edges = {name: {target for target, _ in imports(name, path, known) if target != "fomm_space"}
             for name, path in known.items()}
    state: dict[str, str] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = "open"
        for target in sorted(edges.get(node, ())):
            assert state.get(target) != "open", "import circle: " + " -> ".join(trail + [target])
            if target not in state:
                visit(target, trail + [target])
        state[node] = "done"

    for name in sorted(known):
        if name not in state:
            visit(name, [name])


def test_no_module_takes_another_modules_private_names():
    known = modules()
    taken = [(name, target, alias) for name, path in known.items() for target, alias in imports(name, path, known)
             if alias.startswith("_") and not alias.startswith("__")]
    assert taken == []


def test_only_the_app_imports_gradio():
    for path in [*PACKAGE.rglob("*.py")]:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        names |= {(n.module or "").split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert "gradio" not in names, path
