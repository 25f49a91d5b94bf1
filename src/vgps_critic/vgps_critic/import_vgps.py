"""Convert a checkpoint written by the paper's V-GPS code into a vgps critic checkpoint.

The paper's training saves the whole agent (online and target parameters of actor, critic and
temperature, three Adam states, step and RNG) as msgpack with flax/orbax's array encoding,
either as a directory ``checkpoint_<step>/`` holding a ``checkpoint`` file or as one file. The
deployed critic is ``state/target_params/modules_critic``; its Q is the minimum over the two
ensemble members of actions rescaled to [-1, 1] with per-dimension bounds and clipped. Nothing
about the architecture is stored, so it is read back from the parameter shapes.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import msgpack
import numpy as np

from vgps_critic.checkpoint import CheckpointError, CriticCard, save_checkpoint
from vgps_critic.config import ActionSpace, CriticConfig

_EXT_NDARRAY, _EXT_COMPLEX, _EXT_SCALAR, _EXT_TUPLE = 1, 2, 3, 4
_BLOCK = re.compile(r"ResNetBlock_(\d+)$")


def _ext_hook(code: int, data: bytes) -> Any:
    if code == _EXT_NDARRAY:
        shape, dtype, buf = msgpack.unpackb(data)
        return np.frombuffer(buf, dtype=np.dtype(dtype)).reshape(shape)
    if code == _EXT_SCALAR:
        shape, dtype, buf = msgpack.unpackb(data)
        return np.frombuffer(buf, dtype=np.dtype(dtype)).reshape(shape)[()]
    if code == _EXT_TUPLE:
        return tuple(msgpack.unpackb(data, ext_hook=_ext_hook, strict_map_key=False))
    if code == _EXT_COMPLEX:
        real, imag = msgpack.unpackb(data)
        return complex(real, imag)
    return msgpack.ExtType(code, data)


def resolve_checkpoint_file(src: str | os.PathLike) -> Path:
    """The msgpack file behind ``src``: a file, a ``checkpoint_<step>`` dir, or their parent."""
    src = Path(src)
    if src.is_file():
        return src
    if not src.is_dir():
        raise CheckpointError(f"V-GPS checkpoint {src} does not exist")
    if (src / "checkpoint").is_file():
        return src / "checkpoint"
    steps = []
    for child in src.iterdir():
        match = re.fullmatch(r"checkpoint_(\d+)", child.name)
        if match:
            steps.append((int(match.group(1)), child))
    if steps:
        return resolve_checkpoint_file(max(steps)[1])
    raise CheckpointError(
        f"{src} holds no V-GPS checkpoint: expected a 'checkpoint' file (orbax layout), a "
        "single msgpack file, or checkpoint_<step> entries")


def read_agent(src: str | os.PathLike) -> tuple[dict, Path]:
    """Read the whole saved agent tree (arrays decoded to numpy) and the file it came from."""
    path = resolve_checkpoint_file(src)
    try:
        with open(path, "rb") as fh:
            tree = msgpack.unpackb(fh.read(), ext_hook=_ext_hook, strict_map_key=False)
    except (msgpack.ExtraData, msgpack.FormatError, msgpack.StackError, ValueError,
            TypeError) as exc:
        raise CheckpointError(f"{path} is not a readable V-GPS (flax msgpack) checkpoint: "
                              f"{type(exc).__name__}: {exc}") from exc
    if not isinstance(tree, dict) or "state" not in tree:
        keys = list(tree)[:5] if isinstance(tree, dict) else type(tree).__name__
        raise CheckpointError(f"{path}: expected a saved V-GPS agent with a 'state' entry, "
                              f"found {keys}")
    return tree, path


def critic_params(agent: dict, which: str = "target") -> dict:
    """``state/target_params/modules_critic`` (deployed) or ``state/params/...`` (online)."""
    key = {"target": "target_params", "online": "params"}.get(which)
    if key is None:
        raise ValueError(f"which must be 'target' or 'online', got {which!r}")
    try:
        params = agent["state"][key]["modules_critic"]
    except (KeyError, TypeError) as exc:
        raise CheckpointError(f"checkpoint has no state/{key}/modules_critic") from exc
    for part in ("encoder", "network", "Dense_0"):
        if part not in params:
            raise CheckpointError(f"state/{key}/modules_critic has no {part!r}; "
                                  f"found {sorted(params)}")
    return params


def infer_config(params: dict, image_size: tuple[int, int]) -> CriticConfig:
    """Read the architecture back from the critic's parameter shapes."""
    try:
        enc = params["encoder"]["encoder"]
        c_in, num_filters = enc["conv_init"]["kernel"].shape[2:]
        blocks = sorted((int(m.group(1)), name) for name in enc
                        if (m := _BLOCK.fullmatch(name)))
        widths = [enc[name]["Conv_0"]["kernel"].shape[3] for _, name in blocks]
        film = "FilmConditioning_0" in enc
        language_dim = enc["FilmConditioning_0"]["Dense_0"]["kernel"].shape[0] if film else 0
        net = params["network"]
        ensemble = net["Dense_0"]["kernel"].shape[0]
        mlp_hidden = tuple(net[f"Dense_{i}"]["kernel"].shape[-1] for i in range(len(net)))
        in_features = net["Dense_0"]["kernel"].shape[1]
    except (KeyError, AttributeError, ValueError, IndexError) as exc:
        raise CheckpointError(f"critic parameters are not in the V-GPS layout: missing or "
                              f"malformed {exc}") from exc
    if [i for i, _ in blocks] != list(range(len(blocks))):
        raise CheckpointError(f"residual blocks are not numbered 0..n-1: {blocks}")
    stage_sizes: list[int] = []
    for i, width in enumerate(widths):
        if i == 0 or width != widths[i - 1]:
            expected = num_filters * 2 ** len(stage_sizes)
            if width != expected:
                raise CheckpointError(f"block {i} has width {width}; vgps supports widths that "
                                      f"double per stage from {num_filters} (expected {expected})")
            stage_sizes.append(0)
        stage_sizes[-1] += 1
    if c_in not in (3, 5):
        raise CheckpointError(f"conv_init takes {c_in} channels; expected 3 (RGB) or 5 (RGB + "
                              "coordinates)")
    feature_dim = widths[-1]
    return CriticConfig(stage_sizes=tuple(stage_sizes), num_filters=int(num_filters),
                        image_size=image_size, language_dim=int(language_dim) or 512,
                        action_dim=int(in_features - feature_dim), mlp_hidden=mlp_hidden,
                        ensemble_size=int(ensemble), spatial_coordinates=c_in == 5, film=film)


def parse_action_bounds(spec: str) -> ActionSpace:
    """``bridge`` | ``fractal`` | ``identity`` | a JSON file or string with min/max lists."""
    if spec in ("bridge", "fractal", "identity"):
        return ActionSpace.named(spec)
    text = Path(spec).read_text() if os.path.isfile(spec) else spec
    try:
        data = json.loads(text)
        low = data.get("min", data.get("low"))
        high = data.get("max", data.get("high"))
        if low is None or high is None:
            raise KeyError("min/max")
        return ActionSpace.from_bounds(low, high)
    except (json.JSONDecodeError, AttributeError, KeyError, TypeError) as exc:
        raise ValueError(
            f"--action-bounds {spec!r}: give 'bridge', 'fractal', 'identity', or JSON like "
            '{"min": [7 numbers], "max": [7 numbers]} (inline or a file)') from exc


def import_vgps(src: str | os.PathLike, out: str | os.PathLike, action_space: ActionSpace,
                image_size: int | tuple[int, int] = 256, which: str = "target",
                name: str | None = None, overwrite: bool = False) -> CriticCard:
    """Convert the paper's checkpoint ``src`` to a vgps critic checkpoint at ``out``.

    Args:
        src: checkpoint file, ``checkpoint_<step>`` directory, or the directory above those.
        out: destination directory.
        action_space: bounds the paper's deployment rescaled actions with.
        image_size: the images the critic was trained on (the release: 256).
        which: ``target`` (what deployment uses) or ``online`` parameters.

    Returns:
        The written card.
    """
    agent, path = read_agent(src)
    params = critic_params(agent, which)
    size = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    config = infer_config(params, size)
    if action_space.dim != config.action_dim:
        raise CheckpointError(f"the critic takes {config.action_dim}-D actions but the bounds "
                              f"have {action_space.dim} dims")
    params = _as_float32_dicts(params)
    step = agent["state"].get("step")
    origin = path.parent.name if path.name == "checkpoint" else path.name
    card = CriticCard(
        config=config, action_space=action_space, language_encoder="muse",
        name=name or f"vgps-release-{origin}",
        reward={"scheme": "last 3 steps of successful episodes 0, else -1", "discount": 0.98},
        data={"source": "V-GPS public release (Cal-QL on Bridge + Fractal)",
              "imported_from": origin},
        training={"algorithm": "cal-ql", "parameters": which,
                  "steps": int(np.asarray(step)) if step is not None else None},
    )
    return save_checkpoint(out, card, params, overwrite=overwrite)


def _as_float32_dicts(tree: Any) -> Any:
    if isinstance(tree, dict):
        return {str(k): _as_float32_dicts(v) for k, v in tree.items()}
    arr = np.asarray(tree)
    if arr.dtype.kind != "f":
        raise CheckpointError(f"critic parameter has dtype {arr.dtype}; expected float")
    return np.array(arr, np.float32)
