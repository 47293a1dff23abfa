"""The package's layout rules (docs/architecture.md), checked on the source: entry points apart,
no import cycles, and one home for the names of a run folder's files."""

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "electra_lit"

# The files of a run folder: these names may appear in code only in runs/run_dir.py.
RUN_FOLDER_NAMES = (
    "last.ckpt",
    "metrics.csv",
    "wandb_run_id",
    "config.yaml",
    "results.json",
    "hpc_ckpt_",
    "previous.ckpt",
    "checkpoints/",
)


def modules() -> dict[str, ast.Module]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    return found


def top_level_imports(name: str, tree: ast.Module, known: set[str]) -> set[str]:
    """The electra_lit modules ``name`` imports when it is imported (not those imported inside functions)."""
    imported = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            targets = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        imported |= {t for t in targets if t in known and t != name}
    return imported


def test_library_modules_never_import_an_entry_point():
    offenders = []
    for name, tree in modules().items():
        if name.startswith("electra_lit.cli"):
            continue
        for node in ast.walk(tree):
            target = node.module if isinstance(node, ast.ImportFrom) else None
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [target or ""]
            offenders += [f"{name} imports {n}" for n in names if n.startswith("electra_lit.cli")]
    assert not offenders, offenders


def test_no_import_cycles():
    trees = modules()
    graph = {name: top_level_imports(name, tree, set(trees)) for name, tree in trees.items()}

    def package_parents(module: str) -> set[str]:  # importing a.b.c runs a/__init__ and a/b/__init__ first
        parts = module.split(".")
        return {".".join(parts[:i]) for i in range(1, len(parts))}

    cycles = []
    for start in graph:
        stack, seen = [(start, [start])], set()
        while stack:
            node, path = stack.pop()
            for nxt in graph[node]:
                if nxt == start and nxt not in package_parents(node):
                    cycles.append(" -> ".join([*path, nxt]))
                elif nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, [*path, nxt]))
    assert not cycles, "import cycles:\n" + "\n".join(sorted(set(cycles))[:10])


def _string_constants(tree: ast.Module) -> list[tuple[int, str]]:
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
    ]


def test_the_names_of_a_run_folders_files_live_only_in_run_dir():
    offenders = []
    for name, tree in modules().items():
        if name == "electra_lit.runs.run_dir":
            continue
        for line, text in _string_constants(tree):
            offenders += [f"{name}:{line}: {text!r}" for word in RUN_FOLDER_NAMES if word in text]
    assert not offenders, "spell these through electra_lit.runs.RunDir:\n" + "\n".join(offenders)


def test_importing_the_package_is_light_and_registers_the_resolvers():
    code = (
        "import sys, electra_lit; from omegaconf import OmegaConf; "
        "assert OmegaConf.has_resolver('run_name') and OmegaConf.has_resolver('wandb_sweep_group'); "
        "print(sorted(m for m in ('lightning', 'torch', 'datasets', 'wandb') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
