"""Random critic parameters in the V-GPS release layout (§3), and tree helpers for tests.

Part of the independent reference (:mod:`reference_critic`); no jax/flax.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from reference_ops import GROUPS

# A tiny topology with every feature of the release's (4 stages, projections, FiLM).
TINY = {"stage_sizes": (1, 1, 1, 1), "num_filters": 8}


# --------------------------------------------------------------------------------------------
# Random parameters in the release layout
# --------------------------------------------------------------------------------------------


def random_release_params(
    rng: np.random.Generator,
    stage_sizes: tuple[int, ...] = (3, 4, 6, 3),
    num_filters: int = 64,
    lang_dim: int = 512,
    action_dim: int = 7,
    mlp: tuple[int, ...] = (256, 256),
    ensemble: int = 2,
    perturb: bool = True,
) -> dict:
    """Builds a critic tree in the release layout (§3) with random float32 values.

    Conv kernels are HWIO and He-normal; Dense kernels (in, out). With ``perturb`` every norm,
    bias and FiLM layer is non-trivial (GroupNorm scale 1 + 0.1 N, biases 0.1 N, FiLM kernels
    0.02 N); without it they take their initial values (scale 1, biases 0, FiLM all zero =
    identity) and only conv/Dense kernels are random.

    Args:
        rng: Numpy generator.
        stage_sizes: Blocks per stage; (3, 4, 6, 3) is ResNet-34.
        num_filters: Width of the stem and stage 1; stage i has num_filters * 2**i.
        lang_dim: Language embedding size D (FiLM kernel rows).
        action_dim: Action size A.
        mlp: Ensemble MLP hidden widths.
        ensemble: Number of ensemble members E.
        perturb: Randomise norms, biases and FiLM layers.

    Returns:
        Nested dict {"encoder": {"encoder": ...}, "network": ..., "Dense_0": ...} of float32
        arrays (25,563,201 elements for the defaults).
    """

    def kern(shape: tuple[int, ...], fan_in: int, gain: float = 2.0) -> np.ndarray:
        return (rng.standard_normal(shape) * np.sqrt(gain / fan_in)).astype(np.float32)

    def vec(shape: tuple[int, ...], base: float, std: float) -> np.ndarray:
        if perturb:
            return (base + std * rng.standard_normal(shape)).astype(np.float32)
        return np.full(shape, base, dtype=np.float32)

    def norm(c: int) -> dict:
        return {"scale": vec((c,), 1.0, 0.1), "bias": vec((c,), 0.0, 0.1)}

    def film_dense(c: int) -> dict:
        if perturb:
            k = (0.02 * rng.standard_normal((lang_dim, c))).astype(np.float32)
        else:
            k = np.zeros((lang_dim, c), np.float32)
        return {"kernel": k, "bias": vec((c,), 0.0, 0.1)}

    if num_filters % GROUPS:
        raise ValueError("num_filters must be a multiple of 4 (GroupNorm with 4 groups)")
    enc: dict = {
        "conv_init": {"kernel": kern((7, 7, 5, num_filters), 7 * 7 * 5)},
        "norm_init": norm(num_filters),
    }
    cin = num_filters
    k = 0
    for stage, nblocks in enumerate(stage_sizes):
        width = num_filters * 2**stage
        for j in range(nblocks):
            blk = {
                "Conv_0": {"kernel": kern((3, 3, cin, width), 9 * cin)},
                "MyGroupNorm_0": norm(width),
                "Conv_1": {"kernel": kern((3, 3, width, width), 9 * width)},
                "MyGroupNorm_1": norm(width),
            }
            if stage > 0 and j == 0:
                blk["conv_proj"] = {"kernel": kern((1, 1, cin, width), cin)}
                blk["norm_proj"] = norm(width)
            enc[f"ResNetBlock_{k}"] = blk
            enc[f"FilmConditioning_{k}"] = {"Dense_0": film_dense(width),
                                            "Dense_1": film_dense(width)}
            cin = width
            k += 1

    network = {}
    fan = cin + action_dim
    for li, hidden in enumerate(mlp):
        network[f"Dense_{li}"] = {
            "kernel": kern((ensemble, fan, hidden), fan),
            "bias": vec((ensemble, hidden), 0.0, 0.1),
        }
        fan = hidden
    head = {"kernel": kern((fan, 1), fan, gain=1.0), "bias": vec((1,), 0.0, 0.1)}
    return {"encoder": {"encoder": enc}, "network": network, "Dense_0": head}


def count_params(tree: Any) -> int:
    """Total number of array elements in a nested dict/list tree (None leaves count 0).

    Args:
        tree: Nested dicts/lists/tuples of array-likes.

    Returns:
        Sum of element counts.
    """
    if tree is None:
        return 0
    if isinstance(tree, dict):
        return sum(count_params(v) for v in tree.values())
    if isinstance(tree, (list, tuple)):
        return sum(count_params(v) for v in tree)
    return int(np.size(tree))


def leaves(tree: Any, prefix: tuple = ()):
    """Yields ``(path, leaf)`` of a nested dict/list tree, depth first in key order."""
    if isinstance(tree, dict):
        for k, v in tree.items():
            yield from leaves(v, (*prefix, k))
    elif isinstance(tree, list):
        for i, v in enumerate(tree):
            yield from leaves(v, (*prefix, i))
    else:
        yield prefix, tree


def assert_bit_equal(a: Any, b: Any) -> None:
    """Same tree paths, and every leaf the same dtype, shape and bytes (None leaves alike)."""
    la, lb = list(leaves(a)), list(leaves(b))
    assert [p for p, _ in la] == [p for p, _ in lb]
    for (path, x), (_, y) in zip(la, lb, strict=True):
        if x is None:
            assert y is None, path
            continue
        assert isinstance(y, np.ndarray), path
        assert x.dtype == y.dtype and x.shape == y.shape, path
        assert x.tobytes() == y.tobytes(), path
