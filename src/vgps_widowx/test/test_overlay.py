"""The candidate overlay's drawing (pure numpy + Pillow, no ROS).

Arrows are drawn where :func:`layout_arrows` says, the chosen one highlighted and on top, colours
follow Q (viridis), NaN Q is grey, gripper intent is marked, out-of-frame and behind-camera cases
are clipped or skipped, K = 1 works, and upscaling scales the projection consistently.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from vgps_widowx.overlay import (
    HIGHLIGHT,
    NAN_COLOUR,
    OverlayConfig,
    colormap,
    draw_overlay,
    layout_arrows,
    q_colours,
    q_margin,
)
from vgps_widowx.robot.camera import CameraModel

NO_LEGEND = OverlayConfig(min_size=0, legend=False, line_width=3, arrow_gain=1.0)


def looking_down(size: int = 200, height: float = 1.0) -> CameraModel:
    """A camera ``height`` m above the origin looking straight down (u = +x, v = -y)."""
    rot = np.array([[1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, -1.0]])
    c = (size - 1) / 2
    return CameraModel(width=size, height=size, fx=200.0, fy=200.0, cx=c, cy=c,
                       rotation=rot, position=np.array([0.0, 0.0, height]))


FRAME = np.full((200, 200, 3), 120, np.uint8)
EE = np.zeros(3)


def fan(k: int, length: float = 0.3, gripper: float = 1.0) -> np.ndarray:
    """K actions pointing in K evenly spaced directions in the xy plane."""
    angles = np.linspace(0.0, 2 * np.pi, k, endpoint=False) + 0.3
    acts = np.zeros((k, 7))
    acts[:, 0], acts[:, 1], acts[:, 6] = length * np.cos(angles), length * np.sin(angles), gripper
    return acts


def pixel(image: np.ndarray, uv: np.ndarray) -> tuple[int, ...]:
    u, v = np.rint(uv).astype(int)
    return tuple(int(c) for c in image[v, u])


def along(segment: np.ndarray, t: float) -> np.ndarray:
    return segment[0] + t * (segment[1] - segment[0])


def test_arrows_are_projected_from_the_ee_to_ee_plus_gain_delta():
    acts = fan(4)
    acts[:2, :3] *= 0.3  # two short arrows stay inside, two long ones leave the image
    layout = layout_arrows(FRAME.shape, looking_down(), EE, acts,
                           OverlayConfig(min_size=0, arrow_gain=2.0))
    c = 99.5
    np.testing.assert_allclose(layout.origin, [c, c])
    # 1 m below the camera, 200 px focal: 1 m -> 200 px; y up in the base is v down
    expected = np.stack([c + 200 * 2.0 * acts[:, 0], c - 200 * 2.0 * acts[:, 1]], axis=1)
    np.testing.assert_allclose(layout.tips, expected)
    inside = np.all((expected >= -0.5) & (expected < 199.5), axis=1)
    assert inside.tolist() == [True, True, False, False]
    assert layout.visible.all()  # tips outside: clipped to the border, still drawn
    np.testing.assert_allclose(layout.segments[inside, 1], expected[inside])
    assert np.all((layout.segments >= -0.5) & (layout.segments <= 199.5))


def test_chosen_arrow_is_drawn_where_projected_highlighted_and_on_top():
    acts = fan(6)
    q = np.array([0.1, 0.9, 0.3, 0.5, 0.7, 0.2])
    chosen = 2  # not the best: its colour is not the top of the map
    out = draw_overlay(FRAME, looking_down(), EE, acts, q, chosen, NO_LEGEND)
    layout = layout_arrows(FRAME.shape, looking_down(), EE, acts, NO_LEGEND)
    seg = layout.segments[chosen]
    colour = tuple(int(c) for c in q_colours(q)[chosen])
    direction = (seg[1] - seg[0]) / np.linalg.norm(seg[1] - seg[0])
    normal = np.array([-direction[1], direction[0]])
    for t in (0.3, 0.45, 0.6):
        assert pixel(out, along(seg, t)) == colour
        for side in (1, -1):  # inner width 5 px, outline width 9 px
            assert pixel(out, along(seg, t) + side * 3.6 * normal) == HIGHLIGHT
    # drawn last: on top of the other arrows where they cross at the common origin
    assert pixel(out, along(seg, 0.08)) == colour
    assert HIGHLIGHT not in {pixel(out, along(layout.segments[i], 0.5)) for i in range(6)}


def test_each_candidate_has_its_q_colour_and_colours_follow_q():
    rng = np.random.default_rng(3)
    acts = fan(7)
    q = rng.permutation(np.linspace(-2.0, 5.0, 7))
    out = draw_overlay(FRAME, looking_down(), EE, acts, q, -1, NO_LEGEND)
    layout = layout_arrows(FRAME.shape, looking_down(), EE, acts, NO_LEGEND)
    want = q_colours(q)
    seen = np.array([pixel(out, along(layout.segments[i], 0.5)) for i in range(7)])
    np.testing.assert_array_equal(seen, want)
    assert tuple(want[np.argmin(q)]) == tuple(colormap([0.0])[0])  # lowest: dark purple end
    assert tuple(want[np.argmax(q)]) == tuple(colormap([1.0])[0])  # highest: yellow end
    table = colormap(np.linspace(0.0, 1.0, 256)).astype(int)
    rank = [int(np.argmin(np.abs(table - c).sum(1))) for c in seen.astype(int)]
    assert np.argsort(rank).tolist() == np.argsort(q).tolist()


def test_nan_q_is_grey_and_all_nan_draws_without_failing():
    acts = fan(4)
    q = np.array([0.2, math.nan, 0.8, math.inf])
    out = draw_overlay(FRAME, looking_down(), EE, acts, q, 2, NO_LEGEND)
    layout = layout_arrows(FRAME.shape, looking_down(), EE, acts, NO_LEGEND)
    assert pixel(out, along(layout.segments[1], 0.5)) == NAN_COLOUR
    assert pixel(out, along(layout.segments[3], 0.5)) == NAN_COLOUR
    assert pixel(out, along(layout.segments[0], 0.5)) == tuple(colormap([0.0])[0])
    assert math.isclose(q_margin(q), 0.6)
    out = draw_overlay(FRAME, looking_down(), EE, acts, np.full(4, np.nan), 1,
                       OverlayConfig(min_size=0, arrow_gain=1.0, line_width=3))
    assert pixel(out, along(layout.segments[0], 0.5)) == NAN_COLOUR
    assert math.isnan(q_margin([np.nan, 1.0]))


def test_gripper_intent_filled_for_close_hollow_for_open():
    closing, opening = fan(1, 0.2, gripper=0.0), fan(1, 0.2, gripper=1.0)
    layout = layout_arrows(FRAME.shape, looking_down(), EE, closing, NO_LEGEND)
    seg = layout.segments[0]
    beyond = seg[1] + 1.5 * (seg[1] - seg[0]) / np.linalg.norm(seg[1] - seg[0])
    filled = draw_overlay(FRAME, looking_down(), EE, closing, [1.0], -1, NO_LEGEND)
    hollow = draw_overlay(FRAME, looking_down(), EE, opening, [1.0], -1, NO_LEGEND)
    assert pixel(filled, beyond) == tuple(q_colours([1.0])[0])
    assert pixel(hollow, beyond) == (120, 120, 120)


def test_k_1_and_the_legend():
    acts = fan(1)
    plain = draw_overlay(FRAME, looking_down(), EE, acts, [0.4], 0, NO_LEGEND)
    legend = draw_overlay(FRAME, looking_down(), EE, acts, [0.4], 0,
                          OverlayConfig(min_size=0, line_width=3, arrow_gain=1.0), note="argmax")
    assert (plain != FRAME).any()
    top = (slice(0, 15), slice(0, 60))
    assert (legend[top] != plain[top]).any() and (legend[top] == 0).mean() > 0.3


def test_out_of_frame_and_behind_the_camera_are_skipped():
    acts = fan(3, 0.1)
    far = np.array([3.0, 0.0, 0.0])  # EE outside the view, arrows stay outside
    layout = layout_arrows(FRAME.shape, looking_down(), far, acts, NO_LEGEND)
    assert not layout.visible.any() and np.isnan(layout.segments).all()
    out = draw_overlay(FRAME, looking_down(), far, acts, [1.0, 2.0, 3.0], 0, NO_LEGEND)
    np.testing.assert_array_equal(out, FRAME)
    behind = np.array([0.0, 0.0, 2.0])  # above the downward-looking camera
    layout = layout_arrows(FRAME.shape, looking_down(), behind, acts, NO_LEGEND)
    assert not layout.visible.any() and np.isnan(layout.origin).all()
    np.testing.assert_array_equal(
        draw_overlay(FRAME, looking_down(), behind, acts, [1.0, 2.0, 3.0], 1, NO_LEGEND), FRAME)
    # an arrow that crosses the camera plane is cut at the near plane, then at the border
    up = np.array([[0.0, 0.02, 2.0, 0, 0, 0, 1.0]])
    layout = layout_arrows(FRAME.shape, looking_down(), np.array([0.0, 0.0, 0.5]), up,
                           NO_LEGEND)
    assert layout.visible[0] and np.isfinite(layout.segments).all()
    assert np.isnan(layout.tips[0]).all()


def test_upscaling_scales_the_projection_consistently():
    small = FRAME[:64, :64]
    cam = looking_down(64, height=1.5)
    acts = fan(3, 0.05)
    base = layout_arrows(small.shape, cam, EE, acts, OverlayConfig(min_size=0))
    big = layout_arrows(small.shape, cam, EE, acts, OverlayConfig(min_size=384))
    assert (base.scale, big.scale, big.width, big.height) == (1, 6, 384, 384)
    np.testing.assert_allclose(big.tips, (base.tips + 0.5) * 6 - 0.5, atol=1e-9)
    out = draw_overlay(small, cam, EE, acts, [0.0, 1.0, 2.0], 1,
                       OverlayConfig(min_size=384, legend=False))
    assert out.shape == (384, 384, 3)
    assert pixel(out, along(big.segments[2], 0.5)) == tuple(colormap([1.0])[0])


@pytest.mark.parametrize("kwargs,match", [
    (dict(frame=np.zeros((8, 8, 3), np.float32)), "frame"),
    (dict(q_values=[1.0, 2.0]), "q_values"),
    (dict(chosen=3), "chosen"),
    (dict(actions=np.zeros((0, 7))), "actions"),
    (dict(ee_pos=[0.0, math.nan, 0.0]), "ee_pos"),
])
def test_bad_inputs_raise_named_errors(kwargs, match):
    args = dict(frame=FRAME, camera=looking_down(), ee_pos=EE, actions=fan(3),
                q_values=[1.0, 2.0, 3.0], chosen=0) | kwargs
    with pytest.raises(ValueError, match=match):
        draw_overlay(**args)
