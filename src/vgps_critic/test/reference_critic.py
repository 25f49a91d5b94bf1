"""Independent float64 numpy reference of the V-GPS critic forward pass (test oracle).

Written only from the project's fact sheet on the released V-GPS checkpoint (§3 parameter tree,
§4 forward pass, §5 ``get_q_values``). It deliberately uses no jax/flax and shares no code with
the package under test, so that agreement between the two is evidence rather than tautology.

Parameter layout (the release layout *under* ``modules_critic``)::

    {"encoder": {"encoder": {"conv_init": {"kernel": (7, 7, 5, F)},
                             "norm_init": {"scale": (F,), "bias": (F,)},
                             "ResNetBlock_i": {"Conv_0", "MyGroupNorm_0", "Conv_1",
                                               "MyGroupNorm_1"[, "conv_proj", "norm_proj"]},
                             "FilmConditioning_i": {"Dense_0", "Dense_1"}, ...}},
     "network": {"Dense_k": {"kernel": (E, in, out), "bias": (E, out)}, ...},
     "Dense_0": {"kernel": (M, 1), "bias": (1,)}}

Topology rule used by :func:`infer_topology` (documented because the file stores no config):
blocks are ``ResNetBlock_0 .. ResNetBlock_{N-1}`` in forward order. A *stage boundary* is a block
that has ``conv_proj`` (the shortcut changes shape). Block ``i`` uses stride 2 iff it has
``conv_proj`` and ``i > 0``; every other block, including block 0 even if it had a ``conv_proj``
(a width change at stride 1, which the release topology never has), uses stride 1. This matches the
release rule "stride 2 for the first block of stages 2-4" because those are exactly the blocks
with ``conv_proj`` (blocks 3, 7, 13 for ResNet-34).
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

GROUPS = 4
GN_EPS = 1e-5

_BLOCK_RE = re.compile(r"^ResNetBlock_(\d+)$")


# --------------------------------------------------------------------------------------------
# Elementary ops
# --------------------------------------------------------------------------------------------


def _f64(x: Any) -> np.ndarray:
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
    kernel = _f64(kernel)
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
    return y * _f64(scale) + _f64(bias)


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
    return x @ _f64(p["kernel"]) + _f64(p["bias"])


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


# --------------------------------------------------------------------------------------------
# Topology and forward pass
# --------------------------------------------------------------------------------------------


def _critic_root(params: dict) -> dict:
    """Accepts the tree under ``modules_critic`` or a dict that contains ``modules_critic``."""
    if "modules_critic" in params:
        return params["modules_critic"]
    return params


def infer_topology(params: dict) -> list[dict]:
    """Reads the block list from the parameter tree (see the module docstring for the rule).

    Args:
        params: Critic tree (under ``modules_critic``).

    Returns:
        One dict per block in forward order: {"index", "stride", "proj", "width"}.
    """
    enc = _critic_root(params)["encoder"]["encoder"]
    idx = sorted(int(m.group(1)) for k in enc if (m := _BLOCK_RE.match(k)))
    if idx != list(range(len(idx))):
        raise ValueError(f"ResNet blocks are not numbered 0..N-1: {idx}")
    blocks = []
    for i in idx:
        blk = enc[f"ResNetBlock_{i}"]
        proj = "conv_proj" in blk
        if f"FilmConditioning_{i}" not in enc:
            raise ValueError(f"FilmConditioning_{i} missing")
        blocks.append(
            {
                "index": i,
                "stride": 2 if (proj and i > 0) else 1,
                "proj": proj,
                "width": int(np.shape(blk["Conv_1"]["kernel"])[-1]),
            }
        )
    return blocks


def _language_rows(language: Any, batch: int, lang_dim: int) -> np.ndarray:
    """Normalises the language input to (1, D) or (B, D) float64."""
    lang = _f64(language)
    if lang.ndim == 1:
        lang = lang[None, :]
    if lang.ndim != 2 or lang.shape[0] not in (1, batch) or lang.shape[1] != lang_dim:
        raise ValueError(
            f"language must be ({lang_dim},), (1, {lang_dim}) or ({batch}, {lang_dim}); "
            f"got {np.shape(language)}"
        )
    return lang


def reference_encode(params: dict, image: np.ndarray, language: Any) -> np.ndarray:
    """Encoder: ResNet-v1 with FiLM, spatial coordinates and mean pooling.

    Args:
        params: Critic tree (under ``modules_critic``).
        image: uint8 (or float pixel values in [0, 255]) images (B, H, W, 3).
        language: Language embedding (D,), (1, D) or (B, D).

    Returns:
        Pooled features (B, F), float64, F = width of the last block.
    """
    enc = _critic_root(params)["encoder"]["encoder"]
    img = _f64(image)
    if img.ndim != 4 or img.shape[-1] != 3:
        raise ValueError(f"image must be (B, H, W, 3); got {img.shape}")
    b = img.shape[0]
    lang_dim = int(np.shape(enc["FilmConditioning_0"]["Dense_0"]["kernel"])[0])
    lang = _language_rows(language, b, lang_dim)

    x = img / 127.5 - 1.0
    x = add_coordinates(x)
    x = conv2d(x, enc["conv_init"]["kernel"], 2, ((3, 3), (3, 3)))
    x = swish(group_norm(x, enc["norm_init"]["scale"], enc["norm_init"]["bias"]))
    x = max_pool_same(x, 3, 2)

    for blk_info in infer_topology(params):
        i, s = blk_info["index"], blk_info["stride"]
        blk = enc[f"ResNetBlock_{i}"]
        y = conv2d_same(x, blk["Conv_0"]["kernel"], s)
        y = swish(group_norm(y, blk["MyGroupNorm_0"]["scale"], blk["MyGroupNorm_0"]["bias"]))
        y = conv2d_same(y, blk["Conv_1"]["kernel"], 1)
        y = group_norm(y, blk["MyGroupNorm_1"]["scale"], blk["MyGroupNorm_1"]["bias"])
        if blk_info["proj"]:
            sc = conv2d(x, blk["conv_proj"]["kernel"], s, ((0, 0), (0, 0)))
            sc = group_norm(sc, blk["norm_proj"]["scale"], blk["norm_proj"]["bias"])
        else:
            sc = x
        if sc.shape != y.shape:
            raise ValueError(f"block {i}: shortcut {sc.shape} vs residual {y.shape}")
        x = swish(sc + y)
        x = film(x, lang, enc[f"FilmConditioning_{i}"])

    return x.mean(axis=(1, 2))


def _mlp_layers(network: dict) -> list[dict]:
    """Ensemble MLP layers Dense_0..Dense_{K-1} in order."""
    n = len([k for k in network if re.match(r"^Dense_\d+$", k)])
    return [network[f"Dense_{k}"] for k in range(n)]


def reference_q(params: dict, image: np.ndarray, language: Any, actions: np.ndarray) -> np.ndarray:
    """Q-value of every ensemble member (float64).

    Args:
        params: Critic tree (under ``modules_critic``; a dict holding ``modules_critic`` also
            works).
        image: uint8 images (B, H, W, 3).
        language: Language embedding (D,), (1, D) or (B, D).
        actions: Critic-normalised actions (B, A); not clipped or rescaled here.

    Returns:
        Q of shape (E, B), one row per ensemble member.
    """
    root = _critic_root(params)
    feats = reference_encode(root, image, language)  # (B, F)
    act = _f64(actions)
    if act.ndim != 2 or act.shape[0] != feats.shape[0]:
        raise ValueError(f"actions must be (B={feats.shape[0]}, A); got {act.shape}")
    layers = _mlp_layers(root["network"])
    in_dim = int(np.shape(layers[0]["kernel"])[1])
    if feats.shape[1] + act.shape[1] != in_dim:
        raise ValueError(
            f"features {feats.shape[1]} + action {act.shape[1]} != MLP input {in_dim}"
        )
    h = np.concatenate([feats, act], axis=-1)  # (B, F + A)
    ens = int(np.shape(layers[0]["kernel"])[0])
    h = np.broadcast_to(h, (ens, *h.shape))  # same features for every member
    for layer in layers:
        h = swish(np.einsum("ebi,eio->ebo", h, _f64(layer["kernel"]))
                  + _f64(layer["bias"])[:, None, :])
    q = h @ _f64(root["Dense_0"]["kernel"]) + _f64(root["Dense_0"]["bias"])  # (E, B, 1)
    return q[..., 0]


def reference_get_q_values(
    params: dict, image: np.ndarray, language: Any, actions: np.ndarray
) -> np.ndarray:
    """What ``get_q_values`` returns: the minimum over ensemble members.

    The caller passes the *target* critic and already-normalised actions. Unlike the official
    function (which squeezes B = 1 to a 0-d scalar) this always returns shape (B,).

    Args:
        params: Critic tree (under ``modules_critic``).
        image: uint8 images (B, H, W, 3).
        language: Language embedding (D,), (1, D) or (B, D).
        actions: Critic-normalised actions (B, A).

    Returns:
        Q of shape (B,), float64.
    """
    return reference_q(params, image, language, actions).min(axis=0)


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
