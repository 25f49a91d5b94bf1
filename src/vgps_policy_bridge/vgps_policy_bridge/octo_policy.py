"""Octo (octo-models/octo) behind the :class:`~vgps_policy_bridge.policy.Policy` interface.

``octo`` is optional and not on PyPI; it is imported when an :class:`OctoPolicy` is made and its
absence raises :class:`PolicyUnavailableError` with the install command. API used
(``octo.model.octo_model.OctoModel``): ``load_pretrained(path_or_hf_id)``, ``create_tasks(
texts=[...])``, ``sample_actions(observations, tasks, unnormalization_statistics=...,
sample_shape=(K,), rng=key)`` -> (K, 1, H, A), ``dataset_statistics[key]["action"]``,
``example_batch["observation"]["timestep_pad_mask"]`` (window size).

The policy keeps Octo's observation history itself: the last ``window_size`` primary images
(256 x 256, resized with Lanczos as Octo's Bridge evaluation does) and a ``timestep_pad_mask``
that is False for slots before the episode's first frame. ``reset()`` forgets the history. Octo
unnormalises with the dataset statistics; its Bridge actions are already in the robot action
space (base-frame deltas, gripper 1 = open), so they pass through unchanged apart from clipping
the gripper to [0, 1].

Usage::

    policy = OctoPolicy("hf://rail-berkeley/octo-small-1.5", dataset_key="bridge_dataset")
    policy.reset()
    chunks = policy.sample({"image": frame}, "put carrot on plate", k=50, rng=rng)  # (50, 4, 7)
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np
from PIL import Image

from vgps_policy_bridge.policy import ACTION_DIM, Policy, PolicyUnavailableError, check_k

OCTO_INSTALL = 'pip install "octo @ git+https://github.com/octo-models/octo.git"'
OCTO_IMAGE_SIZE = 256


def _load_octo(model: str) -> Any:
    try:
        from octo.model.octo_model import OctoModel
    except ImportError as exc:
        raise PolicyUnavailableError(
            f"policy 'octo' needs the octo package ({exc}); install it with: {OCTO_INSTALL}"
        ) from exc
    return OctoModel.load_pretrained(model)


class OctoPolicy(Policy):
    """Octo sampling K chunks per observation from its diffusion head.

    Args:
        model: a local checkpoint directory or an ``hf://`` id
            (``hf://rail-berkeley/octo-small-1.5``), or an already loaded ``OctoModel``.
        dataset_key: key of ``model.dataset_statistics`` to unnormalise actions with
            (``bridge_dataset`` for the WidowX).

    Raises:
        PolicyUnavailableError: ``octo`` is not installed.
        ValueError: unknown ``dataset_key``.
    """

    def __init__(self, model: Any = "hf://rail-berkeley/octo-small-1.5",
                 dataset_key: str = "bridge_dataset"):
        self.model = _load_octo(model) if isinstance(model, str) else model
        self.name = f"octo:{model}" if isinstance(model, str) else "octo"
        stats = getattr(self.model, "dataset_statistics", None) or {}
        if dataset_key not in stats:
            raise ValueError(f"octo_dataset_key={dataset_key!r} is not in the model's dataset "
                             f"statistics; choose from {sorted(stats)}")
        self.statistics = stats[dataset_key]["action"]
        mask = self.model.example_batch["observation"]["timestep_pad_mask"]
        self.window = int(np.asarray(mask).shape[1])
        self._history: deque[np.ndarray] = deque(maxlen=self.window)
        self._tasks: dict[str, Any] = {}

    def reset(self) -> None:
        self._history.clear()

    def observation(self, image: np.ndarray) -> dict[str, np.ndarray]:
        """Adds a frame to the history and returns Octo's batch-of-one observation.

        Returns:
            ``{"image_primary": uint8 (1, W, 256, 256, 3), "timestep_pad_mask": bool (1, W)}``.
        """
        image = np.asarray(image)
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"image must be uint8 (H, W, 3), got {image.dtype} {image.shape}")
        if image.shape[:2] != (OCTO_IMAGE_SIZE, OCTO_IMAGE_SIZE):
            image = np.asarray(Image.fromarray(image).resize(
                (OCTO_IMAGE_SIZE, OCTO_IMAGE_SIZE), Image.LANCZOS))
        self._history.append(image)
        frames = list(self._history)
        pad = self.window - len(frames)
        stack = np.stack([frames[0]] * pad + frames)
        mask = np.array([False] * pad + [True] * len(frames))
        return {"image_primary": stack[None], "timestep_pad_mask": mask[None]}

    def sample(self, observation: dict[str, Any], instruction: str, k: int,
               rng: np.random.Generator) -> np.ndarray:
        """K chunks (K, H, 7) for ``observation["image"]`` (uint8 (H, W, 3), any size)."""
        import jax

        k = check_k(k)
        obs = self.observation(observation["image"])
        if instruction not in self._tasks:
            self._tasks[instruction] = self.model.create_tasks(texts=[instruction])
        key = jax.random.PRNGKey(int(rng.integers(0, 2**31 - 1)))
        actions = self.model.sample_actions(
            obs, self._tasks[instruction], unnormalization_statistics=self.statistics,
            sample_shape=(k,), rng=key)
        actions = np.asarray(actions, np.float32)  # (K, 1, H, A)
        if actions.ndim != 4 or actions.shape[0] != k or actions.shape[1] != 1:
            raise RuntimeError(f"octo returned actions of shape {actions.shape}, expected "
                               f"({k}, 1, H, {ACTION_DIM})")
        chunks = actions[:, 0, :, :ACTION_DIM].copy()
        chunks[..., 6] = np.clip(chunks[..., 6], 0.0, 1.0)
        return chunks
