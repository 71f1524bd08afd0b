"""Per-epoch training curves written with DVCLive (declared as DVC plots in dvc.yaml).

The history also lives in the ``last`` checkpoint, and the DVCLive directory is rewritten from
it when a run resumes: the curves then always match the weights they came with, even when a
crash fell between logging an epoch and saving its checkpoint.
"""

from __future__ import annotations

from pathlib import Path

from dvclive import Live


class Curves:
    """``<dir>/metrics.json`` (latest epoch) and ``<dir>/plots/metrics/**.tsv`` (per epoch)."""

    def __init__(self, directory: Path, history: list[dict[str, float]]) -> None:
        # dvcyaml=None: dvc.yaml is hand-written; save_dvc_exp=False: `dvc exp run` owns experiments.
        self.live = Live(dir=str(directory), resume=False, save_dvc_exp=False, dvcyaml=None)
        for record in history:
            self.log(record)

    def log(self, record: dict[str, float]) -> None:
        for name, value in record.items():
            if name != "epoch":
                self.live.log_metric(name, value)
        self.live.next_step()

    def close(self) -> None:
        self.live.end()
