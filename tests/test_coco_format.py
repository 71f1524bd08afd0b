"""Your own data in COCO's format: download -> prepare -> train -> evaluate, ids, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from hsc.data.coco_format import convert
from hsc.data.store import SplitReader
from hsc.errors import HscError
from hsc_app.cli import app
from hsc_app.params import Params

pytest.importorskip("pycocotools")


@pytest.fixture(scope="module")
def own_data(tmp_path_factory) -> tuple[Path, dict]:
    """The tiny synthetic dataset written as COCO captions (5-7 per image), split file and features."""
    from conftest import TINY_PARAMS
    from hsc.data.synthetic import generate_coco_format

    root = tmp_path_factory.mktemp("own")
    settings = generate_coco_format(Params.model_validate(TINY_PARAMS).synthetic, root / "own")
    params = {**TINY_PARAMS, "dataset": "coco_format", "coco_format": settings.model_dump(),
              "train": {**TINY_PARAMS["train"], "epochs": 1}, "evaluate": {**TINY_PARAMS["evaluate"], "save_sims": True}}
    return root, params


def invoke(*args: str):
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result


def test_pipeline_runs_on_coco_format_data(own_data: tuple[Path, dict], tmp_path: Path) -> None:
    root, params = own_data
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(params), encoding="utf-8")
    raw, prepared, ckpt = tmp_path / "raw", tmp_path / "prepared", tmp_path / "ckpt"
    invoke("download", "--params", str(params_file), "--out", str(raw))
    invoke("prepare", "--params", str(params_file), "--raw", str(raw), "--out", str(prepared))
    test = SplitReader(prepared / "test.h5")
    annotations = json.loads((root / "own" / "captions.json").read_text())["annotations"]
    per_image = np.bincount(test.caption_image)
    assert test.n_images == 20 and set(per_image) == {5, 6, 7}
    assert test.attrs["id_source"].startswith("coco ids")
    ann_by_id = {a["id"]: a for a in annotations}
    # each stored caption id is a COCO annotation of the stored image id of its row
    assert all(ann_by_id[int(c)]["image_id"] == int(test.image_ids[i])
               for c, i in zip(test.caption_ids, test.caption_image))
    invoke("train", "--params", str(params_file), "--data", str(prepared), "--out", str(ckpt),
           "--metrics", str(tmp_path / "train_metrics"))
    invoke("evaluate", "--params", str(params_file), "--checkpoint", str(ckpt / "best.pt"), "--data", str(prepared),
           "--out", str(tmp_path / "eval.json"), "--plots", str(tmp_path / "recall"), "--sims-dir", str(tmp_path / "sims"))
    metrics = json.loads((tmp_path / "eval.json").read_text())
    assert list(metrics) == ["coco_format_test"]
    saved = np.load(tmp_path / "sims" / "test_ranks.npz")
    np.testing.assert_array_equal(saved["caption_ids"], test.caption_ids)
    np.testing.assert_array_equal(saved["image_ids"], test.image_ids)
    result = invoke("metrics", str(tmp_path / "sims" / "test_sims.npy"),
                    "--caption-image", str(tmp_path / "sims" / "test_ranks.npz"))
    assert json.loads(result.output)["rsum"] == metrics["coco_format_test"]["rsum"]


def test_list_split_file_and_npz_features(own_data: tuple[Path, dict], tmp_path: Path) -> None:
    root, params = own_data
    karpathy = json.loads((root / "own" / "dataset_coco.json").read_text())["images"]
    lists = {"train": [], "val": [], "test": []}
    for image in karpathy:
        lists[image["split"]].append(image["cocoid"])
    (tmp_path / "split.json").write_text(json.dumps(lists))
    features = root / "own" / "features"
    np.savez(tmp_path / "feats.npz", **{p.stem: np.load(p) for p in features.glob("*.npy")})
    settings = Params.model_validate({**params, "coco_format": {**params["coco_format"], "split_file": str(tmp_path / "split.json"),
                                                                  "features": str(tmp_path / "feats.npz")}}).coco_format
    sizes = convert(settings, tmp_path / "raw")
    assert sizes["test"][0] == 20 and sizes["dev"][0] == 20
    np.testing.assert_array_equal(np.load(tmp_path / "raw" / "test_ims.npy")[0], np.load(features / f"{lists['test'][0]}.npy"))


def test_errors_name_the_file_and_the_missing_id(own_data: tuple[Path, dict], tmp_path: Path) -> None:
    root, params = own_data
    settings = Params.model_validate(params).coco_format
    (tmp_path / "split.json").write_text(json.dumps({"train": [1000], "dev": [2000], "test": [999]}))
    with pytest.raises(HscError, match=r"split.json: image id 999 \(test\) has no caption"):
        convert(settings.model_copy(update={"split_file": str(tmp_path / "split.json")}), tmp_path / "raw")
    empty = tmp_path / "features"
    empty.mkdir()
    with pytest.raises(HscError, match=r"features: no features for image id 1000 \(expected 1000.npy\)"):
        convert(settings.model_copy(update={"features": str(empty)}), tmp_path / "raw")
    (tmp_path / "bad.json").write_text(json.dumps({"images": []}))
    with pytest.raises(HscError, match="bad.json: not a COCO caption file"):
        convert(settings.model_copy(update={"captions": [str(tmp_path / "bad.json")]}), tmp_path / "raw")
