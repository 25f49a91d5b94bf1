"""Independent float64 numpy reference of the V-GPS critic forward pass (test oracle).

The elementary ops are :mod:`reference_ops`; random parameters in the release layout are
:mod:`reference_params`.

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
from reference_ops import (
    add_coordinates,
    conv2d,
    conv2d_same,
    f64,
    film,
    group_norm,
    max_pool_same,
    swish,
)

_BLOCK_RE = re.compile(r"^ResNetBlock_(\d+)$")


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
    lang = f64(language)
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
    img = f64(image)
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
    act = f64(actions)
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
        h = swish(np.einsum("ebi,eio->ebo", h, f64(layer["kernel"]))
                  + f64(layer["bias"])[:, None, :])
    q = h @ f64(root["Dense_0"]["kernel"]) + f64(root["Dense_0"]["bias"])  # (E, B, 1)
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
