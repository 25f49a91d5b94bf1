"""Self-tests of the independent numpy oracle (reference_critic, reference_ops, reference_params).

The release checkpoint writers (release_layout) are tested in test_release_writers.py.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from reference_critic import (
    infer_topology,
    reference_encode,
    reference_get_q_values,
    reference_q,
)
from reference_ops import (
    add_coordinates,
    conv2d,
    conv2d_same,
    film,
    group_norm,
    max_pool_same,
    same_padding,
    swish,
)
from reference_params import TINY, count_params, leaves, random_release_params


def _inputs(rng, b, h=32, w=32, a=7, d=512):
    img = rng.integers(0, 256, size=(b, h, w, 3), dtype=np.uint8)
    lang = rng.standard_normal((1, d)).astype(np.float32)
    act = rng.uniform(-1, 1, size=(b, a)).astype(np.float32)
    return img, lang, act


# ---------------------------------------------------------------------------- parameter tree


def test_release_param_count_and_subtotals():
    p = random_release_params(np.random.default_rng(0))
    assert count_params(p) == 25_563_201
    enc = p["encoder"]["encoder"]
    assert count_params(p["encoder"]) == 25_165_120
    assert count_params({k: v for k, v in enc.items() if k.startswith("Film")}) == 3_874_176
    assert count_params(p["network"]) == 397_824
    assert count_params(p["Dense_0"]) == 257
    assert {k for k, v in enc.items() if "conv_proj" in v} == {
        "ResNetBlock_3", "ResNetBlock_7", "ResNetBlock_13"}
    assert enc["conv_init"]["kernel"].shape == (7, 7, 5, 64)
    assert enc["ResNetBlock_13"]["Conv_0"]["kernel"].shape == (3, 3, 256, 512)
    assert enc["ResNetBlock_13"]["conv_proj"]["kernel"].shape == (1, 1, 256, 512)
    assert enc["FilmConditioning_15"]["Dense_1"]["kernel"].shape == (512, 512)
    assert p["network"]["Dense_0"]["kernel"].shape == (2, 519, 256)
    assert p["network"]["Dense_1"]["bias"].shape == (2, 256)
    assert p["Dense_0"]["kernel"].shape == (256, 1) and p["Dense_0"]["bias"].shape == (1,)
    assert all(x.dtype == np.float32 for _, x in leaves(p))
    topo = infer_topology(p)
    assert [t["index"] for t in topo if t["stride"] == 2] == [3, 7, 13]
    assert [t["width"] for t in topo] == [64] * 3 + [128] * 4 + [256] * 6 + [512] * 3


def test_count_params_handles_none_and_lists():
    assert count_params({"a": np.zeros((2, 3)), "b": [np.zeros(4), None], "c": {}}) == 10


# ---------------------------------------------------------------------------- elementary ops


def test_same_padding_split():
    assert same_padding(16, 3, 1) == (1, 1)
    assert same_padding(16, 3, 2) == (0, 1)  # stride 2 on even size: 0 before, 1 after
    assert same_padding(7, 3, 2) == (1, 1)
    assert same_padding(8, 1, 2) == (0, 0)
    assert same_padding(32, 3, 2) == (0, 1)


def test_stride2_conv_sampling_grid():
    # SAME stride 2 on an even size pads (0, 1): output i's window covers input rows 2i..2i+2,
    # so the centre tap samples rows/cols 1, 3, 5 (symmetric padding=1 would give 0, 2, 4).
    x = np.arange(36, dtype=np.float64).reshape(1, 6, 6, 1) + 1.0
    k = np.zeros((3, 3, 1, 1))
    k[1, 1, 0, 0] = 1.0
    np.testing.assert_array_equal(conv2d_same(x, k, 2)[0, :, :, 0], x[0, 1::2, 1::2, 0])
    # Top-left tap: rows/cols 0, 2, 4 (nothing padded before).
    k2 = np.zeros((3, 3, 1, 1))
    k2[0, 0, 0, 0] = 1.0
    np.testing.assert_array_equal(conv2d_same(x, k2, 2)[0, :, :, 0], x[0, 0::2, 0::2, 0])
    # Bottom-right tap of the last output hits the one-pixel zero pad after.
    k3 = np.zeros((3, 3, 1, 1))
    k3[2, 2, 0, 0] = 1.0
    y3 = conv2d_same(x, k3, 2)[0, :, :, 0]
    assert y3[2, 2] == 0.0 and y3[1, 1] == x[0, 4, 4, 0] and y3[0, 2] == 0.0
    # 1x1 stride-2 projection (no padding) samples rows/cols 0, 2, 4.
    np.testing.assert_array_equal(
        conv2d(x, np.ones((1, 1, 1, 1)), 2, ((0, 0), (0, 0)))[0, :, :, 0], x[0, ::2, ::2, 0])


def test_conv2d_matches_naive_loop():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 7, 6, 3))
    k = rng.standard_normal((3, 2, 3, 4))
    pad = ((1, 2), (0, 1))
    y = conv2d(x, k, 2, pad)
    xp = np.pad(x, ((0, 0), pad[0], pad[1], (0, 0)))
    ho = (xp.shape[1] - 3) // 2 + 1
    wo = (xp.shape[2] - 2) // 2 + 1
    ref = np.zeros((2, ho, wo, 4))
    for b in range(2):
        for i in range(ho):
            for j in range(wo):
                patch = xp[b, 2 * i:2 * i + 3, 2 * j:2 * j + 2, :]
                ref[b, i, j] = np.einsum("hwc,hwco->o", patch, k)
    np.testing.assert_allclose(y, ref, atol=1e-12)


def test_stem_output_size():
    x = np.zeros((1, 64, 64, 5))
    y = conv2d(x, np.zeros((7, 7, 5, 4)), 2, ((3, 3), (3, 3)))
    assert y.shape == (1, 32, 32, 4)
    assert max_pool_same(y, 3, 2).shape == (1, 16, 16, 4)
    x = np.zeros((1, 256, 256, 5))
    y = conv2d(x, np.zeros((7, 7, 5, 4)), 2, ((3, 3), (3, 3)))
    assert y.shape == (1, 128, 128, 4) and max_pool_same(y).shape == (1, 64, 64, 4)


def test_max_pool_pads_with_minus_inf():
    x = -10.0 - np.arange(16, dtype=np.float64).reshape(1, 4, 4, 1)  # all negative
    y = max_pool_same(x, 3, 2)[0, :, :, 0]
    # pads (0, 1): windows rows {0,1,2} and {2,3,pad}; the pad must never win.
    np.testing.assert_array_equal(y, [[x[0, 0, 0, 0], x[0, 0, 2, 0]],
                                      [x[0, 2, 0, 0], x[0, 2, 2, 0]]])


def test_group_norm_hand_formula():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 2, 3, 8)) * 3 + 1
    scale = rng.standard_normal(8)
    bias = rng.standard_normal(8)
    y = group_norm(x, scale, bias)
    for b in range(2):
        for g in range(4):
            chans = [2 * g, 2 * g + 1]  # contiguous groups of C/4 = 2
            v = x[b][..., chans]
            m = v.sum() / v.size
            var = ((v - m) ** 2).sum() / v.size  # biased
            for c in chans:
                exp = (x[b, ..., c] - m) / np.sqrt(var + 1e-5) * scale[c] + bias[c]
                np.testing.assert_allclose(y[b, ..., c], exp, atol=1e-12)
    # Constant input: variance 0, output = bias exactly (eps keeps it finite).
    yc = group_norm(np.full((1, 2, 2, 4), 3.0), np.ones(4), np.arange(4.0))
    np.testing.assert_allclose(yc[0, 0, 0], np.arange(4.0), atol=1e-12)


def test_coordinate_channels():
    x = np.zeros((2, 4, 5, 3))
    y = add_coordinates(x)
    assert y.shape == (2, 4, 5, 5)
    row, col = y[0, ..., 3], y[0, ..., 4]
    np.testing.assert_array_equal(row[0], -1.0)
    np.testing.assert_array_equal(row[-1], 1.0)
    np.testing.assert_array_equal(col[:, 0], -1.0)
    np.testing.assert_array_equal(col[:, -1], 1.0)
    np.testing.assert_allclose(row[:, 2], [-1, -1 / 3, 1 / 3, 1])
    np.testing.assert_allclose(col[1], [-1, -0.5, 0, 0.5, 1])
    np.testing.assert_array_equal(y[1, ..., 3:], y[0, ..., 3:])


def test_swish():
    x = np.array([-800.0, -1.0, 0.0, 2.0, 800.0])
    np.testing.assert_allclose(swish(x), x / (1 + np.exp(-np.clip(x, -50, 50))), atol=1e-12)
    assert np.all(np.isfinite(swish(x)))


def test_film_roles_and_identity():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 3, 4))
    lang = rng.standard_normal((1, 5))
    zero = {"Dense_0": {"kernel": np.zeros((5, 4)), "bias": np.zeros(4)},
            "Dense_1": {"kernel": np.zeros((5, 4)), "bias": np.zeros(4)}}
    np.testing.assert_array_equal(film(x, lang, zero), x)
    p = {"Dense_0": {"kernel": np.zeros((5, 4)), "bias": np.full(4, 0.5)},
         "Dense_1": {"kernel": np.zeros((5, 4)), "bias": np.full(4, 2.0)}}
    np.testing.assert_allclose(film(x, lang, p), x * 1.5 + 2.0, atol=1e-12)


# ---------------------------------------------------------------------------- full forward


def test_tiny_forward_shape_finite_and_language_forms(tiny_params):
    rng = np.random.default_rng(4)
    img, lang, act = _inputs(rng, 3)
    q = reference_q(tiny_params, img, lang, act)
    assert q.shape == (2, 3) and q.dtype == np.float64 and np.all(np.isfinite(q))
    assert not np.allclose(q[0], q[1])  # members differ
    q1 = reference_q(tiny_params, img, lang[0], act)
    qb = reference_q(tiny_params, img, np.repeat(lang, 3, axis=0), act)
    np.testing.assert_allclose(q1, q, rtol=0, atol=1e-12)
    np.testing.assert_allclose(qb, q, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(reference_get_q_values(tiny_params, img, lang, act), q.min(0))
    # Rows are independent: a single row equals its row in the batch.
    q_single = reference_q(tiny_params, img[1:2], lang, act[1:2])
    np.testing.assert_allclose(q_single[:, 0], q[:, 1], atol=1e-12)
    # Float pixels give the same as uint8.
    np.testing.assert_allclose(reference_q(tiny_params, img.astype(np.float32), lang, act), q,
                               atol=1e-12)


def test_tiny_forward_depends_on_every_input(tiny_params):
    rng = np.random.default_rng(5)
    img, lang, act = _inputs(rng, 2)
    q = reference_q(tiny_params, img, lang, act)
    assert not np.allclose(reference_q(tiny_params, img, -lang, act), q)
    assert not np.allclose(reference_q(tiny_params, img, lang, -act), q)
    assert not np.allclose(reference_q(tiny_params, 255 - img, lang, act), q)


def test_film_zero_params_is_identity_in_full_model(tiny_params):
    rng = np.random.default_rng(6)
    img, lang, act = _inputs(rng, 2)
    p = json_free_copy(tiny_params)
    for k, v in p["encoder"]["encoder"].items():
        if k.startswith("FilmConditioning_"):
            for d in v.values():
                d["kernel"][...] = 0
                d["bias"][...] = 0
    q_a = reference_q(p, img, lang, act)
    q_b = reference_q(p, img, 5 * rng.standard_normal(512), act)
    np.testing.assert_allclose(q_a, q_b, atol=1e-12)


def json_free_copy(tree):
    """Deep copy of a dict tree of arrays."""
    if isinstance(tree, dict):
        return {k: json_free_copy(v) for k, v in tree.items()}
    return np.array(tree, copy=True)


def test_encoder_hand_composed_tiny_case():
    """Recomputes the tiny encoder by hand from the elementary ops, block by block."""
    rng = np.random.default_rng(7)
    p = random_release_params(rng, stage_sizes=(1, 1), num_filters=4, lang_dim=3, action_dim=2,
                              mlp=(5,), ensemble=3)
    enc = p["encoder"]["encoder"]
    img = rng.integers(0, 256, size=(2, 16, 16, 3), dtype=np.uint8)
    lang = rng.standard_normal(3)
    act = rng.standard_normal((2, 2))

    x = img.astype(np.float64) / 127.5 - 1
    x = add_coordinates(x)
    x = conv2d(x, enc["conv_init"]["kernel"], 2, ((3, 3), (3, 3)))  # 8x8
    x = swish(group_norm(x, **enc["norm_init"]))
    x = max_pool_same(x)  # 4x4
    b0 = enc["ResNetBlock_0"]
    assert "conv_proj" not in b0
    y = swish(group_norm(conv2d(x, b0["Conv_0"]["kernel"], 1, ((1, 1), (1, 1))),
                         **b0["MyGroupNorm_0"]))
    y = group_norm(conv2d(y, b0["Conv_1"]["kernel"], 1, ((1, 1), (1, 1))), **b0["MyGroupNorm_1"])
    x = swish(x + y)
    f0 = enc["FilmConditioning_0"]
    x = x * (1 + lang @ f0["Dense_0"]["kernel"] + f0["Dense_0"]["bias"]) + (
        lang @ f0["Dense_1"]["kernel"] + f0["Dense_1"]["bias"])
    b1 = enc["ResNetBlock_1"]
    y = swish(group_norm(conv2d(x, b1["Conv_0"]["kernel"], 2, ((0, 1), (0, 1))),
                         **b1["MyGroupNorm_0"]))  # 2x2
    y = group_norm(conv2d(y, b1["Conv_1"]["kernel"], 1, ((1, 1), (1, 1))), **b1["MyGroupNorm_1"])
    sc = group_norm(np.einsum("bhwc,co->bhwo", x[:, ::2, ::2], b1["conv_proj"]["kernel"][0, 0]),
                    **b1["norm_proj"])
    x = swish(sc + y)
    f1 = enc["FilmConditioning_1"]
    x = x * (1 + lang @ f1["Dense_0"]["kernel"] + f1["Dense_0"]["bias"]) + (
        lang @ f1["Dense_1"]["kernel"] + f1["Dense_1"]["bias"])
    feats = x.mean(axis=(1, 2))
    np.testing.assert_allclose(reference_encode(p, img, lang), feats, atol=1e-10)

    h = np.concatenate([feats, act], -1)
    qs = []
    for e in range(3):
        he = swish(h @ p["network"]["Dense_0"]["kernel"][e] + p["network"]["Dense_0"]["bias"][e])
        qs.append((he @ p["Dense_0"]["kernel"] + p["Dense_0"]["bias"])[:, 0])
    np.testing.assert_allclose(reference_q(p, img, lang, act), np.stack(qs), atol=1e-10)


def test_unperturbed_params_have_identity_film():
    p = random_release_params(np.random.default_rng(8), perturb=False, **TINY)
    enc = p["encoder"]["encoder"]
    assert all(not np.any(d["kernel"]) and not np.any(d["bias"])
               for k, v in enc.items() if k.startswith("Film") for d in v.values())
    np.testing.assert_array_equal(enc["norm_init"]["scale"], 1.0)


def test_input_validation(tiny_params):
    rng = np.random.default_rng(9)
    img, lang, act = _inputs(rng, 2)
    with pytest.raises(ValueError):
        reference_q(tiny_params, img, np.zeros((3, 512)), act)
    with pytest.raises(ValueError):
        reference_q(tiny_params, img, lang, np.zeros((2, 6)))


def test_release_topology_forward_64():
    rng = np.random.default_rng(10)
    p = random_release_params(rng)
    img, lang, act = _inputs(rng, 2, 64, 64)
    t0 = time.perf_counter()
    q = reference_q(p, img, lang, act)
    assert time.perf_counter() - t0 < 15
    assert q.shape == (2, 2) and np.all(np.isfinite(q))
    assert np.all(np.abs(q) < 1e3)
