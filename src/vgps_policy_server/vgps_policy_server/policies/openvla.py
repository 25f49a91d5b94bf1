"""An OpenVLA-style model as a ``ServedPolicy``: one action per call, K calls per request.

OpenVLA (and models deployed like it, behind ``/act``) predicts ONE 7-D action per forward
pass, greedily by default: K candidates then cost K forward passes, and unless sampling is on
(``do_sample=True``, with a temperature the callable applies) they are K identical copies and
the critic has nothing to choose from. The action comes out un-normalised with the statistics
named by ``unnorm_key`` (``"bridge_orig"`` for Bridge/WidowX), already in the Bridge robot
action space (end-effector deltas, gripper in [0, 1], 1 = open). This wrapper calls
``predict_action(image, instruction, unnorm_key, do_sample)`` K times and returns the (K, 1, 7)
chunks (H = 1). Reproducibility: pass ``seed_fn`` (e.g. ``torch.manual_seed``), called with
the request's seed before the K calls.

Usage::

    def predict_action(image, instruction, unnorm_key, do_sample):   # with transformers
        prompt = f"In: What action should the robot take to {instruction.lower()}?\\nOut:"
        inputs = processor(prompt, PIL.Image.fromarray(image)).to("cuda:0", torch.bfloat16)
        return vla.predict_action(**inputs, unnorm_key=unnorm_key, do_sample=do_sample,
                                  temperature=1.0)

    policy = OpenVLAPolicy(predict_action, unnorm_key="bridge_orig", seed_fn=torch.manual_seed)
    PolicyServer(policy, "0.0.0.0", 8000).serve_forever()
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from vgps_policy_server.policy import ACTION_DIM, make_metadata

PredictAction = Callable[[np.ndarray, str, str, bool], Any]


class OpenVLAPolicy:
    """Wraps an OpenVLA-style ``predict_action`` callable (see the module docstring).

    Args:
        predict_action: ``(image uint8 (h, w, 3), instruction, unnorm_key, do_sample)`` -> 7
            numbers in the robot action space.
        unnorm_key: the dataset statistics the model un-normalises with (``"bridge_orig"``).
        do_sample: sample instead of greedy decoding (greedy gives K identical candidates).
        seed_fn: seeds the model's random generator with the request's seed (reproducibility).
        image_name: the image taken from the observation.
        image_size: (height, width) declared in the metadata; (0, 0) takes any size (OpenVLA's
            processor resizes to 224x224 itself).
        max_k: the largest K per request (K forward passes each).
        name, version: reported in the metadata.
    """

    def __init__(self, predict_action: PredictAction, unnorm_key: str, *, do_sample: bool = True,
                 seed_fn: Callable[[int], Any] | None = None, image_name: str = "primary",
                 image_size: Sequence[int] = (0, 0), max_k: int = 64, name: str = "openvla",
                 version: str = "unknown"):
        if not callable(predict_action):
            raise ValueError("OpenVLAPolicy.predict_action must be callable")
        if not isinstance(unnorm_key, str) or not unnorm_key:
            raise ValueError(f"OpenVLAPolicy.unnorm_key={unnorm_key!r}: name the dataset "
                             "statistics to un-normalise with, e.g. 'bridge_orig'")
        self.predict_action, self.unnorm_key = predict_action, unnorm_key
        self.do_sample, self.seed_fn = bool(do_sample), seed_fn
        self.image_name = image_name
        self._metadata = make_metadata(name, version, horizon=1, images={image_name: image_size},
                                       max_k=max_k)

    def metadata(self) -> dict[str, Any]:
        return dict(self._metadata)

    def reset(self, episode_id: str) -> None:
        """Nothing to forget: OpenVLA sees one frame at a time."""

    def sample(self, observation: dict[str, Any], instruction: str, k: int, seed: int,
               episode_id: str, step: int) -> np.ndarray:
        """K calls of ``predict_action`` -> float32 (K, 1, 7)."""
        image = observation["images"][self.image_name]
        if self.seed_fn is not None:
            self.seed_fn(seed)
        out = np.empty((k, 1, ACTION_DIM), np.float32)
        for i in range(k):
            action = np.asarray(self.predict_action(image, instruction, self.unnorm_key,
                                                    self.do_sample), dtype=np.float64)
            if action.size != ACTION_DIM:
                raise ValueError(f"predict_action returned shape {action.shape}: need "
                                 f"{ACTION_DIM} values")
            out[i, 0] = action.reshape(ACTION_DIM)
        return out
