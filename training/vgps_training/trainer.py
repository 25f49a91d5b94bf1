"""The training loop: data -> jitted agent update on all devices -> logs, validation, checkpoints.

A run directory holds:
    config.json            the TrainConfig
    run.json               language encoder, per-dataset bounds, sizes, held-out episodes and
                           lineage (paths, bags, the parent critic), read by export
    checkpoints/<step>/    orbax TrainState (written atomically; a killed save is ignored)
    data_state/<step>.*    the tf.data iterator at that step (shuffle buffer and all)
    metrics.jsonl, tensorboard/

Resuming restores both, so a killed run continued with ``train(config, run_dir)`` produces the
same updates, step for step, as one that was never interrupted. With ``init_from`` a new run
starts from a deployed critic's parameters (``finetune``); a run directory with checkpoints
resumes from them. Training reads every episode but the held-out ones, validation only those
(``data.holdout``). Every update's key is
``fold_in(seed key, step)``, so nothing random depends on when the run was (re)started.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

import jax
import numpy as np
from tqdm import tqdm

from vgps_critic.config import ACTION_CLIP
from vgps_critic.language import ENCODER_DIMS, LanguageEncoder, get_encoder
from vgps_training import distributed, finetune, lineage
from vgps_training.agents import AGENTS
from vgps_training.config import TrainConfig
from vgps_training.gap_watch import GapWatch
from vgps_training.logger import MetricLogger
from vgps_training.validation import Validator

log = logging.getLogger(__name__)


def _critic_config(config: TrainConfig):
    dim = ENCODER_DIMS.get(config.language_encoder, config.critic.language_dim)
    return dataclasses.replace(config.critic, language_dim=dim)


def build_agent(config: TrainConfig):
    agent_cls, _ = AGENTS[config.agent]
    return agent_cls(_critic_config(config), config.agent_config)


class InstructionEmbedder:
    """Instruction bytes -> embeddings, cached per distinct instruction."""

    def __init__(self, encoder: LanguageEncoder) -> None:
        self.encoder = encoder

    def __call__(self, instructions: np.ndarray) -> np.ndarray:
        texts = [t.decode() if isinstance(t, bytes) else str(t) for t in instructions]
        # Trajectories without an instruction (only when skip_unlabeled=False) get a neutral one.
        return np.stack([self.encoder.encode(t if t.strip() else "do the task") for t in texts])


def to_agent_batch(raw: dict[str, np.ndarray], embed: InstructionEmbedder) -> dict[str, Any]:
    """Pipeline batch -> the agents' batch format (see agents/calql.py)."""
    batch = {
        "image": raw["image"], "next_image": raw["next_image"],
        "language": embed(raw["instruction"]),
        "action": np.clip(raw["action"], -ACTION_CLIP, ACTION_CLIP).astype(np.float32),
        "reward": raw["reward"].astype(np.float32), "mask": raw["mask"].astype(np.float32),
        "mc_return": raw["mc_return"].astype(np.float32),
    }
    if "next_action" in raw:
        batch["next_action"] = np.clip(raw["next_action"], -ACTION_CLIP,
                                       ACTION_CLIP).astype(np.float32)
    if "episode_success" in raw:
        batch["episode_success"] = raw["episode_success"].astype(np.float32)
    if "candidates" in raw:  # data.candidates > 0: the policy's recorded candidates
        batch["candidates"] = np.clip(raw["candidates"], -ACTION_CLIP,
                                      ACTION_CLIP).astype(np.float32)
        batch["candidate_mask"] = raw["candidate_mask"].astype(np.float32)
    return batch


class _DataState:
    """Saves and restores the tf.data iterator next to each orbax step."""

    def __init__(self, root: Path, iterator: Any) -> None:
        import tensorflow as tf

        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self._ckpt = tf.train.Checkpoint(iterator=iterator)

    def save(self, step: int) -> None:
        self._ckpt.write(str(self.root / str(step)))

    def restore(self, step: int) -> None:
        prefix = self.root / str(step)
        if not Path(f"{prefix}.index").exists():
            raise RuntimeError(f"checkpoint step {step} has no data iterator state at {prefix}; "
                               "the run directory is incomplete")
        self._ckpt.read(str(prefix)).assert_consumed()

    def prune(self, keep: set[int]) -> None:
        for path in self.root.glob("*.index"):
            if int(path.stem) not in keep:
                for part in self.root.glob(f"{path.stem}.*"):
                    part.unlink()


def _checkpoint_manager(run_dir: Path, config: TrainConfig):
    import orbax.checkpoint as ocp

    options = ocp.CheckpointManagerOptions(max_to_keep=config.keep_checkpoints, create=True)
    return ocp.CheckpointManager((run_dir / "checkpoints").absolute(), options=options)


def train(config: TrainConfig, run_dir: str | Path, *, tensorboard: bool = True,
          wandb_project: str | None = None, progress: bool = True,
          stop_after: int | None = None) -> dict[str, float]:
    """Train (or resume) ``config`` in ``run_dir``; returns the last logged metrics.

    Args:
        config: the run's configuration; when resuming, must equal the saved one except for
            ``steps`` (a larger value trains a finished run further).
        run_dir: run directory (created if needed).
        stop_after: save and stop once this step is reached (resume later with the same call).
    """
    import orbax.checkpoint as ocp
    import tensorflow as tf

    from vgps_training.data.pipeline import make_dataset

    tf.config.set_visible_devices([], "GPU")  # tf.data only; accelerators belong to JAX
    parent = None
    if config.init_from:
        parent = finetune.load_parent(config.init_from, config.init_member)
        config = finetune.resolve_config(config, parent)
    elif config.agent == "calql" and (config.calql.anchor_weight > 0
                                      or config.calql.candidate_anchor_weight > 0):
        raise ValueError("calql.anchor_weight or candidate_anchor_weight > 0 anchors to the "
                         "parent critic: give --init-from CRITIC")
    elif config.name == "finetune":
        raise ValueError("config finetune continues a deployed critic: give --init-from CRITIC "
                         "(and --init-member I for an ensemble)")
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    saved = run_dir / "config.json"
    if saved.exists():
        previous, current = json.loads(saved.read_text()), config.to_dict()
        # Only `steps` may change: nothing else (the learning-rate schedule included) depends on
        # it, so a finished run can be trained further and still match a run given the larger
        # number from the start.
        if {**previous, "steps": current["steps"]} != current:
            changed = sorted(k for k in current.keys() | previous.keys()
                             if k != "steps" and previous.get(k) != current.get(k))
            raise ValueError(f"{run_dir} holds a run with a different configuration "
                             f"({', '.join(changed)} differ); use a new run directory or the "
                             f"same settings (see {saved}; only steps may change)")
        if previous["steps"] != current["steps"]:
            log.info("%s: steps %d -> %d", run_dir, previous["steps"], current["steps"])
    saved.write_text(json.dumps(config.to_dict(), indent=2) + "\n")

    mesh = distributed.make_mesh()
    if config.batch_size % (jax.process_count() * jax.local_device_count()):
        raise ValueError(f"batch_size={config.batch_size} must divide by the number of devices "
                         f"({jax.device_count()})")
    per_host = config.batch_size // jax.process_count()
    data = make_dataset(dataclasses.replace(config.data, batch_size=per_host, train=True,
                                            seed=config.seed, subset="train"))
    deploy = config.deploy_dataset or data.names[0]
    if deploy not in data.names:
        raise ValueError(f"deploy_dataset={deploy!r} is not one of the datasets {data.names}")
    if parent is not None:
        finetune.check_deploy_bounds(deploy, data.bounds[deploy], parent)
    iterator = iter(data.dataset)
    data_state = _DataState(run_dir / "data_state" / f"host{jax.process_index()}", iterator)
    _write_run_info(run_dir, config, data, parent)

    embed = InstructionEmbedder(get_encoder(config.language_encoder))
    agent = build_agent(config)
    if parent is not None and config.agent == "calql" and (
            config.calql.anchor_weight > 0 or config.calql.candidate_anchor_weight > 0):
        agent.anchor = jax.tree_util.tree_map(jax.numpy.asarray, parent.params())
    key = jax.random.key(config.seed)
    state = agent.init(jax.random.fold_in(key, 0))
    manager = _checkpoint_manager(run_dir, config)
    start = manager.latest_step() or 0
    if start:
        abstract = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, state)
        state = manager.restore(start, args=ocp.args.StandardRestore(abstract))
        data_state.restore(start)
    elif parent is not None:
        state = finetune.initial_state(state, parent)
    state = distributed.replicate(state, mesh)
    update = jax.jit(agent.update, donate_argnums=0)
    validator = Validator(agent) if config.val_every else None
    val_batches = _validation_batches(config, embed) if validator else []

    logger = MetricLogger(run_dir, tensorboard=tensorboard, wandb_project=wandb_project,
                          config=config.to_dict())
    last: dict[str, float] = {}
    gap_watch = GapWatch()  # warns once if Cal-QL's conservative gap closes
    step_key = jax.random.fold_in(key, 1)
    bar = tqdm(range(start, config.steps), initial=start, total=config.steps,
               desc=f"train {config.name}", disable=not progress)
    try:
        for step in bar:
            raw = {k: v.numpy() for k, v in next(iterator).items()}
            batch = to_agent_batch(raw, embed)
            batch.pop("episode_success", None)
            state, metrics = update(state, distributed.shard_batch(batch, mesh),
                                    jax.random.fold_in(step_key, step))
            done = step + 1
            if done % config.log_every == 0 or done == config.steps:
                last = {k: float(v) for k, v in metrics.items()}
                logger.log(done, last)
                bar.set_postfix(critic=f"{last['critic_loss']:.3f}", q=f"{last['q_data']:.2f}")
                gap_watch.update(done, last)  # logs its warning itself, once
            if validator and (done % config.val_every == 0 or done == config.steps):
                logger.log(done, validator(state, val_batches, jax.random.fold_in(key, 2)),
                           prefix="val")
            stopping = stop_after is not None and done >= stop_after
            if done % config.save_every == 0 or done == config.steps or stopping:
                data_state.save(done)
                manager.save(done, args=ocp.args.StandardSave(state))
                manager.wait_until_finished()
                data_state.prune(set(manager.all_steps()))
            if stopping:
                break
    finally:
        manager.wait_until_finished()
        logger.close()
    return last


def _validation_batches(config: TrainConfig, embed: InstructionEmbedder) -> list[dict]:
    """A fixed set of un-augmented batches of held-out episodes (a dataset's validation split,
    else its held-out fraction; ``data.holdout``), none of which training sees."""
    from vgps_training.data.pipeline import make_dataset

    per_host = config.batch_size // jax.process_count()
    data = make_dataset(dataclasses.replace(config.data, train=False, batch_size=per_host,
                                            seed=config.seed + 1, subset="validation"))
    batches = []
    for raw in data.as_numpy():
        batches.append(to_agent_batch(raw, embed))
        if len(batches) >= config.val_batches:
            break
    if not batches:
        raise ValueError("validation data is empty: the held-out episodes have fewer "
                         f"transitions than one batch ({per_host}); raise data.val_fraction or "
                         "set val_every=0")
    return batches


def _write_run_info(run_dir: Path, config: TrainConfig, data: Any,
                    parent: finetune.ParentCritic | None) -> None:
    info = {
        "language_encoder": config.language_encoder,
        "datasets": {name: {"bounds": {"low": [float(x) for x in data.bounds[name][0]],
                                       "high": [float(x) for x in data.bounds[name][1]]},
                            "weight": float(w),
                            "stats": _jsonable(data.stats[name]),
                            "held_out": data.heldout[name].summary(),
                            "held_out_ids": list(data.heldout[name].val_ids),
                            "lineage": lineage.dataset_lineage(spec.path, name,
                                                               data.stats[name].version)}
                     for name, w, spec in zip(data.names, data.weights, config.data.datasets)},
        "deploy_dataset": config.deploy_dataset or data.names[0],
        "parent": parent.lineage() if parent is not None else None,
    }
    (run_dir / "run.json").write_text(json.dumps(info, indent=2) + "\n")


def _jsonable(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj):
        return _jsonable(dataclasses.asdict(obj))
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def latest_state(run_dir: str | Path) -> tuple[TrainConfig, Any, int]:
    """Load a run's config and its latest TrainState (for export and analysis)."""
    import orbax.checkpoint as ocp

    from vgps_training.config import from_dict

    run_dir = Path(run_dir)
    if not (run_dir / "config.json").exists():
        raise FileNotFoundError(f"{run_dir} is not a training run (no config.json)")
    config = from_dict(json.loads((run_dir / "config.json").read_text()))
    manager = _checkpoint_manager(run_dir, config)
    step = manager.latest_step()
    if step is None:
        raise FileNotFoundError(f"{run_dir} has no checkpoint yet")
    agent = build_agent(config)
    abstract = jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct,
                                      agent.init(jax.random.key(0)))
    state = manager.restore(step, args=ocp.args.StandardRestore(abstract))
    return config, state, step


__all__ = ["build_agent", "latest_state", "to_agent_batch", "train"]
