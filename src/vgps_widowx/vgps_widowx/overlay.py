"""The candidate overlay: the K candidate motions drawn on the camera frame, coloured by Q.

Pure numpy + Pillow (no ROS, no MuJoCo). Each candidate's first action ``[dx, dy, dz, ...,
gripper]`` (base-frame EE deltas in metres) becomes an arrow from the projected current
end-effector position to the projected ``ee + arrow_gain * (dx, dy, dz)``; one step moves about a
centimetre, hence the gain. Arrows are coloured by Q with viridis (dark purple = lowest Q of the
step, yellow = highest; NaN Q in grey), drawn from low to high Q so the best lie on top; the chosen
candidate is drawn last, thicker, with a magenta outline. A filled circle at an arrow's tip means
"close the gripper" (command < 0.5), a hollow one "open". A legend at the top names K, the chosen
index and Q, the margin (best minus second-best Q) and the Q range of the colour bar.

Camera model: :class:`vgps_widowx.robot.camera.CameraModel` (re-exported here): pinhole
intrinsics in the CameraInfo convention and the optical frame's pose in the arm's base frame. In
simulation :func:`vgps_widowx.sim.camera.sim_camera_model` computes it from the MuJoCo camera; on
the real arm it comes from parameters (:func:`camera_model_from_params`: ``fx, fy, cx, cy`` from
the camera's calibration, the optical frame's ``xyz`` + ``rpy`` in the base frame).

Small frames are upscaled (``min_size``) for legibility; the projection is scaled with them
(:meth:`CameraModel.scaled`), and :func:`layout_arrows` returns the pixel coordinates every arrow
is drawn at in the output image.

Usage::

    cam = camera_model_from_params(fx=287.5, fy=287.5, cx=127.5, cy=127.5, width=256, height=256,
                                   xyz=(-0.15, 0.32, 0.62), rpy=(-2.41, 0.0, -2.2))
    out = draw_overlay(frame, cam, ee_pos, actions, q_values, chosen=3)   # uint8 (H', W', 3)
    layout = layout_arrows(frame.shape, cam, ee_pos, actions)             # layout.segments (K,2,2)
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from vgps_widowx.robot.camera import NEAR, CameraModel, camera_model_from_params
from vgps_widowx.robot.description import GRIPPER_THRESHOLD

__all__ = ["HIGHLIGHT", "NAN_COLOUR", "ArrowLayout", "CameraModel", "OverlayConfig",
           "camera_model_from_params", "colormap", "draw_overlay", "layout_arrows",
           "output_scale", "q_colours", "q_margin"]

# viridis sampled at 0, 0.1, ..., 1 (RGB, 0-255); interpolated linearly in between.
_VIRIDIS = np.array(
    [
        (68, 1, 84), (72, 36, 117), (65, 68, 135), (53, 95, 141), (42, 120, 142),
        (33, 145, 140), (34, 168, 132), (68, 191, 112), (122, 209, 81), (189, 223, 38),
        (253, 231, 37),
    ],
    dtype=np.float64,
)
NAN_COLOUR = (150, 150, 150)  # candidates without a finite Q
HIGHLIGHT = (255, 0, 255)  # outline of the chosen candidate (magenta: not in viridis)


def colormap(values: np.ndarray | Sequence[float]) -> np.ndarray:
    """viridis colours of values in [0, 1] (clipped); NaN maps to :data:`NAN_COLOUR`.

    Args:
        values: (N,) floats.

    Returns:
        (N, 3) uint8 RGB.
    """
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    finite = np.isfinite(v)
    pos = np.clip(np.where(finite, v, 0.0), 0.0, 1.0) * (len(_VIRIDIS) - 1)
    lo = np.minimum(np.floor(pos).astype(int), len(_VIRIDIS) - 2)
    frac = (pos - lo)[:, None]
    rgb = _VIRIDIS[lo] * (1.0 - frac) + _VIRIDIS[lo + 1] * frac
    rgb[~finite] = NAN_COLOUR
    return np.rint(rgb).astype(np.uint8)


def q_colours(q_values: np.ndarray | Sequence[float]) -> np.ndarray:
    """Colours of Q-values normalised over the step's finite range (all equal -> middle).

    Args:
        q_values: (K,) Q-values, NaN/inf allowed.

    Returns:
        (K, 3) uint8 RGB.
    """
    q = np.asarray(q_values, dtype=np.float64).reshape(-1)
    finite = np.isfinite(q)
    if not finite.any():
        return colormap(np.full(q.shape, np.nan))
    lo, hi = q[finite].min(), q[finite].max()
    norm = np.full(q.shape, np.nan)
    norm[finite] = 0.5 if hi - lo < 1e-12 else (q[finite] - lo) / (hi - lo)
    return colormap(norm)


@dataclasses.dataclass(frozen=True)
class OverlayConfig:
    """How the overlay is drawn."""

    arrow_gain: float = 5.0  # arrows show gain x the commanded EE displacement
    min_size: int = 384  # frames whose shorter side is smaller are upscaled by an integer factor
    line_width: int = 2  # px (in the output image); the chosen arrow is 2 px wider + outline
    legend: bool = True  # K, chosen Q, margin and the colour range at the top

    def __post_init__(self) -> None:
        name = type(self).__name__
        if not (math.isfinite(self.arrow_gain) and self.arrow_gain > 0):
            raise ValueError(f"{name}.arrow_gain={self.arrow_gain!r}: must be > 0")
        if not 0 <= self.min_size <= 4096:
            raise ValueError(f"{name}.min_size={self.min_size!r}: need 0..4096 px")
        if not 1 <= self.line_width <= 20:
            raise ValueError(f"{name}.line_width={self.line_width!r}: need 1..20 px")


@dataclasses.dataclass(frozen=True)
class ArrowLayout:
    """Where the arrows go in the output image.

    Attributes:
        scale: integer upscaling factor applied to the frame.
        width: output width (px).
        height: output height (px).
        camera: the camera model of the output image.
        origin: (2,) projected current EE position (NaN when behind the camera).
        segments: (K, 2, 2) ``[[u0, v0], [u1, v1]]`` of each arrow as drawn (clipped to the
            image); NaN rows for arrows that are not drawn.
        tips: (K, 2) projected (unclipped) arrow tips; NaN behind the camera.
        visible: (K,) whether an arrow is drawn.
    """

    scale: int
    width: int
    height: int
    camera: CameraModel
    origin: np.ndarray
    segments: np.ndarray
    tips: np.ndarray
    visible: np.ndarray


def output_scale(frame_shape: Sequence[int], min_size: int) -> int:
    """The integer upscaling factor for a frame of ``(H, W, ...)``."""
    shorter = min(int(frame_shape[0]), int(frame_shape[1]))
    return max(1, math.ceil(min_size / shorter)) if shorter > 0 else 1


def layout_arrows(frame_shape: Sequence[int], camera: CameraModel, ee_pos: np.ndarray,
                  actions: np.ndarray, config: OverlayConfig | None = None) -> ArrowLayout:
    """Projects every candidate's EE motion into the (upscaled) output image.

    Args:
        frame_shape: ``(H, W[, 3])`` of the input frame.
        camera: camera model (any calibrated size; rescaled to the output image).
        ee_pos: (3,) current EE position in the base frame (m).
        actions: (K, 7) candidate actions ``[dx, dy, dz, droll, dpitch, dyaw, gripper]``.
        config: drawing settings (``arrow_gain``, ``min_size``).

    Returns:
        The :class:`ArrowLayout`.

    Raises:
        ValueError: bad shapes or non-finite EE position.
    """
    cfg = config or OverlayConfig()
    height, width = int(frame_shape[0]), int(frame_shape[1])
    acts = _check_actions(actions)
    ee = np.asarray(ee_pos, dtype=np.float64).reshape(-1)
    if ee.shape != (3,) or not np.all(np.isfinite(ee)):
        raise ValueError(f"ee_pos={ee_pos!r}: need 3 finite numbers (m, base frame)")
    scale = output_scale((height, width), cfg.min_size)
    out_w, out_h = width * scale, height * scale
    cam = camera.scaled(out_w, out_h)
    start = cam.to_camera(ee[None])[0]
    ends = cam.to_camera(ee + cfg.arrow_gain * np.nan_to_num(acts[:, :3]))
    tips = cam.pixels(ends)
    origin = cam.pixels(start[None])[0]
    segments = np.full((len(acts), 2, 2), np.nan)
    visible = np.zeros(len(acts), dtype=bool)
    if start[2] > NEAR:
        for i, end in enumerate(ends):
            seg = _clip_near(start, end)
            if seg is None:
                continue
            uv = cam.pixels(np.stack(seg))
            clipped = _clip_rect(uv[0], uv[1], out_w, out_h)
            if clipped is not None:
                segments[i] = clipped
                visible[i] = True
    return ArrowLayout(scale=scale, width=out_w, height=out_h, camera=cam, origin=origin,
                       segments=segments, tips=tips, visible=visible)


def draw_overlay(frame: np.ndarray, camera: CameraModel, ee_pos: np.ndarray,
                 actions: np.ndarray, q_values: np.ndarray | Sequence[float], chosen: int = -1,
                 config: OverlayConfig | None = None, note: str = "") -> np.ndarray:
    """Draws the candidates on a copy of ``frame`` (see the module docstring).

    Args:
        frame: uint8 (H, W, 3) RGB camera image.
        camera: camera model of the frame (any calibrated size: it is rescaled).
        ee_pos: (3,) current EE position in the base frame (m).
        actions: (K, 7) candidate actions (first action of each chunk).
        q_values: (K,) Q-values; NaN/inf are drawn grey.
        chosen: index of the executed candidate, -1 for none.
        config: drawing settings.
        note: extra legend text (e.g. the decision's reason).

    Returns:
        uint8 (H * s, W * s, 3), s = :func:`output_scale`.

    Raises:
        ValueError: a malformed frame, action array, Q vector or index.
    """
    cfg = config or OverlayConfig()
    img = np.asarray(frame)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3 or 0 in img.shape:
        raise ValueError(f"frame: need uint8 (H, W, 3), got {img.dtype} {img.shape}")
    acts = _check_actions(actions)
    q = np.asarray(q_values, dtype=np.float64).reshape(-1)
    if q.shape != (len(acts),):
        raise ValueError(f"q_values: {q.size} values for K={len(acts)} candidates")
    if not -1 <= int(chosen) < len(acts):
        raise ValueError(f"chosen={chosen}: need -1 or an index in 0..{len(acts) - 1}")
    layout = layout_arrows(img.shape, camera, ee_pos, acts, cfg)
    pil = Image.fromarray(img)
    if layout.scale > 1:
        pil = pil.resize((layout.width, layout.height), Image.Resampling.BILINEAR)
    draw = ImageDraw.Draw(pil)
    colours = q_colours(q)
    width = cfg.line_width
    finite = np.isfinite(q)
    # NaN first, then by Q (best on top), the chosen one last
    order = sorted(range(len(acts)), key=lambda i: (bool(finite[i]), q[i] if finite[i] else 0))
    order = [i for i in order if i != chosen] + ([int(chosen)] if chosen >= 0 else [])
    gripper = acts[:, 6] if acts.shape[1] > 6 else np.ones(len(acts))
    for i in order:
        if not layout.visible[i]:
            continue
        colour = tuple(int(c) for c in colours[i])
        seg = layout.segments[i]
        tip_inside = _inside(layout.tips[i], layout.width, layout.height)
        closing = bool(np.isfinite(gripper[i]) and gripper[i] < GRIPPER_THRESHOLD)
        if i == chosen:
            _arrow(draw, seg, HIGHLIGHT, width + 6, tip_inside, closing, outline=True)
            _arrow(draw, seg, colour, width + 2, tip_inside, closing)
        else:
            _arrow(draw, seg, colour, width, tip_inside, closing)
    if cfg.legend:
        _legend(draw, layout, q, int(chosen), note)
    return np.asarray(pil, dtype=np.uint8).copy()


def q_margin(q_values: np.ndarray | Sequence[float]) -> float:
    """Best minus second-best finite Q (NaN with fewer than two)."""
    q = np.asarray(q_values, dtype=np.float64).reshape(-1)
    q = np.sort(q[np.isfinite(q)])
    return float(q[-1] - q[-2]) if q.size >= 2 else math.nan


# -- internals ------------------------------------------------------------------------------------
def _check_actions(actions: np.ndarray) -> np.ndarray:
    acts = np.asarray(actions, dtype=np.float64)
    if acts.ndim == 1:
        acts = acts[None]
    if acts.ndim != 2 or acts.shape[0] < 1 or acts.shape[1] < 3:
        raise ValueError(f"actions: need (K, 7) with K >= 1, got shape {acts.shape}")
    return acts


def _clip_near(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """The part of the camera-frame segment a-b in front of the camera (None if none)."""
    za, zb = a[2] - NEAR, b[2] - NEAR
    if za <= 0 and zb <= 0:
        return None
    if za > 0 and zb > 0:
        return a, b
    t = za / (za - zb)
    cut = a + t * (b - a)
    cut[2] = max(cut[2], NEAR * 1.0001)
    return (a, cut) if za > 0 else (cut, b)


def _clip_rect(p: np.ndarray, q: np.ndarray, width: int, height: int
               ) -> np.ndarray | None:
    """Liang-Barsky clip of the 2-D segment p-q to the image (None when fully outside)."""
    lo = np.array([-0.5, -0.5])
    hi = np.array([width - 0.5, height - 0.5])
    d = q - p
    t0, t1 = 0.0, 1.0
    for axis in range(2):
        for num, den in ((p[axis] - lo[axis], -d[axis]), (hi[axis] - p[axis], d[axis])):
            if abs(den) < 1e-12:
                if num < 0:
                    return None
                continue
            t = num / den
            if den < 0:
                t0 = max(t0, t)
            else:
                t1 = min(t1, t)
    if t0 > t1:
        return None
    return np.stack([p + t0 * d, p + t1 * d])


def _inside(uv: np.ndarray, width: int, height: int) -> bool:
    return bool(np.all(np.isfinite(uv)) and -0.5 <= uv[0] < width - 0.5
                and -0.5 <= uv[1] < height - 0.5)


def _arrow(draw: ImageDraw.ImageDraw, seg: np.ndarray, colour: tuple[int, ...], width: int,
           tip_inside: bool, closing: bool, outline: bool = False) -> None:
    (u0, v0), (u1, v1) = np.rint(seg).tolist()  # PIL truncates float coordinates
    draw.line([(u0, v0), (u1, v1)], fill=colour, width=width)
    length = math.hypot(u1 - u0, v1 - v0)
    radius = 2 + width
    if tip_inside and length > 1.0:
        ux, uy = (u1 - u0) / length, (v1 - v0) / length
        head = min(3.0 * width + 4.0, 0.6 * length)
        bx, by = u1 - ux * head, v1 - uy * head
        half = 0.55 * head
        corners = [(bx - uy * half, by + ux * half), (bx + uy * half, by - ux * half)]
        draw.polygon([(u1, v1), *corners], fill=colour)
    if not tip_inside:
        return
    if outline:  # a ring around the inner marker, which keeps its filled/hollow meaning
        radius += 3
        draw.ellipse([u1 - radius, v1 - radius, u1 + radius, v1 + radius], outline=colour,
                     width=3)
        return
    box = [u1 - radius, v1 - radius, u1 + radius, v1 + radius]
    if closing:
        draw.ellipse(box, fill=colour)
    else:
        draw.ellipse(box, outline=colour, width=max(1, width // 2 + 1))


def _legend(draw: ImageDraw.ImageDraw, layout: ArrowLayout, q: np.ndarray, chosen: int,
            note: str) -> None:
    size = max(10, min(layout.width, layout.height) // 28)
    font = ImageFont.load_default(size=size)
    finite = q[np.isfinite(q)]
    chosen_q = f"{q[chosen]:+.3f}" if chosen >= 0 and np.isfinite(q[chosen]) else "n/a"
    margin = q_margin(q)
    lines = [f"K={len(q)}  chosen {'#' + str(chosen) if chosen >= 0 else 'none'}  Q {chosen_q}"
             f"  margin {'n/a' if math.isnan(margin) else f'{margin:.3f}'}"]
    if finite.size:
        lines.append(f"Q {finite.min():+.3f} .. {finite.max():+.3f}"
                     + (f"  ({q.size - finite.size} NaN)" if finite.size < q.size else ""))
    else:
        lines.append("Q: no finite values")
    if note:
        lines.append(note)
    pad = max(2, size // 4)
    y = pad
    boxes = [draw.textbbox((0, 0), line, font=font) for line in lines]
    box_w = max(b[2] for b in boxes) + 2 * pad
    bar_w = max(40, box_w // 2)
    box_h = sum(b[3] + pad for b in boxes) + size // 2 + 2 * pad
    draw.rectangle([0, 0, max(box_w, bar_w + 2 * pad), box_h], fill=(0, 0, 0))
    for line, b in zip(lines, boxes):
        draw.text((pad, y), line, font=font, fill=(255, 255, 255))
        y += b[3] + pad
    bar = colormap(np.linspace(0.0, 1.0, bar_w))
    for x, c in enumerate(bar):
        draw.line([(pad + x, y), (pad + x, y + size // 2)], fill=tuple(int(v) for v in c))
