"""The package layout: the library ``hsc`` apart from its app ``hsc_app``, and each DVC
stage's code inside the deps dvc.yaml declares for it."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
STAGES = yaml.safe_load((REPO / "dvc.yaml").read_text(encoding="utf-8"))["stages"]


def _python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)


def test_the_library_imports_nothing_from_the_app() -> None:
    done = _python("import pkgutil, sys, hsc\n"
                   "for module in pkgutil.walk_packages(hsc.__path__, 'hsc.'):\n"
                   "    __import__(module.name)\n"
                   "print(len(sys.modules), *sorted(name for name in sys.modules if name.split('.')[0] == 'hsc_app'))")
    count, *app_modules = done.stdout.split()
    assert app_modules == [] and int(count) > 100


def test_only_the_library_and_the_app_are_installed() -> None:
    """No top-level `stages` (or other) package besides hsc and hsc_app goes into the wheel."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    from setuptools import find_packages

    include = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]["packages"]
    packages = find_packages(where=str(REPO), include=include["find"]["include"])
    assert {package.split(".")[0] for package in packages} == {"hsc", "hsc_app"}
    assert "hsc_app.presets" in packages and "hsc_app.stages" in packages


def _marker(path: Path) -> bool:
    """A package's __init__.py holding only a docstring and constants: no code a stage runs."""
    return all(isinstance(node, (ast.Expr, ast.Assign)) for node in ast.parse(path.read_text(encoding="utf-8")).body)


def _covered(path: Path, deps: list[str]) -> bool:
    return any(path == Path(dep) or Path(dep) in path.parents for dep in deps)


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_every_module_a_stage_imports_is_among_its_deps(stage: str) -> None:
    command = STAGES[stage]["cmd"].split()
    assert command[:2] == ["hsc", stage], "each stage runs `hsc <stage>`, whose code is hsc_app/stages/<stage>.py"
    done = subprocess.run([sys.executable, str(REPO / "tests" / "import_closure.py"), str(REPO),
                           f"hsc_app.stages.{stage}"], cwd=REPO, capture_output=True, text=True, check=True)
    loaded = [Path(line) for line in done.stdout.split()]
    deps = [str(dep).split()[0] for dep in STAGES[stage]["deps"]]
    assert Path(f"hsc_app/stages/{stage}.py") in loaded
    missing = [str(path) for path in loaded if not _covered(path, deps) and not _marker(REPO / path)]
    assert not missing, f"dvc.yaml stage {stage} lacks deps on {missing}"
