"""Write the deployment episode store (``vgps dataset build``) as the RLDS/TFDS ``vgps_deploy``.

The store is made by vgps from recorded bags: ``STORE/index.json`` and one ``.npz`` per episode
(``STORE/episodes/<run_id>/<index>.npz``: ``images`` (T, H, W, 3) uint8, ``actions`` and
``states`` (T, 7), ``timestamps_ns``, ``interventions``, ``reasons``, ``candidate_counts``,
``candidate_actions`` (sum K, 7), ``candidate_q`` (sum K,), and the episode's ``instruction``,
``task``, ``success``, ``episode_id``, ``bag``, ``label_source``, ``failed_at_step``, ``seed``).
The features are ``vgps_sim``'s (:mod:`vgps_training.sim_dataset`, the Bridge layout) plus::

    steps/is_intervention      bool          a person or the sim corrector chose the action
    steps/timestamp_ns         int64         the source image stamp of the decision
    steps/selection_reason     string        argmax | softmax | fallback | intervention
    steps/candidate_actions    float32 (None, 7)   with --candidates: first action of each chunk
    steps/candidate_q          float32 (None,)     with --candidates: their Q (nan: not recorded)
    episode_metadata/{bag, label_source, failed_at_step (-1: none)}

The version directory is written to a temporary directory and then moved over the old one, so a
failed write leaves the previous dataset intact. ``vgps_dataset.json`` beside the data holds the
counts, the bags and their episodes, what was lost, and per-dimension action statistics.

Usage::

    python -m vgps_training.deploy_dataset data/rlds/vgps_deploy data/rlds --name vgps_deploy \
        --version 1.0.0 [--candidates] [--image-size 128]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from vgps_training.sim_dataset import _features as sim_features

NAME = "vgps_deploy"
VERSION = "1.0.0"
SUMMARY = "vgps_dataset.json"


def features(image_shape: tuple[int, int, int], candidates: bool):
    """The TFDS features of the deployment dataset (see the module docstring)."""
    import tensorflow as tf
    import tensorflow_datasets as tfds

    base = sim_features(image_shape)
    text = tfds.features.Tensor(shape=(), dtype=tf.string)
    steps = dict(base["steps"].feature.items())
    steps.update(is_intervention=tfds.features.Scalar(dtype=np.bool_),
                 timestamp_ns=tfds.features.Scalar(dtype=np.int64),
                 selection_reason=text)
    if candidates:
        # K varies from step to step: a variable dimension inside the steps needs an encoding
        steps.update(candidate_actions=tfds.features.Tensor(shape=(None, 7), dtype=np.float32,
                                                            encoding="zlib"),
                     candidate_q=tfds.features.Tensor(shape=(None,), dtype=np.float32,
                                                      encoding="zlib"))
    meta = dict(base["episode_metadata"].items())
    meta.update(bag=text, label_source=text,
                failed_at_step=tfds.features.Scalar(dtype=np.int64))
    return tfds.features.FeaturesDict({"steps": tfds.features.Dataset(steps),
                                       "episode_metadata": tfds.features.FeaturesDict(meta)})


def load_store_episode(path: str | os.PathLike) -> dict[str, Any]:
    """Read and check one store episode.

    Raises:
        ValueError: a key is missing or the arrays disagree in length (names the file).
    """
    with np.load(path, allow_pickle=False) as data:
        episode = {k: data[k] for k in data.files}
    need = {"images", "actions", "states", "timestamps_ns", "interventions", "reasons",
            "candidate_counts", "candidate_actions", "candidate_q", "instruction", "success",
            "episode_id"}
    missing = need - set(episode)
    if missing:
        raise ValueError(f"{path}: not a store episode, missing {sorted(missing)}")
    t = len(episode["actions"])
    lengths = {k: len(episode[k]) for k in ("images", "states", "timestamps_ns",
                                            "interventions", "reasons", "candidate_counts")}
    if t < 1 or any(n != t for n in lengths.values()):
        raise ValueError(f"{path}: {t} actions but per-step lengths {lengths}")
    if episode["actions"].shape[1:] != (7,) or not np.all(np.isfinite(episode["actions"])):
        raise ValueError(f"{path}: actions must be finite (T, 7), got {episode['actions'].shape}")
    total = int(episode["candidate_counts"].sum())
    if episode["candidate_actions"].shape != (total, 7) or len(episode["candidate_q"]) != total:
        raise ValueError(f"{path}: candidate_counts sum to {total} but candidate_actions is "
                         f"{episode['candidate_actions'].shape}")
    return episode


def _resize(images: np.ndarray, size: int | None) -> np.ndarray:
    if not size or images.shape[1:3] == (size, size):
        return images
    from PIL import Image

    return np.stack([np.asarray(Image.fromarray(im).resize((size, size), Image.BILINEAR))
                     for im in images])


def _example(ep: dict[str, Any], candidates: bool, size: int | None) -> dict[str, Any]:
    t, success = len(ep["actions"]), bool(ep["success"])
    images = _resize(ep["images"], size)
    instruction = str(ep["instruction"])
    ends = np.cumsum(ep["candidate_counts"])
    starts = ends - ep["candidate_counts"]
    steps = []
    for i in range(t):
        last = i == t - 1
        step = {"observation": {"image_0": images[i], "state": ep["states"][i].astype(np.float32)},
                "action": ep["actions"][i].astype(np.float32),
                "language_instruction": instruction,
                "reward": np.float32(1.0 if (last and success) else 0.0),
                "discount": np.float32(1.0), "is_first": i == 0, "is_last": last,
                "is_terminal": last and success,
                "is_intervention": bool(ep["interventions"][i]),
                "timestamp_ns": np.int64(ep["timestamps_ns"][i]),
                "selection_reason": str(ep["reasons"][i])}
        if candidates:
            step["candidate_actions"] = ep["candidate_actions"][starts[i]:ends[i]]
            step["candidate_q"] = ep["candidate_q"][starts[i]:ends[i]]
        steps.append(step)
    return {"steps": steps, "episode_metadata": {
        "success": success, "task": str(ep.get("task", "")), "seed": int(ep.get("seed", -1)),
        "episode_id": str(ep["episode_id"]), "bag": str(ep.get("bag", "")),
        "label_source": str(ep.get("label_source", "")),
        "failed_at_step": int(ep.get("failed_at_step", -1))}}


def _store_files(store: Path) -> tuple[list[Path], dict[str, Any]]:
    index_path = store / "index.json"
    if index_path.is_file():
        index = json.loads(index_path.read_text(encoding="utf-8"))
        files = [store / e["file"] for _, e in sorted(index.get("episodes", {}).items())]
    else:
        index, files = {}, sorted((store / "episodes").rglob("*.npz"))
    absent = [str(f) for f in files if not f.is_file()]
    if absent:
        raise FileNotFoundError(f"the store index lists missing episode files {absent[:3]}")
    if not files:
        raise FileNotFoundError(f"no episode in the store {store} (index.json or episodes/)")
    return files, index


def statistics(actions: np.ndarray) -> dict[str, list[float]]:
    """Per-dimension mean, std, min, max, q01 and q99 of (N, 7) actions."""
    return {"mean": actions.mean(0).tolist(), "std": actions.std(0).tolist(),
            "min": actions.min(0).tolist(), "max": actions.max(0).tolist(),
            "q01": np.quantile(actions, 0.01, axis=0).tolist(),
            "q99": np.quantile(actions, 0.99, axis=0).tolist()}


def write_deploy_dataset(store: str | os.PathLike, data_dir: str | os.PathLike,
                         name: str = NAME, version: str = VERSION, candidates: bool = False,
                         image_size: int | None = None) -> Path:
    """Rewrite ``<data_dir>/<name>/<version>`` from every episode of the store.

    Returns:
        The version directory (readable with ``tfds.builder_from_directory``).

    Raises:
        FileNotFoundError: the store holds no episode; ValueError: a bad episode file or frames
        of different sizes without ``image_size``.
    """
    import tensorflow_datasets as tfds

    store, data_dir = Path(store), Path(data_dir)
    files, index = _store_files(store)
    first = load_store_episode(files[0])
    shape = tuple(int(s) for s in _resize(first["images"][:1], image_size).shape[1:])
    actions, counts = [], {"episodes": 0, "steps": 0, "successes": 0, "failures": 0,
                           "interventions": 0, "intervention_episodes": 0}

    def examples() -> Iterator[tuple[str, dict[str, Any]]]:
        for path in files:
            ep = load_store_episode(path)
            got = tuple(_resize(ep["images"][:1], image_size).shape[1:])
            if got != shape:
                raise ValueError(f"{path}: frames {got} differ from the first episode's {shape};"
                                 " give --image-size N")
            actions.append(ep["actions"])
            n_int = int(ep["interventions"].sum())
            success = bool(ep["success"])
            counts.update(episodes=counts["episodes"] + 1,
                          steps=counts["steps"] + len(ep["actions"]),
                          successes=counts["successes"] + success,
                          failures=counts["failures"] + (not success),
                          interventions=counts["interventions"] + n_int,
                          intervention_episodes=counts["intervention_episodes"] + (n_int > 0))
            yield str(ep["episode_id"]), _example(ep, candidates, image_size)

    data_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-{version}.", dir=data_dir))
    try:
        tfds.dataset_builders.store_as_tfds_dataset(
            name=name, version=version, features=features(shape, candidates),
            split_datasets={"train": examples()}, data_dir=os.fspath(tmp),
            description="Deployment episodes of vgps (recorded bags) with outcomes, "
                        "interventions and selection details.",
            disable_shuffling=False)  # the training reader interleaves files
        written = tmp / name / version
        bags = [{"path": b.get("path", ""), "run_id": b.get("run_id", run_id),
                 "episodes": list(b.get("episodes", []))}
                for run_id, b in sorted(index.get("bags", {}).items())]
        losses = [f"{b.get('path', run_id)}: {loss}"
                  for run_id, b in sorted(index.get("bags", {}).items())
                  for loss in b.get("losses", [])]
        summary = {**counts, "name": name, "version": version, "candidates": candidates,
                   "image_shape": list(shape), "bags": bags, "losses": losses,
                   "left_out": index.get("skipped", {}),
                   "action_statistics": statistics(np.concatenate(actions))}
        (written / SUMMARY).write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
        target = data_dir / name / version
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            os.replace(target, tmp / "old")  # removed with tmp
        os.replace(written, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vgps_training.deploy_dataset",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("store", type=Path, help="the episode store (DIR/NAME)")
    parser.add_argument("data_dir", type=Path, help="the TFDS data directory (DIR)")
    parser.add_argument("--name", default=NAME)
    parser.add_argument("--version", default=VERSION)
    parser.add_argument("--candidates", action="store_true", help="write candidates and Q")
    parser.add_argument("--image-size", type=int, default=None, metavar="N")
    args = parser.parse_args(argv)
    try:
        target = write_deploy_dataset(args.store, args.data_dir, args.name, args.version,
                                      args.candidates, args.image_size)
    except (ValueError, FileNotFoundError) as exc:
        print(f"deploy_dataset: error: {exc}", file=sys.stderr)
        return 2
    print(target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
