"""Octo (octo-models/octo) served by ``vgps-policy-server``: K chunks per request, one model call.

Octo pins its own stack (jax 0.4.20, flax 0.7.5, numpy 1.24.3, TensorFlow 2.15; Python 3.10 or
3.11) and is on no package index, so this policy runs in Octo's own environment and the suite
talks to it over ``vgps-policy/1``. Importing this module needs only numpy; Octo, JAX and
TensorFlow are imported by :func:`build`, which names how to get Octo's environment when they
are missing (:data:`OCTO_ENVIRONMENT`).

API used (``octo.model.octo_model.OctoModel``): ``load_pretrained(path | "hf://id")``,
``create_tasks(texts=[instruction])`` (cached per instruction), ``sample_actions(observation,
tasks, unnormalization_statistics=dataset_statistics[key]["action"], sample_shape=(bucket,),
rng=key)`` -> (bucket, 1, H, 7), ``example_batch`` (window, image size) and the action head's
``action_horizon``.

- **K buckets**: a request's K is rounded up to the next of ``--k-buckets`` (default
  1,10,25,50,100), sampled in ONE call with ``sample_shape=(bucket,)`` and cut to K; each bucket
  compiles once (at start unless ``--no-warmup``), so a live K change never waits for XLA. The
  same (seed, bucket) gives the same samples; K = 7 returns the first 7 of bucket 10's draws.
- **Seeds**: a 64-bit seed becomes the key ``[seed >> 32, seed & 0xffffffff]`` (the same as
  ``jax.random.PRNGKey(seed)`` for seeds below 2**32; distinct for every 64-bit seed).
- **History per episode, on the server** (Octo's ``HistoryWrapper``): the last ``window`` frames
  of each episode id; until there are ``window`` of them the first frame is repeated in front
  and ``timestep_pad_mask`` is False for those slots. ``step`` orders frames: the next step (or
  a later one, when steps were skipped) appends; the same step again replaces the newest frame
  (a retry sees the same history as the first try); an earlier step, or an unknown or reset
  episode id, starts the history anew with this frame. 64 episodes are kept, least recently
  used dropped first.
- **Images**: the primary camera only (Octo's wrist input is left out, as in Octo's own Bridge
  evaluation). Frames of another size than the model's S x S are resized to it with Lanczos
  (as Octo's ``ResizeImageWrapper``, without its average-crop). ``--image-size`` sets what the
  metadata declares and the server accepts: the model's S by default, another N, or ``any``.
- **Actions**: Octo's unnormalised 7-D Bridge actions (base-frame end-effector deltas, absolute
  gripper) cut to ``--horizon`` steps, float32, gripper clipped to [0, 1] (1 = open).
- **Devices**: TensorFlow is kept off the GPUs (``tf.config.set_visible_devices([], "GPU")``) and
  ``XLA_PYTHON_CLIENT_PREALLOCATE`` defaults to false, so JAX shares the GPU with the critic.

Usage::

    vgps-policy-server --policy octo --model hf://rail-berkeley/octo-small-1.5 --port 8000
    vgps-policy-server --policy octo --model /path/to/checkpoint --k-buckets 1,10,50 \\
        --image-size any          # accept any frame size, resized to the model's on the server
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np

from vgps_policy_server.policy import EpisodeStore, make_metadata

log = logging.getLogger("vgps_policy_server.octo")

DEFAULT_K_BUCKETS = (1, 10, 25, 50, 100)
DEFAULT_DATASET_KEY = "bridge_dataset"
MAX_EPISODES = 64
MAX_TASKS = 256
ACTION_DIM = 7
GRIPPER = 6
OCTO_ENVIRONMENT = (
    "Octo is on no package index ('pip install octo' installs an unrelated package): run this "
    "server in Octo's own environment, a Python 3.10/3.11 venv with Octo's pins (numpy 1.24.3, "
    "jax/jaxlib 0.4.20, flax 0.7.5, tensorflow(-cpu) 2.15, distrax 0.1.5, transformers<5, "
    "scipy<1.13) and octo and dlimp installed from their sources (github.com/octo-models/octo, "
    "github.com/kvablack/dlimp), plus this package (pip install -e src/vgps_policy_server); "
    "docs/octo_check.md lists the versions that work together")


class OctoUnavailableError(ImportError):
    """Octo (or its JAX/TensorFlow stack) cannot be imported in this interpreter."""


def parse_buckets(text: str | Sequence[int]) -> tuple[int, ...]:
    """``"1,10,50"`` (or ints) -> the sorted distinct bucket sizes ``(1, 10, 50)``.

    Raises:
        ValueError: an entry is not an integer >= 1, or there is none.
    """
    items = text.split(",") if isinstance(text, str) else list(text)
    buckets: set[int] = set()
    for item in items:
        try:
            value = int(str(item).strip())
        except ValueError:
            raise ValueError(f"--k-buckets {text!r}: {item!r} is not an integer") from None
        if value < 1:
            raise ValueError(f"--k-buckets {text!r}: {value} < 1; every bucket needs K >= 1")
        buckets.add(value)
    if not buckets:
        raise ValueError(f"--k-buckets {text!r}: give at least one K, e.g. 1,10,50")
    return tuple(sorted(buckets))


def bucket_for(k: int, buckets: Sequence[int]) -> int:
    """The smallest bucket >= k (the sample shape one request of K candidates compiles for).

    Raises:
        ValueError: k < 1 or k above the largest bucket.
    """
    for bucket in buckets:
        if bucket >= k >= 1:
            return bucket
    raise ValueError(f"k={k}: need 1 <= k <= {max(buckets)} (the largest of --k-buckets "
                     f"{','.join(map(str, buckets))})")


def seed_key_data(seed: int) -> np.ndarray:
    """A 64-bit seed as JAX's raw threefry key, uint32 (2,) ``[seed >> 32, seed & 0xffffffff]``.

    Equal to ``jax.random.PRNGKey(seed)`` for 0 <= seed < 2**32, which truncates larger seeds.

    Raises:
        ValueError: seed outside [0, 2**64).
    """
    if not 0 <= seed < 2**64:
        raise ValueError(f"seed={seed}: need 0 <= seed < 2**64")
    return np.array([seed >> 32, seed & 0xFFFFFFFF], np.uint32)


def stack_window(frames: Sequence[np.ndarray], window: int) -> tuple[np.ndarray, np.ndarray]:
    """Octo's padded observation window from an episode's newest frames (its ``stack_and_pad``).

    Args:
        frames: 1..window frames, oldest first, each uint8 (S, S, 3).
        window: the model's window W.

    Returns:
        images uint8 (W, S, S, 3), the first frame repeated in front while there are fewer than
        W; timestep_pad_mask bool (W,), False for those repeated slots.
    """
    if not 1 <= len(frames) <= window:
        raise ValueError(f"stack_window: {len(frames)} frames for a window of {window}")
    pad = window - len(frames)
    images = np.stack([frames[0]] * pad + list(frames))
    mask = np.array([False] * pad + [True] * len(frames))
    return images, mask


class EpisodeHistory:
    """One episode's last ``window`` frames, ordered by step (see the module docstring)."""

    def __init__(self, window: int):
        if window < 1:
            raise ValueError(f"window={window}: need >= 1")
        self.window = window
        self.frames: list[np.ndarray] = []
        self.last_step: int | None = None

    def observe(self, step: int, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Adds ``frame`` as ``step``; returns :func:`stack_window` of the history."""
        if self.last_step is None or step < self.last_step:
            self.frames = [frame]  # first frame, or the step went back: a new history
        elif step == self.last_step:
            self.frames[-1] = frame  # a retry of the newest step
        else:
            self.frames = [*self.frames, frame][-self.window:]
        self.last_step = step
        return stack_window(self.frames, self.window)


def resize_lanczos(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint8 (h, w, 3) -> uint8 (size[0], size[1], 3) with Lanczos-3 (TensorFlow, as Octo)."""
    import tensorflow as tf

    image = tf.image.resize(frame, size=size, method="lanczos3", antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(image), 0, 255), tf.uint8).numpy()


class OctoServedPolicy:
    """A loaded ``OctoModel`` as a :class:`~vgps_policy_server.policy.ServedPolicy`.

    Args:
        model: the loaded ``OctoModel``.
        version: the checkpoint it came from (path or ``hf://`` id), reported in the metadata.
        dataset_key: ``model.dataset_statistics`` key to unnormalise actions with.
        horizon: actions kept per chunk (None: the model's action horizon).
        buckets: the K buckets (sorted, distinct).
        image_size: the primary image side the server takes (None: the model's; 0: any).

    Raises:
        ValueError: unknown ``dataset_key``, a model without a primary camera, a horizon above
            the model's.
    """

    def __init__(self, model: Any, version: str, dataset_key: str = DEFAULT_DATASET_KEY,
                 horizon: int | None = None, buckets: Sequence[int] = DEFAULT_K_BUCKETS,
                 image_size: int | None = None):
        import jax.numpy as jnp

        self._jnp = jnp
        self.model, self.version, self.buckets = model, version, tuple(buckets)
        stats = model.dataset_statistics or {}
        if dataset_key not in stats:
            raise ValueError(f"--dataset-key {dataset_key!r} is not in the model's dataset "
                             f"statistics; choose from {sorted(stats)}")
        self.statistics = stats[dataset_key]["action"]
        observation = model.example_batch["observation"]
        if "image_primary" not in observation:
            raise ValueError(f"the model takes no image_primary (it takes "
                             f"{sorted(observation)}); only the primary camera is served")
        self.window = int(np.shape(observation["timestep_pad_mask"])[1])
        self.model_size = tuple(int(s) for s in np.shape(observation["image_primary"])[2:4])
        self.model_horizon = int(model.module.heads["action"].action_horizon)
        self.horizon = self.model_horizon if horizon is None else horizon
        if not 1 <= self.horizon <= self.model_horizon:
            raise ValueError(f"--horizon {horizon}: the model predicts {self.model_horizon} "
                             f"actions per chunk; choose 1..{self.model_horizon}")
        self.accepted_size = self.model_size if image_size is None else (image_size, image_size)
        self._histories: EpisodeStore[EpisodeHistory] = EpisodeStore(
            lambda: EpisodeHistory(self.window), max_episodes=MAX_EPISODES)
        self._tasks: OrderedDict[str, Any] = OrderedDict()

    def metadata(self) -> dict[str, Any]:
        return make_metadata("octo", self.version, horizon=self.horizon,
                             images={"primary": self.accepted_size}, window=self.window,
                             max_k=self.buckets[-1], needs_privileged=False)

    def reset(self, episode_id: str) -> None:
        self._histories.reset(episode_id)

    def task(self, instruction: str) -> Any:
        """Octo's task for an instruction (``create_tasks``), cached, least recent dropped."""
        if instruction in self._tasks:
            self._tasks.move_to_end(instruction)
        else:
            self._tasks[instruction] = self.model.create_tasks(texts=[instruction])
            while len(self._tasks) > MAX_TASKS:
                self._tasks.popitem(last=False)
        return self._tasks[instruction]

    def sample(self, observation: dict[str, Any], instruction: str, k: int, seed: int,
               episode_id: str, step: int) -> np.ndarray:
        """K chunks float32 (K, H, 7) for ``observation["images"]["primary"]`` (uint8)."""
        frame = np.asarray(observation["images"]["primary"])
        if frame.shape[:2] != self.model_size:
            frame = resize_lanczos(frame, self.model_size)
        else:
            frame = frame.copy()  # the request's buffer is not ours to keep
        bucket = bucket_for(k, self.buckets)
        tasks = self.task(instruction)
        images, mask = self._histories.get(episode_id).observe(step, frame)
        observations = {"image_primary": images[None], "timestep_pad_mask": mask[None]}
        actions = self.model.sample_actions(
            observations, tasks, unnormalization_statistics=self.statistics,
            sample_shape=(bucket,), rng=self._jnp.asarray(seed_key_data(seed)))
        actions = np.asarray(actions)
        if actions.ndim != 4 or actions.shape[:2] != (bucket, 1) or (
                actions.shape[2] < self.horizon or actions.shape[3] < ACTION_DIM):
            raise RuntimeError(f"octo returned actions of shape {actions.shape}; expected "
                               f"({bucket}, 1, {self.model_horizon}, {ACTION_DIM})")
        chunks = np.array(actions[:k, 0, : self.horizon, :ACTION_DIM], dtype=np.float32)
        chunks[..., GRIPPER] = np.clip(chunks[..., GRIPPER], 0.0, 1.0)
        return chunks

    def warm_up(self) -> dict[int, float]:
        """Compiles every bucket on a grey frame; returns seconds per bucket."""
        frame = np.full((*self.model_size, 3), 128, np.uint8)
        seconds = {}
        for bucket in self.buckets:
            start = time.perf_counter()
            self.sample({"images": {"primary": frame}}, "warm up", bucket, 0, "__warm-up__", 0)
            seconds[bucket] = time.perf_counter() - start
            log.info("octo: K bucket %d compiled in %.1f s", bucket, seconds[bucket])
        self._histories.reset("__warm-up__")
        return seconds


def _image_size(text: str) -> int:
    if text == "any":
        return 0
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: need a side in pixels or 'any'") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: need a side >= 1 or 'any'")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``octo`` policy's options of ``vgps-policy-server``."""
    group = parser.add_argument_group("octo")
    group.add_argument("--model", required=True, metavar="PATH_OR_HF_ID",
                       help="a checkpoint directory saved by OctoModel.save_pretrained, or a "
                            "Hugging Face id (hf://rail-berkeley/octo-small-1.5)")
    group.add_argument("--dataset-key", default=DEFAULT_DATASET_KEY,
                       help="dataset statistics to unnormalise actions with (default: "
                            "%(default)s, the WidowX)")
    group.add_argument("--horizon", type=int, default=None,
                       help="actions kept per chunk (default: the model's action horizon)")
    group.add_argument("--k-buckets", type=parse_buckets, default=DEFAULT_K_BUCKETS,
                       help="sample shapes compiled for; a request's K is rounded up to the next "
                            "(default: 1,10,25,50,100; the largest is max_k)")
    group.add_argument("--image-size", type=_image_size, default=None, metavar="N|any",
                       help="primary image side the server takes (default: the model's; "
                            "other sizes are resized to the model's on the server)")
    group.add_argument("--no-warmup", dest="warmup", action="store_false",
                       help="compile each K bucket on its first request instead of at start")


def _checkpoint(model: str) -> str:
    """A local directory (made absolute) or an ``hf://`` / ``gs://`` location, as given."""
    if "://" in model:
        return model
    if os.path.isdir(model):
        return os.path.abspath(model)
    if model.count("/") == 1 and not model.startswith((".", "/", "~")):
        return f"hf://{model}"
    raise FileNotFoundError(f"--model {model!r}: no such checkpoint directory (or give a "
                            "Hugging Face id, hf://rail-berkeley/octo-small-1.5)")


def build(args: argparse.Namespace) -> OctoServedPolicy:
    """Loads Octo in this interpreter and wraps it; compiles every K bucket unless told not to.

    Raises:
        OctoUnavailableError: Octo, JAX or TensorFlow cannot be imported here.
        FileNotFoundError: ``--model`` is no directory and no hub id.
        ValueError: a bad ``--dataset-key`` or ``--horizon`` for this model.
    """
    if importlib.util.find_spec("octo") is None:  # before TensorFlow/JAX are imported here
        raise OctoUnavailableError(f"no module named 'octo' here. {OCTO_ENVIRONMENT}")
    checkpoint = _checkpoint(args.model)
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    try:
        import tensorflow as tf

        try:
            tf.config.set_visible_devices([], "GPU")  # before TensorFlow touches a device
        except RuntimeError as exc:  # TensorFlow was initialised before this policy was built
            log.warning("octo: TensorFlow may hold GPUs: %s", exc)
        import jax  # noqa: F401
        from octo.model.octo_model import OctoModel
    except ImportError as exc:
        raise OctoUnavailableError(f"Octo's stack cannot be imported here ({exc}). "
                                   f"{OCTO_ENVIRONMENT}") from exc
    start = time.perf_counter()
    model = OctoModel.load_pretrained(checkpoint)
    log.info("octo: loaded %s in %.1f s", checkpoint, time.perf_counter() - start)
    policy = OctoServedPolicy(model, args.model, dataset_key=args.dataset_key,
                              horizon=args.horizon, buckets=args.k_buckets,
                              image_size=args.image_size)
    if args.warmup:
        policy.warm_up()
    return policy
