"""Typed configuration of the critic architecture and its action space.

Both dataclasses are written verbatim into a checkpoint's card (``card.json``) and validated on
construction, so a bad value is reported with the field that holds it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

BRIDGE_ACTION_NAMES = ("dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper")

# Per-dimension min/max used by the paper's deployment to rescale actions to [-1, 1].
BRIDGE_BOUNDS = (
    (-0.05, -0.05, -0.05, -0.25, -0.25, -0.25, 0.0),
    (0.05, 0.05, 0.05, 0.25, 0.25, 0.25, 1.0),
)
FRACTAL_BOUNDS = (
    (-2.02045202, -5.49789953, -2.03166342, -1.56991792, -1.56989217, -1.57041943, 0.0),
    (2.99845934, 22.09052849, 2.75075245, 1.57063651, 1.53210866, 1.56915224, 1.0),
)
IDENTITY_BOUNDS = ((-1.0,) * 7, (1.0,) * 7)
NAMED_BOUNDS = {"bridge": BRIDGE_BOUNDS, "fractal": FRACTAL_BOUNDS, "identity": IDENTITY_BOUNDS}

# The paper clips normalised actions to +-(1 - 1e-5) before scoring them.
ACTION_CLIP = 1.0 - 1e-5


def _err(cls: str, field: str, value: Any, why: str) -> ValueError:
    return ValueError(f"{cls}.{field}={value!r}: {why}")


@dataclasses.dataclass(frozen=True)
class CriticConfig:
    """Architecture of the FiLM-ResNet Q-network.

    Defaults are the paper's critic (``resnetv1-34-bridge-film``): 25,563,201 parameters.
    """

    stage_sizes: tuple[int, ...] = (3, 4, 6, 3)  # basic residual blocks per stage
    num_filters: int = 64  # width of the first stage; doubles at every stage
    image_size: tuple[int, int] = (256, 256)  # (height, width) the critic expects
    language_dim: int = 512  # width of the language embedding fed to every FiLM layer
    action_dim: int = 7
    mlp_hidden: tuple[int, ...] = (256, 256)  # per-member MLP after pooling
    ensemble_size: int = 2  # members of the clipped-double-Q ensemble
    ensemble_reduction: str = "min"  # how deployment reduces the members: min | mean
    num_groups: int = 4  # GroupNorm groups everywhere
    norm_epsilon: float = 1e-5
    spatial_coordinates: bool = True  # append (row, column) coordinate channels
    film: bool = True  # FiLM language conditioning after every residual block
    activation: str = "swish"
    pooling: str = "avg"

    def __post_init__(self) -> None:
        name = type(self).__name__
        object.__setattr__(self, "stage_sizes", tuple(int(s) for s in self.stage_sizes))
        object.__setattr__(self, "image_size", tuple(int(s) for s in self.image_size))
        object.__setattr__(self, "mlp_hidden", tuple(int(s) for s in self.mlp_hidden))
        if not self.stage_sizes or any(s < 1 for s in self.stage_sizes):
            raise _err(name, "stage_sizes", self.stage_sizes, "need at least one stage, each >= 1")
        if self.num_filters < self.num_groups or self.num_filters % self.num_groups:
            raise _err(name, "num_filters", self.num_filters,
                       f"must be a positive multiple of num_groups={self.num_groups}")
        if len(self.image_size) != 2 or min(self.image_size) < 8:
            raise _err(name, "image_size", self.image_size, "need (height, width), each >= 8")
        for field in ("language_dim", "action_dim", "ensemble_size", "num_groups"):
            if int(getattr(self, field)) < 1:
                raise _err(name, field, getattr(self, field), "must be >= 1")
        if not self.mlp_hidden or min(self.mlp_hidden) < 1:
            raise _err(name, "mlp_hidden", self.mlp_hidden, "need at least one layer, each >= 1")
        if self.ensemble_reduction not in ("min", "mean"):
            raise _err(name, "ensemble_reduction", self.ensemble_reduction, "use 'min' or 'mean'")
        if self.activation != "swish":
            raise _err(name, "activation", self.activation, "only 'swish' is implemented")
        if self.pooling != "avg":
            raise _err(name, "pooling", self.pooling, "only 'avg' is implemented")
        if not self.norm_epsilon > 0:
            raise _err(name, "norm_epsilon", self.norm_epsilon, "must be > 0")

    @property
    def feature_dim(self) -> int:
        """Width of the pooled image features (the last stage's width)."""
        return self.num_filters * 2 ** (len(self.stage_sizes) - 1)

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v
                for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CriticConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown CriticConfig fields {unknown}; known: {sorted(known)}")
        return cls(**data)


# Small named architectures for tests, simulation critics and the paper's.
PRESETS: dict[str, CriticConfig] = {
    "paper": CriticConfig(),
    "sim": CriticConfig(stage_sizes=(1, 1, 1, 1), num_filters=16, image_size=(64, 64),
                        language_dim=384),
    "tiny": CriticConfig(stage_sizes=(1, 1), num_filters=8, image_size=(32, 32),
                         language_dim=384, mlp_hidden=(32, 32)),
}


@dataclasses.dataclass(frozen=True)
class ActionSpace:
    """Robot-side action space and the per-dimension bounds the critic normalises with.

    Actions in the robot space are mapped to [-1, 1] with ``2 (a - low) / (high - low) - 1``
    and clipped to +-(1 - 1e-5), exactly as the paper's deployment does.
    """

    low: tuple[float, ...] = BRIDGE_BOUNDS[0]
    high: tuple[float, ...] = BRIDGE_BOUNDS[1]
    names: tuple[str, ...] = BRIDGE_ACTION_NAMES
    convention: str = "bridge_delta_ee"  # base-frame EE deltas + gripper in [0, 1], 1 = open

    def __post_init__(self) -> None:
        name = type(self).__name__
        object.__setattr__(self, "low", tuple(float(v) for v in self.low))
        object.__setattr__(self, "high", tuple(float(v) for v in self.high))
        object.__setattr__(self, "names", tuple(str(v) for v in self.names))
        if len(self.low) != len(self.high) or len(self.low) != len(self.names):
            raise _err(name, "low/high/names", (len(self.low), len(self.high), len(self.names)),
                       "must have the same length")
        if not all(np.isfinite(self.low)) or not all(np.isfinite(self.high)):
            raise _err(name, "low/high", (self.low, self.high), "bounds must be finite")
        bad = [n for n, lo, hi in zip(self.names, self.low, self.high) if not hi > lo]
        if bad:
            raise _err(name, "high", self.high,
                       f"must exceed low in every dimension; not in {bad}")

    @property
    def dim(self) -> int:
        return len(self.low)

    @classmethod
    def named(cls, preset: str) -> ActionSpace:
        """``bridge``, ``fractal`` or ``identity`` (actions already in [-1, 1])."""
        if preset not in NAMED_BOUNDS:
            raise ValueError(
                f"unknown action bounds {preset!r}; choose from {sorted(NAMED_BOUNDS)}")
        low, high = NAMED_BOUNDS[preset]
        return cls(low=low, high=high)

    @classmethod
    def from_bounds(cls, low: Sequence[float], high: Sequence[float]) -> ActionSpace:
        names = (BRIDGE_ACTION_NAMES if len(low) == 7
                 else tuple(f"a{i}" for i in range(len(low))))
        return cls(low=tuple(low), high=tuple(high), names=names)

    def normalize(self, actions: np.ndarray) -> np.ndarray:
        """Robot-space actions (K, A) -> critic space (K, A) in [-1 + 1e-5, 1 - 1e-5]."""
        low = np.asarray(self.low, np.float32)
        high = np.asarray(self.high, np.float32)
        scaled = 2.0 * (np.asarray(actions, np.float32) - low) / (high - low) - 1.0
        return np.clip(scaled, -ACTION_CLIP, ACTION_CLIP).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {"convention": self.convention, "names": list(self.names),
                "low": list(self.low), "high": list(self.high)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ActionSpace:
        return cls(low=tuple(data["low"]), high=tuple(data["high"]),
                   names=tuple(data.get("names", BRIDGE_ACTION_NAMES)),
                   convention=data.get("convention", "bridge_delta_ee"))
