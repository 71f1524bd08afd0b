"""Fail when a protocol's rsum falls below the committed baseline minus its tolerance.

Usage: check_metrics.py METRICS_JSON BASELINE_JSON [--update]
The baseline holds {"tolerance": T, "rsum": {protocol: value}}; --update rewrites the values
from METRICS_JSON (keeping T), for a change that moves the figures on purpose.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    metrics_path, baseline_path = Path(argv[0]), Path(argv[1])
    metrics = json.loads(metrics_path.read_text())
    baseline = json.loads(baseline_path.read_text())
    # Protocols with an rsum (ECCV Caption and CxC report other metrics).
    current = {protocol: values["rsum"] for protocol, values in metrics.items() if "rsum" in values}
    if "--update" in argv:
        baseline["rsum"] = current
        baseline_path.write_text(json.dumps(baseline, indent=2, sort_keys=True) + "\n")
        print(f"{baseline_path}: baseline updated to {current}")
        return 0
    tolerance = baseline["tolerance"]
    failed = False
    for protocol, expected in sorted(baseline["rsum"].items()):
        got = current.get(protocol)
        ok = got is not None and got >= expected - tolerance
        failed |= not ok
        print(f"{'ok  ' if ok else 'FAIL'} {protocol}: rsum {got} (baseline {expected}, tolerance {tolerance})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
