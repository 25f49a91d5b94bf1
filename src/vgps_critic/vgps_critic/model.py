"""The V-GPS Q-network: a FiLM-conditioned ResNet encoder and an ensemble MLP head.

The parameter tree is the one the paper's code writes under ``modules_critic`` (see
``import_vgps``), so released checkpoints load without renaming:

    encoder/encoder/{conv_init, norm_init, ResNetBlock_i, FilmConditioning_i}
    network/{Dense_0, Dense_1}      (leading ensemble axis)
    Dense_0                         (head shared by every member)

The forward pass is split in two so a deployment can encode an image once and score any number
of actions against it: ``QNetwork.encode`` (image + language -> pooled features) and
``QNetwork.q_from_features`` (features + actions -> Q per ensemble member).
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from vgps_critic.config import CriticConfig


def _same_pads(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow/flax "SAME" padding: floor(total / 2) before, the rest after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _group_norm(cfg: CriticConfig, name: str) -> nn.GroupNorm:
    return nn.GroupNorm(num_groups=cfg.num_groups, epsilon=cfg.norm_epsilon, name=name)


class FilmConditioning(nn.Module):
    """x * (1 + W_mul l) + W_add l, broadcast over height and width (zero-initialised)."""

    @nn.compact
    def __call__(self, x: jax.Array, language: jax.Array) -> jax.Array:
        channels = x.shape[-1]
        mul = nn.Dense(channels, kernel_init=nn.initializers.zeros, name="Dense_0")(language)
        add = nn.Dense(channels, kernel_init=nn.initializers.zeros, name="Dense_1")(language)
        return x * (1.0 + mul[:, None, None, :]) + add[:, None, None, :]


class ResNetBlock(nn.Module):
    """Basic residual block: two 3x3 convs with GroupNorm and swish, projected shortcut."""

    cfg: CriticConfig
    filters: int
    stride: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        pads = [_same_pads(n, 3, self.stride) for n in x.shape[1:3]]
        y = nn.Conv(self.filters, (3, 3), (self.stride, self.stride), padding=pads,
                    use_bias=False, name="Conv_0")(x)
        y = nn.swish(_group_norm(self.cfg, "MyGroupNorm_0")(y))
        y = nn.Conv(self.filters, (3, 3), padding=[(1, 1), (1, 1)], use_bias=False,
                    name="Conv_1")(y)
        y = _group_norm(self.cfg, "MyGroupNorm_1")(y)
        shortcut = x
        if x.shape[-1] != self.filters or self.stride != 1:
            shortcut = nn.Conv(self.filters, (1, 1), (self.stride, self.stride), padding="VALID",
                               use_bias=False, name="conv_proj")(x)
            shortcut = _group_norm(self.cfg, "norm_proj")(shortcut)
        return nn.swish(shortcut + y)


def add_spatial_coordinates(x: jax.Array) -> jax.Array:
    """Append row (-1 top .. +1 bottom) and column (-1 left .. +1 right) channels.

    Args:
        x: (B, H, W, C) images.

    Returns:
        (B, H, W, C + 2).
    """
    b, h, w, _ = x.shape
    rows = jnp.broadcast_to(jnp.linspace(-1.0, 1.0, h)[:, None], (h, w))
    cols = jnp.broadcast_to(jnp.linspace(-1.0, 1.0, w)[None, :], (h, w))
    coords = jnp.broadcast_to(jnp.stack([rows, cols], -1)[None], (b, h, w, 2)).astype(x.dtype)
    return jnp.concatenate([x, coords], axis=-1)


class FilmResNetEncoder(nn.Module):
    """ResNet-v1 encoder with FiLM after every block; average-pooled features (B, D)."""

    cfg: CriticConfig

    @nn.compact
    def __call__(self, images: jax.Array, language: jax.Array) -> jax.Array:
        cfg = self.cfg
        x = images.astype(jnp.float32) / 127.5 - 1.0
        if cfg.spatial_coordinates:
            x = add_spatial_coordinates(x)
        x = nn.Conv(cfg.num_filters, (7, 7), (2, 2), padding=[(3, 3), (3, 3)], use_bias=False,
                    name="conv_init")(x)
        x = nn.swish(_group_norm(cfg, "norm_init")(x))
        pads = [_same_pads(n, 3, 2) for n in x.shape[1:3]]
        x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=pads)
        index = 0
        for stage, num_blocks in enumerate(cfg.stage_sizes):
            for j in range(num_blocks):
                stride = 2 if stage > 0 and j == 0 else 1
                x = ResNetBlock(cfg, cfg.num_filters * 2**stage, stride,
                                name=f"ResNetBlock_{index}")(x)
                if cfg.film:
                    x = FilmConditioning(name=f"FilmConditioning_{index}")(x, language)
                index += 1
        return jnp.mean(x, axis=(1, 2))


class EncoderWrapper(nn.Module):
    """Holds the encoder one level down, as the released parameter tree does."""

    cfg: CriticConfig

    @nn.compact
    def __call__(self, images: jax.Array, language: jax.Array) -> jax.Array:
        return FilmResNetEncoder(self.cfg, name="encoder")(images, language)


class MLP(nn.Module):
    hidden: Sequence[int]

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        for i, width in enumerate(self.hidden):
            x = nn.swish(nn.Dense(width, name=f"Dense_{i}")(x))
        return x


class QNetwork(nn.Module):
    """Q(s, a, l) for an ensemble of ``cfg.ensemble_size`` members.

    Usage:
        net = QNetwork(cfg)
        params = net.init(key, images, language, actions)["params"]
        q = net.apply({"params": params}, images, language, actions)       # (E, B)
        f = net.apply({"params": params}, images, language, method="encode")  # (B, D)
        q = net.apply({"params": params}, f, actions, method="q_from_features")
    """

    cfg: CriticConfig

    def setup(self) -> None:
        self.encoder = EncoderWrapper(self.cfg)
        ensemble = nn.vmap(MLP, in_axes=None, out_axes=0, axis_size=self.cfg.ensemble_size,
                           variable_axes={"params": 0}, split_rngs={"params": True})
        self.network = ensemble(self.cfg.mlp_hidden)
        self.Dense_0 = nn.Dense(1)  # the head; named as in the released tree

    def encode(self, images: jax.Array, language: jax.Array) -> jax.Array:
        """Images uint8 (B, H, W, 3) and language (B, L) or (L,) -> features (B, D)."""
        language = jnp.broadcast_to(jnp.atleast_2d(language),
                                    (images.shape[0], language.shape[-1]))
        return self.encoder(images, language)

    def q_from_features(self, features: jax.Array, actions: jax.Array) -> jax.Array:
        """Features (B, D) or (1, D) and critic-normalised actions (B, A) -> Q (E, B)."""
        features = jnp.broadcast_to(features, (actions.shape[0], features.shape[-1]))
        hidden = self.network(jnp.concatenate([features, actions], axis=-1))
        return self.Dense_0(hidden)[..., 0]

    def __call__(self, images: jax.Array, language: jax.Array, actions: jax.Array) -> jax.Array:
        return self.q_from_features(self.encode(images, language), actions)


def init_params(cfg: CriticConfig, key: jax.Array) -> dict:
    """Randomly initialised parameters for ``cfg`` (FiLM starts as the identity)."""
    h, w = cfg.image_size
    images = jnp.zeros((1, h, w, 3), jnp.uint8)
    language = jnp.zeros((1, cfg.language_dim), jnp.float32)
    actions = jnp.zeros((1, cfg.action_dim), jnp.float32)
    return QNetwork(cfg).init(key, images, language, actions)["params"]


def param_shapes(cfg: CriticConfig) -> dict:
    """The parameter tree of ``cfg`` as ShapeDtypeStructs, without allocating it."""
    return jax.eval_shape(lambda k: init_params(cfg, k), jax.random.key(0))


def count_params(tree: dict) -> int:
    return int(sum(x.size for x in jax.tree_util.tree_leaves(tree)))
