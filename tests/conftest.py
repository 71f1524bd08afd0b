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
