"""Settings of the data side: which raw dataset, where it comes from, how it is generated
or converted, and how it is prepared. The app's params file holds them as sections; the
classes carry the sections' names because pydantic names the class in some messages
("Input should be a valid dictionary or instance of SyntheticParams")."""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

from hsc.data.datasets import DatasetName


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DownloadParams(_Section):
    """Where the raw SCAN-layout files come from (ignored for ``synthetic``)."""

    mirror: Optional[str] = None  # http(s)://, file:// URL, local zip or SCAN-layout directory
    timeout_s: float = Field(60.0, gt=0)
    retries: int = Field(5, ge=0)


class CocoFormatParams(_Section):
    """Your own data (dataset ``coco_format``): COCO caption files, a split file, region features."""

    captions: list[str] = []  # COCO-format caption JSON files ({"images", "annotations"}), read with pycocotools
    split_file: Optional[str] = None  # Karpathy's dataset_*.json, or {"train": [ids], "dev": [...], "test": [...]}
    features: Optional[str] = None  # a directory of <image_id>.npy (R, D), or one .h5 / .npz keyed by image id


class SyntheticParams(_Section):
    """Knobs of the generated SCAN-layout dataset (the embedded default)."""

    seed: int = 0
    n_train: int = Field(2000, ge=10)
    n_dev: int = Field(250, ge=5)
    n_test: int = Field(250, ge=5)
    regions: int = Field(16, ge=4)  # regions per image (SCAN: 36)
    feat_dim: int = Field(256, ge=16)  # region feature size (SCAN: 2048)
    n_objects: int = Field(40, ge=4)  # object categories
    n_attributes: int = Field(16, ge=2)
    n_relations: int = Field(10, ge=2)
    min_objects: int = Field(2, ge=1)
    max_objects: int = Field(4, ge=1)
    regions_per_object: int = Field(2, ge=1)
    noise: float = Field(0.35, ge=0)  # std of region noise relative to concept signal
    # Share of images made as a near-twin of another image of their split (each twin needs its own original).
    hard_negative_rate: float = Field(0.3, ge=0, le=0.5)


class RawDataParams(_Section):
    """Everything :func:`hsc.data.download.acquire` reads: the dataset and the settings of its source."""

    dataset: DatasetName = "synthetic"
    download: DownloadParams = DownloadParams()
    synthetic: SyntheticParams = SyntheticParams()
    coco_format: CocoFormatParams = CocoFormatParams()


class PrepareParams(_Section):
    """Vocabulary and HDF5 conversion."""

    vocab: str = "build"  # "build" from train+dev, or a path to a released SCAN vocab JSON
    min_count: int = Field(4, ge=1)
    dev_images: Optional[int] = Field(1000, ge=1)  # original loader's cut of dev; null keeps all
    feature_dtype: Literal["float32", "float16"] = "float32"
    phrases: bool = False  # entity and triple spans of every caption (SSAMT's phrase labels; the `phrases` extra)
