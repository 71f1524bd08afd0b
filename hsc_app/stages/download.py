"""DVC stage ``download``: the raw SCAN-layout files of ``params.dataset`` into ``--out``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command()
def download(
    params: Path = typer.Option(Path("params.yaml"), help="Params file; reads `dataset`, `download`, `synthetic` "
                                                          "and `coco_format`."),
    out: Path = typer.Option(..., help="Directory to fill with {split}_ims.npy and {split}_caps.txt "
                                       "(replaced only once complete)."),
    cache: Path = typer.Option(Path("data/downloads"), help="Where downloaded archives persist across runs "
                                                            "(not a DVC output), with manifest.json of their "
                                                            "sizes and sha256."),
    mirror: Optional[str] = typer.Option(None, help="Overrides download.mirror: an http(s):// or file:// URL "
                                                    "of SCAN's data.zip, a local zip, or a directory laid out "
                                                    "like SCAN's data/<name>/."),
) -> None:
    """Get the raw dataset: generate `synthetic`, convert your own `coco_format` files, or fetch
    SCAN's precomputed features (resumable, verified download or a mirror) and extract only
    the chosen dataset."""
    from hsc import interrupt
    from hsc.data.download import acquire
    from hsc.data.datasets import dataset_for
    from hsc_app.params import load_stage_params

    p = load_stage_params(params)
    if p.dataset == "synthetic":  # sizes that depend on each other and on the generator's lexicon
        from hsc.data.synthetic import check_params
        from hsc.errors import HscError

        try:
            check_params(p.synthetic)
        except HscError as exc:
            raise HscError(f"{params}: {exc}") from None
    interrupt.keep(f"{out} is unchanged and {cache} keeps any partial download, which the next run resumes")
    if p.dataset == "coco_format":
        _warn_untracked(p.coco_format)
    acquire(p, out, cache=cache, mirror=mirror)
    typer.echo(f"{p.dataset}: {len(dataset_for(p.dataset).files)} files in {out}")


TRACKED_OWN_DIR = Path("data/own")  # a dependency of the download stage in dvc.yaml


def _warn_untracked(settings) -> None:
    """DVC re-runs download when files under data/own/ change; it cannot see files elsewhere."""
    paths = [*settings.captions, settings.split_file, settings.features]
    outside = [path for path in paths if path and not Path(path).resolve().is_relative_to(TRACKED_OWN_DIR.resolve())]
    if outside:
        typer.echo(f"warning: coco_format file {outside[0]} is outside {TRACKED_OWN_DIR}/, which dvc.yaml tracks: "
                   f"`dvc repro` will not re-run download when it changes; put your files there", err=True)


if __name__ == "__main__":
    from hsc_app.cli import run_app

    run_app(app)
