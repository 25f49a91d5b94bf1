"""Per-dataset standardisation of RLDS episodes to one trajectory format.

A standardiser takes one raw episode as ``read_trajectories`` yields it (``steps`` batched over
time, images still encoded) and returns the common trajectory dict (T = number of steps):

================  =====================  ==================================================
key               dtype, shape           meaning
================  =====================  ==================================================
``image``         string (T,)            primary camera, encoded JPEG/PNG (decoded later to
                  or uint8 (T, H, W, 3)  uint8 (H, W, 3) per transition)
``action``        float32 (T, 7)         Bridge convention ``[dx, dy, dz, droll, dpitch,
                                         dyaw, gripper]``, gripper in [0, 1], 1 = open
``proprio``       float32 (T, P)         proprioception (P depends on the dataset)
``instruction``   string ()              language instruction ("" when the episode has none)
``is_first``      bool (T,)              RLDS flags
``is_last``       bool (T,)
``is_terminal``   bool (T,)
``success``       bool ()                task success; demonstrations count as successful
``episode_id``    string ()              unique id of the episode (the TFDS example id)
================  =====================  ==================================================

Deployment data (``vgps dataset build``) adds ``is_intervention`` bool (T,): a person or the
simulation's corrector chose that step's action (``labels`` treats take-overs specially); and, when
built with ``--candidates``, ``candidate_actions`` float32 ragged (T, None, 7): the candidates the
policy proposed at each step (robot convention, the first action of each chunk), which the
pipeline can carry into batches (``DataConfig.candidates``).

Adding a dataset: write ``standardize_<name>(traj, **options) -> dict`` returning the keys above
(reuse the helpers here), and add it to ``STANDARDIZERS`` under the RLDS dataset name
(``builder.info.name``). Options reach it through ``DatasetSpec.standardize_kwargs``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import tensorflow as tf

Trajectory = dict[str, Any]
Standardizer = Callable[..., Trajectory]

_PER_STEP = ("image", "action", "proprio", "is_first", "is_last", "is_terminal",
             "is_intervention", "candidate_actions")
STANDARD_KEYS = ("image", "action", "proprio", "instruction", "is_first", "is_last",
                 "is_terminal", "success", "episode_id")


def binarize_gripper(gripper: tf.Tensor) -> tf.Tensor:
    """Continuous gripper commands to {0, 1} (Octo's ``binarize_gripper_actions``).

    Values > 0.95 are open (1), < 0.05 closed (0); an in-between value takes the state reached
    after it (scanning backwards). A trailing in-between run (an episode cut mid-motion) is
    rounded at 0.5; Octo keeps the raw value there, which would leave a non-binary gripper.

    Args:
        gripper: float (T,) commands in [0, 1].

    Returns:
        float32 (T,) in {0, 1}.
    """
    gripper = tf.cast(gripper, tf.float32)
    is_open = tf.cast(gripper > 0.95, tf.float32)
    in_between = tf.logical_and(gripper <= 0.95, gripper >= 0.05)

    def step(carry: tf.Tensor, i: tf.Tensor) -> tf.Tensor:
        return tf.where(in_between[i], carry, is_open[i])

    n = tf.shape(gripper)[0]
    init = tf.cond(n > 0, lambda: tf.cast(gripper[-1] > 0.5, tf.float32), lambda: tf.constant(1.0))
    return tf.scan(step, tf.range(n), init, reverse=True)


def relative_to_absolute_gripper(relative: tf.Tensor) -> tf.Tensor:
    """Relative gripper commands (+1 close, -1 open, 0 keep) to absolute (1 open, 0 closed).

    Octo's ``rel2abs_gripper_actions``: |command| <= 0.1 keeps the previous state; the state
    before the first non-zero command is the opposite of that command (a first "close" means
    the gripper was open); with no command at all the gripper is open throughout.

    Args:
        relative: float (T,) relative closedness commands (RT-1 ``gripper_closedness_action``).

    Returns:
        float32 (T,) absolute gripper state in {0, 1}.
    """
    relative = tf.cast(relative, tf.float32)
    # +1 = opening, -1 = closing, 0 = no change
    command = tf.where(relative < -0.1, 1, tf.where(relative > 0.1, -1, 0))
    nonzero = tf.not_equal(command, 0)

    def before_first_command() -> tf.Tensor:
        return -command[tf.argmax(tf.cast(nonzero, tf.int32), output_type=tf.int32)]

    start = tf.cond(tf.reduce_any(nonzero), before_first_command, lambda: tf.constant(1))

    def step(carry: tf.Tensor, i: tf.Tensor) -> tf.Tensor:
        return tf.where(command[i] == 0, carry, command[i])

    state = tf.scan(step, tf.range(tf.shape(command)[0]), start)
    return tf.cast(state, tf.float32) / 2.0 + 0.5


def relabel_from_state(traj: Trajectory, state: tf.Tensor, wrap_angles: bool = True) -> Trajectory:
    """Replaces the 6 movement dims with reached-state deltas and drops the last step (Octo).

    ``action[t, :6] = state[t + 1, :6] - state[t, :6]``; the gripper command is kept. The last
    step has no next state and is dropped, so T becomes T - 1; ``is_last`` and ``is_terminal``
    move to the new last step.

    Args:
        traj: a standard trajectory (T steps).
        state: float (T, >= 6) end-effector ``[x, y, z, roll, pitch, yaw, ...]``.
        wrap_angles: wrap the rotation deltas to [-pi, pi) (Octo does not; a delta across the
            +-pi seam is otherwise ~2 pi instead of the small rotation it is).

    Returns:
        The relabelled trajectory with T - 1 steps.
    """
    state = tf.cast(state, tf.float32)
    delta = state[1:, :6] - state[:-1, :6]
    if wrap_angles:
        rot = tf.math.floormod(delta[:, 3:6] + math.pi, 2.0 * math.pi) - math.pi
        delta = tf.concat([delta[:, :3], rot], axis=1)
    out = {k: (v[:-1] if k in _PER_STEP else v) for k, v in traj.items()}
    out["action"] = tf.concat([delta, traj["action"][:-1, 6:7]], axis=1)
    n = tf.shape(out["action"])[0]
    last = tf.equal(tf.range(n), n - 1)
    out["is_last"] = last
    out["is_terminal"] = tf.logical_and(last, tf.reduce_any(traj["is_terminal"][-1:]))
    return out


def decode_step_rows(encoded: Any, width: int) -> tf.RaggedTensor:
    """A variable-length float32 step feature as ``read_trajectories`` leaves it -> ragged.

    ``read_trajectories`` skips decoding the steps, so a TFDS ``Tensor(shape=(None, width))``
    step feature arrives as one zlib-compressed byte string per step (its ``encoding="zlib"``);
    an already decoded ragged tensor is returned as it is.

    Args:
        encoded: string (T,) compressed rows, or float32 ragged (T, None, width).
        width: the length of each row's last dimension (7 for actions).

    Returns:
        float32 ragged (T, None, width).
    """
    if isinstance(encoded, tf.RaggedTensor):
        return encoded
    flat = tf.map_fn(
        lambda s: tf.io.decode_raw(tf.io.decode_compressed(s, compression_type="ZLIB"),
                                   tf.float32),
        encoded, fn_output_signature=tf.RaggedTensorSpec([None], tf.float32))
    return tf.RaggedTensor.from_row_lengths(tf.reshape(flat.flat_values, [-1, width]),
                                            flat.row_lengths() // width)


def _first_or_empty(strings: tf.Tensor) -> tf.Tensor:
    return tf.cond(tf.size(strings) > 0, lambda: strings[0], lambda: tf.constant(""))


def _bridge_layout(traj: Trajectory, relabel_actions: bool, wrap_angles: bool) -> Trajectory:
    steps = traj["steps"]
    obs = steps["observation"]
    action = tf.cast(steps["action"], tf.float32)
    out = {
        "image": obs["image_0"],
        "action": tf.concat([action[:, :6], binarize_gripper(action[:, 6])[:, None]], axis=1),
        "proprio": tf.cast(obs["state"], tf.float32),
        "instruction": _first_or_empty(steps["language_instruction"]),
        "is_first": steps["is_first"],
        "is_last": steps["is_last"],
        "is_terminal": steps["is_terminal"],
        "success": tf.constant(True),
        "episode_id": traj["tfds_id"],
    }
    if relabel_actions:
        out = relabel_from_state(out, obs["state"], wrap_angles=wrap_angles)
    return out


def standardize_bridge(traj: Trajectory, *, relabel_actions: bool = True,
                       wrap_angles: bool = True) -> Trajectory:
    """BridgeData V2 (``bridge_dataset``): Octo's standardisation, then success = True.

    Primary camera ``image_0``; ``action[:6]`` kept and the gripper binarised; with
    ``relabel_actions`` (default, as Octo's ``bridge_dataset_transform``) the movement dims are
    replaced by reached-state deltas and the last step is dropped (T -> T - 1). Proprio is the
    7-D ``state``. Demonstrations count as successful.

    Args:
        traj: a raw episode from ``read_trajectories``.
        relabel_actions: relabel movement actions from state deltas (Octo's default).
        wrap_angles: with relabelling, wrap rotation deltas to [-pi, pi).

    Returns:
        The standard trajectory (module docstring), proprio P = 7.
    """
    return _bridge_layout(traj, relabel_actions, wrap_angles)


def standardize_vgps_sim(traj: Trajectory, *, relabel_actions: bool = False,
                         wrap_angles: bool = True) -> Trajectory:
    """Our simulated data (``vgps_sim``): the ``bridge_dataset`` layout plus a success label.

    Assumed layout: ``steps/observation/{image_0, state}``, ``steps/action`` float32[7] in the
    Bridge convention, ``steps/language_instruction``, the RLDS flags, and
    ``episode_metadata/success`` bool. Actions are the commands the simulator executed, so they
    are not relabelled by default; the gripper is binarised (a no-op on {0, 1} commands).

    Args:
        traj: a raw episode from ``read_trajectories``.
        relabel_actions: relabel movement actions from state deltas.
        wrap_angles: with relabelling, wrap rotation deltas to [-pi, pi).

    Returns:
        The standard trajectory with ``success`` from the episode metadata.
    """
    out = _bridge_layout(traj, relabel_actions, wrap_angles)
    out["success"] = tf.cast(traj["episode_metadata"]["success"], tf.bool)
    if "is_intervention" in traj["steps"]:
        iv = tf.cast(traj["steps"]["is_intervention"], tf.bool)
        out["is_intervention"] = iv[:tf.shape(out["action"])[0]]
    if "candidate_actions" in traj["steps"]:
        rows = decode_step_rows(traj["steps"]["candidate_actions"], 7)
        out["candidate_actions"] = rows[:tf.shape(out["action"])[0]]
    return out


def standardize_fractal(traj: Trajectory) -> Trajectory:
    """RT-1 Fractal (``fractal20220817_data``): Octo's ``rt1_dataset_transform``.

    Action = ``world_vector`` (3) + ``rotation_delta`` (3) + the absolute gripper state derived
    from the relative ``gripper_closedness_action`` (1 open, 0 closed); proprio =
    ``base_pose_tool_reached`` (7) + ``gripper_closed`` (1); instruction from
    ``observation/natural_language_instruction``. Demonstrations count as successful.

    Args:
        traj: a raw episode from ``read_trajectories``.

    Returns:
        The standard trajectory (module docstring), proprio P = 8.
    """
    steps = traj["steps"]
    obs, act = steps["observation"], steps["action"]
    gripper = relative_to_absolute_gripper(act["gripper_closedness_action"][:, 0])
    return {
        "image": obs["image"],
        "action": tf.concat([tf.cast(act["world_vector"], tf.float32),
                             tf.cast(act["rotation_delta"], tf.float32),
                             gripper[:, None]], axis=1),
        "proprio": tf.concat([tf.cast(obs["base_pose_tool_reached"], tf.float32),
                              tf.cast(obs["gripper_closed"], tf.float32)], axis=1),
        "instruction": _first_or_empty(obs["natural_language_instruction"]),
        "is_first": steps["is_first"],
        "is_last": steps["is_last"],
        "is_terminal": steps["is_terminal"],
        "success": tf.constant(True),
        "episode_id": traj["tfds_id"],
    }


STANDARDIZERS: Mapping[str, Standardizer] = {
    "bridge_dataset": standardize_bridge,
    "fractal20220817_data": standardize_fractal,
    "vgps_sim": standardize_vgps_sim,
    # deployment episodes (``vgps dataset build``): vgps_sim's features plus extra step and
    # episode features (interventions, timestamps, candidates); training reads the
    # interventions, and the candidates when DataConfig.candidates > 0
    "vgps_deploy": standardize_vgps_sim,
}


def _feature_names(builder: Any) -> set[str]:
    """Flattened feature paths of a builder, e.g. ``steps/observation/image_0``."""
    def walk(features: Any, prefix: str) -> set[str]:
        inner = getattr(features, "feature", features)  # a Dataset wraps its step features
        if not hasattr(inner, "items"):
            return {prefix}
        out: set[str] = set()
        for key, sub in inner.items():
            out |= walk(sub, f"{prefix}/{key}" if prefix else key)
        return out

    return walk(builder.info.features, "")


def standardizer_name(builder: Any, requested: str | None = None) -> str:
    """The ``STANDARDIZERS`` entry for an opened dataset.

    ``requested`` (``DatasetSpec.name``) when given; else the dataset's own name when
    registered; else ``vgps_sim`` for any dataset in the vgps_sim layout (``image_0``,
    ``state``, ``action`` steps and an ``episode_metadata/success`` label), so a deployment
    dataset written under any name is read like ``vgps_deploy``.

    Raises:
        KeyError: naming the registered datasets when none applies.
    """
    if requested:
        return requested
    name = builder.info.name
    if name in STANDARDIZERS:
        return name
    needed = {"steps/observation/image_0", "steps/observation/state", "steps/action",
              "steps/language_instruction", "episode_metadata/success"}
    if needed <= _feature_names(builder):
        return "vgps_sim"
    raise KeyError(f"no standardiser for dataset {name!r} and it lacks the vgps_sim layout "
                   f"({sorted(needed)}); registered: {sorted(STANDARDIZERS)} (add one to "
                   "vgps_training.data.standardize.STANDARDIZERS or set DatasetSpec.name)")


def get_standardizer(name: str, **options: Any) -> Callable[[Trajectory], Trajectory]:
    """The registered standardiser for dataset ``name`` with ``options`` bound.

    Raises:
        KeyError: naming the registered datasets when ``name`` is unknown.
    """
    if name not in STANDARDIZERS:
        raise KeyError(f"no standardiser for dataset {name!r}; registered: {sorted(STANDARDIZERS)}"
                       " (add one to vgps_training.data.standardize.STANDARDIZERS)")
    fn = STANDARDIZERS[name]
    return lambda traj: fn(traj, **options)
