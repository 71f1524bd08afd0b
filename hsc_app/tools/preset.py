"""`hsc preset NAME`: set the keys a shipped preset owns in params.yaml, keeping every other edit.

``hsc_app/presets/synthetic.yaml`` is the defaults: the whole params file, the one committed as
``params.yaml``. Every other preset is an overlay listing only the keys whose values differ
from it. A preset owns the keys of every overlay: applying one sets each of them to its
overlay's value, or to the default where its overlay has none, so switching f30k -> synthetic
restores the synthetic values of what f30k changed, and f30k -> coco -> f30k ends where it began.
"""

from __future__ import annotations

import subprocess
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Optional

import typer

from hsc.errors import HscError

if TYPE_CHECKING:
    from hsc_app.yaml_edit import KeyPath, Leaf

DEFAULTS = "synthetic"


class Change(NamedTuple):
    key: str
    old: Optional[str]  # as written in the file; None: the key was absent
    new: str

    def __str__(self) -> str:
        return f"{self.key}: {'(absent)' if self.old is None else self.old} -> {self.new}"


def preset_names() -> list[str]:
    return sorted(p.name.removesuffix(".yaml") for p in resources.files("hsc_app.presets").iterdir()
                  if p.name.endswith(".yaml"))


@cache
def _shipped(name: str) -> str:
    if name not in preset_names():
        raise HscError(f"unknown preset '{name}'; choose one of: {', '.join(preset_names())}")
    return resources.files("hsc_app.presets").joinpath(f"{name}.yaml").read_text(encoding="utf-8")


def defaults_text() -> str:
    """The defaults file, also the committed params.yaml."""
    return _shipped(DEFAULTS)


def overlay(name: str) -> dict[KeyPath, Leaf]:
    """The keys and values ``name`` sets over the defaults (none for the defaults themselves)."""
    from hsc_app.yaml_edit import leaves

    return {} if name == DEFAULTS else leaves(_shipped(name), f"preset {name}")


def targets(name: str) -> dict[KeyPath, Leaf]:
    """Every key some preset owns, with the value ``name`` gives it (its overlay's, else the default)."""
    from hsc_app.yaml_edit import leaves

    defaults = leaves(defaults_text(), f"preset {DEFAULTS}")
    _shipped(name)  # an unknown name fails here, before any other preset is read
    owned = [path for other in preset_names() for path in overlay(other)]
    mine = overlay(name)
    return {path: mine.get(path, defaults[path]) for path in dict.fromkeys(owned)}


def preset_text(name: str) -> str:
    """The params file of preset ``name``: the defaults with its overlay applied, validated."""
    return apply(defaults_text(), name, source=f"preset {name}")[0]


def apply(text: str, name: str, source: str, committed: Optional[str] = None,
          force: bool = False) -> tuple[str, list[Change]]:
    """``text`` with the keys the presets own set to ``name``'s values, and what changed.

    Unless ``force``, a key whose value would change and that holds an edit (a value that is
    neither in ``committed``, the version in git, nor one any preset gives it) stops this
    with one line naming the keys.
    """
    import yaml

    from hsc_app.params import parse_params
    from hsc_app.yaml_edit import dotted, leaves, set_values

    wanted = targets(name)
    current = leaves(text, source)
    changes = {path: leaf for path, leaf in wanted.items()
               if path not in current or not _same(current[path].value, leaf.value)}
    if not force:
        saved = leaves(committed, f"{source} (git HEAD)") if committed is not None else {}
        every = [targets(other) for other in preset_names()]
        edited = [f"{dotted(path)} {current[path].text} -> {leaf.text}" for path, leaf in changes.items()
                  if path in current
                  and not any(_same(current[path].value, values[path].value) for values in every)
                  and not (path in saved and _same(current[path].value, saved[path].value))]
        if edited:
            raise HscError(f"{source}: preset '{name}' would overwrite uncommitted edits ({', '.join(edited)}); "
                           f"commit them, or run `hsc preset {name} --force`")
    result = set_values(text, {path: leaf.tail for path, leaf in changes.items()}, source)
    parse_params(yaml.safe_load(result) or {}, source=source)
    return result, [Change(dotted(path), current[path].text if path in current else None, leaf.text)
                    for path, leaf in changes.items()]


def _same(a: Any, b: Any) -> bool:
    """YAML values equal as written: ``1`` and ``true`` differ although Python's ``1 == True``."""
    return isinstance(a, bool) == isinstance(b, bool) and a == b


def committed_text(path: Path) -> Optional[str]:
    """``path`` as of git's HEAD; None outside a git work tree or for a file not committed."""
    try:
        result = subprocess.run(["git", "-C", str(path.resolve().parent), "show", f"HEAD:./{path.name}"],
                                capture_output=True, text=True)
    except OSError:  # no git
        return None
    return result.stdout if result.returncode == 0 else None


def preset(
    name: str = typer.Argument(..., help="synthetic (the embedded default), f30k or coco."),
    params: Path = typer.Option(Path("params.yaml"), help="Params file to change (written whole when missing)."),
    force: bool = typer.Option(False, "--force", help="Overwrite uncommitted edits of the keys the preset sets."),
) -> None:
    """Set the keys a preset owns: the dataset, model sizes and schedule of the embedded
    synthetic default, or of the paper's Flickr30K / MS-COCO configuration. Other keys keep
    their values and comments; each change is printed as `key: old -> new`. Uncommitted edits
    to the keys it sets stop it unless --force. Then run `dvc repro`."""
    from hsc.atomic import write_text

    source = str(params)
    try:
        text = params.read_text(encoding="utf-8") if params.exists() else ""
    except OSError as exc:
        raise HscError(f"{params}: cannot read the params file ({exc.strerror})") from None
    exists = bool(text.strip())  # a missing or empty file is written whole
    text = text if exists else defaults_text()
    result, changes = apply(text, name, source, committed_text(params) if exists else None, force)
    if exists and not changes:
        print(f"{params}: already has the '{name}' preset's values; nothing changed")
        return
    write_text(params, result)
    for change in changes:
        print(f"  {change}")
    what = f"{len(changes)} key{'s' if len(changes) != 1 else ''} changed" if exists else "written from the defaults"
    print(f"{params}: the '{name}' preset ({what}); run `dvc repro` (or edit single keys with `dvc exp run -S`)")
