"""Peak memory and throughput of the prepare stage on a features file larger than 1 GB.

Method: write a synthetic SCAN-layout directory whose train features are IMAGES x 36 x 2048
float32 (4,000 images: 1.18 GB), with 5 captions per image and tiny dev/test splits.
Run the prepare stage on it in a fresh subprocess, then report that child's peak resident
set (``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss``) against the features file size, and
the stage's throughput as features bytes / wall time of the whole subprocess (start-up,
tokenising, hashing and the HDF5 copy included). All files live in a temporary directory
that is deleted at the end.

Linux starts a child's maxrss at its parent's peak (subprocess spawns by vfork), so this
script must itself stay small: it writes the features one small block at a time, each
through its own ``open_memmap`` mapping, because pages written through one long-lived
mapping would stay resident and push its peak towards the file size.

    .venv/bin/python benchmarks/bench_prepare.py [--images 4000]
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REGIONS, DIM = 36, 2048
WRITE_BLOCK = 32  # images written per block (9 MB)
REPO = Path(__file__).resolve().parents[1]
STAGE = "from hsc_app.stages.prepare import app; app()"


def write_split(raw: Path, split: str, n_images: int, rng: np.random.Generator) -> int:
    """A SCAN-layout split of random features and 5 captions per image; returns the features file size."""
    path = raw / f"{split}_ims.npy"
    np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n_images, REGIONS, DIM))  # header only
    for start in range(0, n_images, WRITE_BLOCK):
        stop = min(start + WRITE_BLOCK, n_images)
        block = np.lib.format.open_memmap(path, mode="r+")
        block[start:stop] = rng.random((stop - start, REGIONS, DIM), dtype=np.float32)
        del block  # unmapped: its written pages leave this process's resident set
    words = np.array("a man woman dog runs sits on the grass with red ball near street".split())
    lines = (" ".join(rng.choice(words, 9)) + " ." for _ in range(5 * n_images))
    (raw / f"{split}_caps.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path.stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=4000, help="train images (36 x 2048 float32 each)")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(prefix="bench_prepare_") as tmp:
        raw, out = Path(tmp) / "raw", Path(tmp) / "prepared"
        raw.mkdir()
        size = write_split(raw, "train", args.images, rng)
        for split in ("dev", "test"):
            write_split(raw, split, 10, rng)
        (Path(tmp) / "params.yaml").write_text("prepare:\n  dev_images: null\n", encoding="utf-8")
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", STAGE, "--params", str(Path(tmp) / "params.yaml"),
                        "--raw", str(raw), "--out", str(out)], cwd=REPO, check=True, stdout=subprocess.DEVNULL)
        seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024  # Linux reports KiB
    own_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(f"train features file: {size / 1e6:,.0f} MB ({args.images} x {REGIONS} x {DIM} float32)")
    print(f"prepare peak RSS:    {peak / 1e6:,.0f} MB ({100 * peak / size:.1f}% of the features file)")
    print(f"(this script's own peak RSS, a floor for the figure above: {own_peak / 1e6:,.0f} MB)")
    print(f"prepare wall time:   {seconds:.1f} s -> {size / 1e6 / seconds:,.0f} MB/s of features")


if __name__ == "__main__":
    main()
