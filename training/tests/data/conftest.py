"""Fixtures of the RLDS data-layer tests: the real Bridge slice, a synthetic Fractal dataset."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# Tests only: silence TensorFlow's C++ start-up notices (must precede the first TF import).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

REPO = Path(__file__).resolve().parents[3]
BRIDGE_DIR = REPO.parent / "shared" / "data" / "bridge_debug" / "bridge_dataset" / "1.0.0"


@pytest.fixture(scope="session")
def bridge_path() -> Path:
    """The 25-episode BridgeData V2 slice (64x64 images); skipped where it is absent."""
    if not (BRIDGE_DIR / "dataset_info.json").exists():
        pytest.skip(f"Bridge debug slice not found at {BRIDGE_DIR} (expected beside the repo in "
                    "../shared/data/bridge_debug/bridge_dataset/1.0.0)")
    return BRIDGE_DIR


@pytest.fixture(scope="session")
def fractal_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic 8-episode dataset in the fractal20220817_data schema (256x320 JPEGs)."""
    from vgps_training.data.synthetic import write_synthetic_fractal

    return write_synthetic_fractal(tmp_path_factory.mktemp("fractal"), num_episodes=8, seed=0)


@pytest.fixture(scope="session")
def stats_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A per-session dataset-statistics cache directory."""
    return tmp_path_factory.mktemp("stats_cache")
