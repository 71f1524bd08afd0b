"""`hsc preset NAME`: switch params.yaml to a shipped preset (synthetic, f30k, coco)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import typer

from hsc.errors import HscError


def preset_names() -> list[str]:
    return sorted(p.name.removesuffix(".yaml") for p in resources.files("hsc_app.presets").iterdir()
                  if p.name.endswith(".yaml"))


def preset_text(name: str) -> str:
    if name not in preset_names():
        raise HscError(f"unknown preset '{name}'; choose one of: {', '.join(preset_names())}")
    import yaml  # here, not at the top: the CLI imports this module on every start

    from hsc_app.params import parse_params

    text = resources.files("hsc_app.presets").joinpath(f"{name}.yaml").read_text(encoding="utf-8")
    parse_params(yaml.safe_load(text), source=f"preset {name}")
    return text


def preset(
    name: str = typer.Argument(..., help="synthetic (the embedded default), f30k or coco."),
    params: Path = typer.Option(Path("params.yaml"), help="Params file to overwrite."),
) -> None:
    """Overwrite the params file with a preset: the embedded synthetic default, or the
    paper's Flickr30K / MS-COCO configuration. Then run `dvc repro`."""
    from hsc.atomic import write_text

    write_text(params, preset_text(name))
    print(f"{params}: now the '{name}' preset; run `dvc repro` (or edit single keys with `dvc exp run -S`)")
