"""Print the repository files a module needs, one per line: run as ``import_closure.py REPO MODULE``.

The module is imported, then every repository module named by any import statement in it
(at the top or inside a function, where the stages keep their heavy imports), recursively;
the answer is every loaded module whose file lies under REPO. Imports under
``if __name__ == "__main__":`` are skipped: they run only when the file is a script.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Iterator


def imported_names(path: Path) -> Iterator[str]:
    """Every absolute module name an import statement of ``path`` may name (``from m import x``: m and m.x)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    script_only = {id(inner) for node in ast.walk(tree)
                   if isinstance(node, ast.If) and "__main__" in ast.unparse(node.test) for inner in ast.walk(node)}
    for node in ast.walk(tree):
        if id(node) in script_only:
            continue
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def closure(repo: Path, module: str) -> set[Path]:
    queue, seen = [module], set()
    while queue:
        name = queue.pop()
        if name in seen or not (repo / name.split(".")[0] / "__init__.py").is_file():
            continue
        seen.add(name)
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):  # `from package.module import name`: not a module
            continue
        if spec is not None and spec.has_location:
            queue.extend(imported_names(Path(importlib.import_module(name).__file__)))
    files = {Path(loaded.__file__) for loaded in list(sys.modules.values()) if getattr(loaded, "__file__", None)}
    found = {path.resolve().relative_to(repo) for path in files
             if path.is_absolute() and path.resolve().is_relative_to(repo) and path.suffix == ".py"}
    return {path for path in found if (repo / path.parts[0] / "__init__.py").is_file()}  # packages, not this script


if __name__ == "__main__":
    repo_root = Path(sys.argv[1]).resolve()
    print("\n".join(sorted(str(path) for path in closure(repo_root, sys.argv[2]))))
