"""Elementary float64 numpy ops of the V-GPS critic's forward pass (test oracle).

Part of the independent reference (:mod:`reference_critic`): convolutions with SAME padding,
max-pool, GroupNorm, coordinate channels, Dense and FiLM, written from the fact sheet (§4) with
no jax/flax.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

GROUPS = 4
GN_EPS = 1e-5


# --------------------------------------------------------------------------------------------
# Elementary ops
# --------------------------------------------------------------------------------------------


def f64(x: Any) -> np.ndarray:
    """Converts any array-like (numpy, jax) to a float64 numpy array."""
    return np.asarray(x, dtype=np.float64)


def swish(x: np.ndarray) -> np.ndarray:
    """swish(x) = x * sigmoid(x), computed overflow-free.

    Args:
        x: Array of any shape.

    Returns:
        Array of the same shape.
    """
    return x * (0.5 * (1.0 + np.tanh(0.5 * x)))


def same_padding(n: int, k: int, s: int) -> tuple[int, int]:
    """TF/flax "SAME" padding split for one spatial dimension.

    total = max((out - 1) * s + k - n, 0) with out = ceil(n / s); floor(total / 2) goes before,
    the rest after. Stride 1, k 3 -> (1, 1); stride 2, k 3, even n -> (0, 1).

    Args:
        n: Input size.
        k: Window size.
        s: Stride.

    Returns:
        (pad_before, pad_after).
    """
    out = -(-n // s)
    total = max((out - 1) * s + k - n, 0)
    return total // 2, total - total // 2


def conv2d(
    x: np.ndarray,
    kernel: np.ndarray,
    stride: int,
    padding: tuple[tuple[int, int], tuple[int, int]],
) -> np.ndarray:
    """2-D cross-correlation (flax ``nn.Conv`` semantics), no bias.

    Args:
        x: Input (B, H, W, C_in), float64.
        kernel: HWIO kernel (kh, kw, C_in, C_out).
        stride: Same stride on both spatial axes.
        padding: ((top, bottom), (left, right)) zero padding.

    Returns:
        Output (B, H_out, W_out, C_out) with H_out = (H + top + bottom - kh) // stride + 1.
    """
    kernel = f64(kernel)
    kh, kw, cin, cout = kernel.shape
    if x.shape[-1] != cin:
        raise ValueError(f"conv input has {x.shape[-1]} channels, kernel expects {cin}")
    xp = np.pad(x, ((0, 0), padding[0], padding[1], (0, 0)))
    # windows: (B, Ho, Wo, C_in, kh, kw) after subsampling by the stride.
    win = sliding_window_view(xp, (kh, kw), axis=(1, 2))[:, ::stride, ::stride]
    b, ho, wo = win.shape[:3]
    cols = np.ascontiguousarray(win).reshape(b * ho * wo, cin * kh * kw)
    wmat = kernel.transpose(2, 0, 1, 3).reshape(cin * kh * kw, cout)
    return (cols @ wmat).reshape(b, ho, wo, cout)


def conv2d_same(x: np.ndarray, kernel: np.ndarray, stride: int) -> np.ndarray:
    """Convolution with "SAME" padding (see :func:`same_padding`).

    Args:
        x: Input (B, H, W, C_in).
        kernel: HWIO kernel (kh, kw, C_in, C_out).
        stride: Stride.

    Returns:
        Output (B, ceil(H / stride), ceil(W / stride), C_out).
    """
    kh, kw = np.shape(kernel)[:2]
    ph = same_padding(x.shape[1], kh, stride)
    pw = same_padding(x.shape[2], kw, stride)
    return conv2d(x, kernel, stride, (ph, pw))


def max_pool_same(x: np.ndarray, k: int = 3, s: int = 2) -> np.ndarray:
    """Max-pool k x k, stride s, "SAME" padding with -inf.

    Args:
        x: Input (B, H, W, C).
        k: Window size.
        s: Stride.

    Returns:
        Output (B, ceil(H / s), ceil(W / s), C).
    """
    ph = same_padding(x.shape[1], k, s)
    pw = same_padding(x.shape[2], k, s)
    xp = np.pad(x, ((0, 0), ph, pw, (0, 0)), constant_values=-np.inf)
    win = sliding_window_view(xp, (k, k), axis=(1, 2))[:, ::s, ::s]
    return win.max(axis=(-2, -1))


def group_norm(
    x: np.ndarray,
    scale: np.ndarray,
    bias: np.ndarray,
    groups: int = GROUPS,
    eps: float = GN_EPS,
) -> np.ndarray:
    """GroupNorm over contiguous channel groups, per sample.

    Statistics over H, W and the channels of a group; biased variance E[x^2] - E[x]^2 clipped at
    0; y = (x - mean) / sqrt(var + eps) * scale + bias.

    Args:
        x: Input (B, H, W, C), C divisible by ``groups``.
        scale: Per-channel scale (C,).
        bias: Per-channel bias (C,).
        groups: Number of groups (4 in V-GPS).
        eps: Epsilon (1e-5 in V-GPS).

    Returns:
        Normalised array (B, H, W, C).
    """
    b, h, w, c = x.shape
    if c % groups:
        raise ValueError(f"{c} channels not divisible into {groups} groups")
    xg = x.reshape(b, h, w, groups, c // groups)
    mean = xg.mean(axis=(1, 2, 4), keepdims=True)
    var = np.maximum((xg * xg).mean(axis=(1, 2, 4), keepdims=True) - mean * mean, 0.0)
    y = ((xg - mean) / np.sqrt(var + eps)).reshape(b, h, w, c)
    return y * f64(scale) + f64(bias)


def add_coordinates(x: np.ndarray) -> np.ndarray:
    """Appends the row and column coordinate channels after the existing channels.

    Channel C = row coordinate (-1 on the top row ... +1 on the bottom row), channel C + 1 =
    column coordinate (-1 left ... +1 right), i.e. ``np.linspace(-1, 1, n)``.

    Args:
        x: Input (B, H, W, C).

    Returns:
        (B, H, W, C + 2).
    """
    b, h, w, _ = x.shape
    rows = np.broadcast_to(np.linspace(-1.0, 1.0, h)[:, None], (h, w))
    cols = np.broadcast_to(np.linspace(-1.0, 1.0, w)[None, :], (h, w))
    coords = np.broadcast_to(np.stack([rows, cols], axis=-1), (b, h, w, 2))
    return np.concatenate([x, coords], axis=-1)


def dense(x: np.ndarray, p: dict) -> np.ndarray:
    """Dense layer y = x @ kernel + bias.

    Args:
        x: Input (..., in).
        p: {"kernel": (in, out), "bias": (out,)}.

    Returns:
        (..., out).
    """
    return x @ f64(p["kernel"]) + f64(p["bias"])


def film(x: np.ndarray, lang: np.ndarray, p: dict) -> np.ndarray:
    """FiLM: out = x * (1 + Dense_0(l)) + Dense_1(l), broadcast over H and W.

    Args:
        x: Feature map (B, H, W, C).
        lang: Language vectors (1, D) or (B, D).
        p: {"Dense_0": {kernel (D, C), bias (C,)}, "Dense_1": {...}}.

    Returns:
        (B, H, W, C).
    """
    mult = dense(lang, p["Dense_0"])[:, None, None, :]
    add = dense(lang, p["Dense_1"])[:, None, None, :]
    return x * (1.0 + mult) + add
