"""Image decoding, resizing and the paper's training augmentations (TensorFlow, stateless).

Augmentations (V-GPS Appendix B, as in Octo's ``augment_image``), applied in this order: random
resized crop (scale 0.8-1.0, aspect ratio 0.9-1.1, resized back to the input size), brightness
(+-0.1), contrast (0.9-1.1), saturation (0.9-1.1), hue (+-0.05). Every random draw is stateless
and comes from one (2,) seed, so a transition's observation and next observation get the *same*
augmentation (they are transformed as one stacked batch with one set of draws) and a pipeline is
reproducible for a given seed.
"""

from __future__ import annotations

import dataclasses
import math

import tensorflow as tf

RESIZE_METHODS = ("lanczos3", "bilinear", "bicubic", "area", "nearest")


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """Training-time image augmentation; defaults are the paper's."""

    enabled: bool = True  # applied only when the pipeline is in training mode
    crop_scale: tuple[float, float] = (0.8, 1.0)  # crop area as a fraction of the image
    crop_ratio: tuple[float, float] = (0.9, 1.1)  # crop aspect ratio (width / height)
    brightness: float = 0.1  # max additive delta (images in [0, 1])
    contrast: tuple[float, float] = (0.9, 1.1)  # contrast factor range
    saturation: tuple[float, float] = (0.9, 1.1)  # saturation factor range
    hue: float = 0.05  # max hue delta, in [0, 0.5]

    def __post_init__(self) -> None:
        for name in ("crop_scale", "crop_ratio", "contrast", "saturation"):
            lo, hi = getattr(self, name)
            if not 0.0 < lo <= hi:
                raise ValueError(f"AugmentConfig.{name}={(lo, hi)!r}: need 0 < low <= high")
        if self.crop_scale[1] > 1.0:
            raise ValueError(f"AugmentConfig.crop_scale={self.crop_scale!r}: high must be <= 1")
        if self.brightness < 0.0:
            raise ValueError(f"AugmentConfig.brightness={self.brightness!r}: must be >= 0")
        if not 0.0 <= self.hue <= 0.5:
            raise ValueError(f"AugmentConfig.hue={self.hue!r}: must be in [0, 0.5]")


def decode_and_resize(image: tf.Tensor, size: tuple[int, int],
                      method: str = "lanczos3") -> tf.Tensor:
    """Encoded (or already decoded) image to uint8 (H, W, 3) at ``size``.

    Args:
        image: a () string (JPEG/PNG bytes) or uint8 (h, w, 3).
        size: output ``(H, W)``.
        method: ``tf.image.resize`` method (antialiased); skipped when the size already matches.

    Returns:
        uint8 (H, W, 3).
    """
    if image.dtype == tf.string:
        image = tf.io.decode_image(image, channels=3, expand_animations=False)
    image = tf.ensure_shape(image, [None, None, 3])
    shape = tf.shape(image)
    same = tf.logical_and(tf.equal(shape[0], size[0]), tf.equal(shape[1], size[1]))

    def resize() -> tf.Tensor:
        out = tf.image.resize(image, size, method=method, antialias=True)
        return tf.cast(tf.clip_by_value(tf.round(out), 0, 255), tf.uint8)

    out = tf.cond(same, lambda: tf.cast(image, tf.uint8), resize)
    return tf.ensure_shape(out, [size[0], size[1], 3])


def _random_resized_crop(images: tf.Tensor, config: AugmentConfig, seeds: tf.Tensor) -> tf.Tensor:
    """One random crop box (stateless) applied to every image of ``images`` (N, H, W, 3) float."""
    n, h, w = tf.shape(images)[0], tf.shape(images)[1], tf.shape(images)[2]
    scale = tf.random.stateless_uniform([], seeds[0], *config.crop_scale)
    log_ratio = tf.random.stateless_uniform(
        [], seeds[1], math.log(config.crop_ratio[0]), math.log(config.crop_ratio[1]))
    ratio = tf.exp(log_ratio)
    ch = tf.clip_by_value(tf.sqrt(scale / ratio), 0.0, 1.0)
    cw = tf.clip_by_value(tf.sqrt(scale * ratio), 0.0, 1.0)
    offset = tf.random.stateless_uniform([2], seeds[2]) * tf.stack([1.0 - ch, 1.0 - cw])
    box = tf.stack([offset[0], offset[1], offset[0] + ch, offset[1] + cw])
    boxes = tf.tile(box[None], [n, 1])
    return tf.image.crop_and_resize(images, boxes, tf.range(n), tf.stack([h, w]))


def augment_images(images: tf.Tensor, seed: tf.Tensor, config: AugmentConfig) -> tf.Tensor:
    """Applies one draw of the augmentations to every image in ``images``.

    Args:
        images: uint8 (N, H, W, 3), e.g. a transition's observation and next observation.
        seed: int32 or int64 (2,) stateless seed.
        config: the augmentation settings.

    Returns:
        uint8 (N, H, W, 3): the same crop and colour jitter applied to all N images.
    """
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=7)
    x = tf.image.convert_image_dtype(images, tf.float32)
    x = _random_resized_crop(x, config, seeds)
    if config.brightness > 0:
        x = tf.image.stateless_random_brightness(x, config.brightness, seeds[3])
        x = tf.clip_by_value(x, 0.0, 1.0)
    x = tf.image.stateless_random_contrast(x, *config.contrast, seed=seeds[4])
    x = tf.clip_by_value(x, 0.0, 1.0)
    x = _saturation_and_hue(x, config, seeds[5], seeds[6])
    return tf.image.convert_image_dtype(x, tf.uint8, saturate=True)


def _saturation_and_hue(x: tf.Tensor, config: AugmentConfig, saturation_seed: tf.Tensor,
                        hue_seed: tf.Tensor) -> tf.Tensor:
    """``adjust_saturation`` then ``adjust_hue`` with random factors (stateless).

    Same results as ``tf.image.stateless_random_saturation`` then ``stateless_random_hue``
    (HSV saturation scaled by the factor and clipped to [0, 1]; hue rotated modulo 1), but the
    saturation step is computed in closed form on RGB: with V = max and H fixed, scaling S by f
    moves every channel c to ``V - min(f, V / (V - min)) (V - c)``. TensorFlow's RGB<->HSV kernels
    otherwise dominate the augmentation's cost at 256x256.
    """
    factor = tf.random.stateless_uniform([], saturation_seed, *config.saturation)
    top = tf.reduce_max(x, axis=-1, keepdims=True)
    chroma = top - tf.reduce_min(x, axis=-1, keepdims=True)
    scale = tf.minimum(factor, top / tf.maximum(chroma, 1e-12))
    x = tf.clip_by_value(top - scale * (top - x), 0.0, 1.0)
    if config.hue > 0:
        delta = tf.random.stateless_uniform([], hue_seed, -config.hue, config.hue)
        x = tf.clip_by_value(tf.image.adjust_hue(x, delta), 0.0, 1.0)
    return x
