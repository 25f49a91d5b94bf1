"""Typed training configurations, named presets, and ``--set key=value`` overrides.

Presets (``preset(name, data_dir)``):
    paper   ResNet-34 FiLM at 256x256, Bridge + Fractal balanced by size, batch 512, Cal-QL with
            the paper's hyperparameters, MUSE language embeddings (as the paper)
    sim     the simulation critic: small FiLM-ResNet at 64x64 on the ``vgps_sim`` dataset,
            batch 64, 10k steps, the offline MiniLM encoder; Cal-QL with gamma 0.9, alpha 1 and
            a faster target (0.01) than the paper's (0.98, 5, 0.005): the simulated episodes are
            short (60 steps) and CPU budgets small, and with the paper's values 8k steps left Q
            far from converged (mean Q -19 against Monte-Carlo -42) and biased towards the
            policy's most frequent action (alpha times the log density ratio). Rewards use
            H = 1: a simulated episode ends at the step that reaches the goal, so only that step
            earns reward 0. The paper's H = 3 suits teleoperated episodes that go on for a few
            steps after success; here it would make the two steps before the release terminal
            with reward 0 too, so "hold and lift back up" at the place pose, when the release
            still came within two steps, would be labelled exactly as good as releasing
    finetune  continues a deployed sim critic (``--init-from CRITIC``, required) on an equal
            mixture of its previous data (``vgps_sim``) and the deployment dataset
            (``vgps_deploy``): the sim preset's model and Cal-QL settings (the parent's discount
            and reward horizon must be kept), 2,500 steps: the first 500 train only the actor and
            temperature (the critic's learning rate is 0: the deployed critic comes without its
            actor, and a fresh actor's actions would make the first TD targets garbage), then the
            critic at learning rate 1e-4 (a third of the sim preset's: the parent is a good
            solution and large steps on a small new dataset would forget the old one), 200-step
            warm-ups (Adam's first steps on fresh moments are large) and ``balance_weights=False``
            so the few deployment episodes are not drowned by the size of the old data. Every
            dataset's action bounds come from the parent's card. Replace the datasets with
            ``--dataset PATH[:WEIGHT]``.
    debug   a tiny critic on the Bridge slice for tests: 32x32, batch 8, a handful of steps

Validation runs on held-out episodes (``data.val_split`` where a dataset has it, else
``data.val_fraction`` of its episodes by id hash, excluded from training; see
``vgps_training.data.holdout``).
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

from vgps_critic.config import PRESETS, CriticConfig
from vgps_training.agents import CalQLConfig, IQLConfig
from vgps_training.data.augment import AugmentConfig
from vgps_training.data.labels import LabelConfig
from vgps_training.data.pipeline import DataConfig, DatasetSpec

SIM_DISCOUNT = 0.9  # the sim preset's gamma (see the module docstring)
PRESET_NAMES = ("paper", "sim", "finetune", "debug")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs; written to ``<run>/config.json``."""

    name: str
    data: DataConfig
    critic: CriticConfig
    agent: str = "calql"  # calql | iql
    language_encoder: str = "minilm-l6-v2"  # embeds the instructions; recorded in the card
    deploy_dataset: str | None = None  # whose action bounds the exported card gets (None: first)
    batch_size: int = 64  # global batch over all hosts and devices
    steps: int = 10_000
    log_every: int = 50
    val_every: int = 1_000  # 0 disables validation
    val_batches: int = 4
    save_every: int = 1_000
    keep_checkpoints: int = 3
    seed: int = 0
    init_from: str | None = None  # parent critic to continue from (vgps_training.finetune)
    init_member: int | None = None  # its ensemble member, when init_from is an ensemble
    calql: CalQLConfig = dataclasses.field(default_factory=CalQLConfig)
    iql: IQLConfig = dataclasses.field(default_factory=IQLConfig)

    def __post_init__(self) -> None:
        if self.agent not in ("calql", "iql"):
            raise ValueError(f"TrainConfig.agent={self.agent!r}: choose 'calql' or 'iql'")
        for field in ("batch_size", "steps", "log_every", "save_every", "keep_checkpoints"):
            if int(getattr(self, field)) < 1:
                raise ValueError(f"TrainConfig.{field}={getattr(self, field)!r}: must be >= 1")
        if self.val_every < 0 or self.val_batches < 1:
            raise ValueError(f"TrainConfig.val_every={self.val_every!r}/val_batches="
                             f"{self.val_batches!r}: need val_every >= 0, val_batches >= 1")
        if abs(self.data.labels.discount - self.agent_config.discount) > 1e-12:
            raise ValueError(f"TrainConfig: data.labels.discount={self.data.labels.discount} "
                             f"(Monte-Carlo returns) must equal {self.agent}.discount="
                             f"{self.agent_config.discount} (TD targets)")
        if self.init_member is not None and (self.init_from is None or self.init_member < 0):
            raise ValueError(f"TrainConfig.init_member={self.init_member!r}: needs init_from "
                             "(an ensemble directory) and a member index >= 0")
        if (self.agent == "calql" and self.calql.candidate_anchor_weight > 0
                and self.data.candidates == 0):
            raise ValueError("TrainConfig: calql.candidate_anchor_weight > 0 reads the recorded "
                             "candidates: set data.candidates (e.g. 50)")
        if tuple(self.data.image_size) != tuple(self.critic.image_size):
            raise ValueError(f"TrainConfig.data.image_size={self.data.image_size} differs from "
                             f"critic.image_size={self.critic.image_size}")

    @property
    def agent_config(self) -> CalQLConfig | IQLConfig:
        return self.calql if self.agent == "calql" else self.iql

    def to_dict(self) -> dict[str, Any]:
        return _to_jsonable(dataclasses.asdict(self))


def _to_jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_to_jsonable(v) for v in value]
    if hasattr(value, "items"):
        return {k: _to_jsonable(v) for k, v in value.items()}
    return value


def _dataset(data_dir: str, name: str, version: str, **kwargs: Any) -> DatasetSpec:
    return DatasetSpec(path=os.path.join(data_dir, name, version), **kwargs)


def preset(name: str, data_dir: str) -> TrainConfig:
    """A named configuration reading its datasets under ``data_dir``."""
    if name == "paper":
        critic = PRESETS["paper"]
        return TrainConfig(
            name="paper", critic=critic, language_encoder="muse", batch_size=512,
            steps=1_000_000, log_every=100, val_every=10_000, save_every=50_000,
            data=DataConfig(
                datasets=(_dataset(data_dir, "bridge_dataset", "1.0.0",
                                   action_bounds="bridge"),
                          _dataset(data_dir, "fractal20220817_data", "0.1.0",
                                   action_bounds="fractal")),
                image_size=critic.image_size, batch_size=512, shuffle_buffer=100_000),
            deploy_dataset="bridge_dataset")
    if name == "sim":
        critic = PRESETS["sim"]
        return TrainConfig(
            name="sim", critic=critic, batch_size=64, steps=10_000, log_every=50,
            val_every=1_000, save_every=500,
            data=DataConfig(datasets=(_dataset(data_dir, "vgps_sim", "1.0.0",
                                               action_bounds="bridge"),),
                            image_size=critic.image_size, batch_size=64, shuffle_buffer=20_000,
                            skip_unlabeled=False,
                            # failed sim episodes never reach the goal: MC return -1/(1-gamma)
                            labels=LabelConfig(failure_return="infinite_horizon",
                                               discount=SIM_DISCOUNT, success_horizon=1)),
            calql=CalQLConfig(discount=SIM_DISCOUNT, cql_alpha=1.0, target_update_rate=0.01),
            iql=IQLConfig(discount=SIM_DISCOUNT, target_update_rate=0.01))
    if name == "finetune":
        base = preset("sim", data_dir)
        specs = (_dataset(data_dir, "vgps_sim", "1.0.0", weight=1.0),
                 _dataset(data_dir, "vgps_deploy", "1.0.0", weight=1.0))
        return dataclasses.replace(
            base, name="finetune", steps=2_500, val_every=500, save_every=500,
            data=dataclasses.replace(base.data, datasets=specs, balance_weights=False),
            # td_backup="data": the deployed critic comes without its actor, and targets at a
            # fresh actor's actions pulled the parent's values apart (docs/flywheel.md)
            calql=dataclasses.replace(base.calql, critic_lr=1e-4, actor_lr=3e-4,
                                      temperature_lr=3e-4, warmup_steps=200,
                                      critic_delay_steps=500, td_backup="data"),
            iql=dataclasses.replace(base.iql, critic_lr=1e-4, value_lr=1e-4, warmup_steps=200))
    if name == "debug":
        critic = PRESETS["tiny"]
        return TrainConfig(
            name="debug", critic=critic, batch_size=8, steps=4, log_every=1, val_every=2,
            val_batches=1, save_every=2,
            calql=CalQLConfig(warmup_steps=0, cql_n_actions=2),
            iql=IQLConfig(warmup_steps=0),
            data=DataConfig(datasets=(_dataset(data_dir, "bridge_dataset", "1.0.0"),),
                            image_size=critic.image_size, batch_size=8, shuffle_buffer=64))
    raise ValueError(f"unknown config {name!r}; choose from {', '.join(PRESET_NAMES)}")


def apply_overrides(config: TrainConfig, overrides: list[str]) -> TrainConfig:
    """Apply ``a.b.c=value`` overrides (value parsed as JSON, else taken as a string).

    All overrides are applied before the config is validated, so fields that must agree can be
    changed together (``--set data.labels.discount=0.9 --set calql.discount=0.9``).
    """
    raw = config.to_dict()
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override {item!r}: use key=value, e.g. steps=100 or "
                             "calql.cql_alpha=1.0")
        key, text = item.split("=", 1)
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = text
        _set_path(raw, key.strip().split("."), value, key)
    return from_dict(raw)


def _set_path(tree: dict[str, Any], path: list[str], value: Any, full: str) -> None:
    node = tree
    for depth, name in enumerate(path):
        if not isinstance(node, dict):
            where = ".".join(path[:depth])
            raise ValueError(f"override {full!r}: {where!r} has no fields")
        if name not in node:
            where = ".".join(path[:depth]) or "the config"
            raise ValueError(f"override {full!r}: {where} has no field {name!r}; "
                             f"fields: {sorted(node)}")
        if depth == len(path) - 1:
            if isinstance(node[name], float) and isinstance(value, int):
                value = float(value)
            node[name] = value
        else:
            node = node[name]


def with_datasets(config: TrainConfig, items: list[str], data_dir: str) -> TrainConfig:
    """Replace the datasets with ``PATH[:WEIGHT]`` items (none: ``config`` unchanged).

    A relative PATH is taken under ``data_dir``; bounds are left unset (computed from the data,
    or the parent critic's with ``init_from``) and sizes do not scale the weights when any item
    gives a weight.
    """
    if not items:
        return config
    specs, weighted = [], False
    for item in items:
        path, weight = item, 1.0
        head, sep, tail = item.rpartition(":")
        if sep:
            try:
                path, weight, weighted = head, float(tail), True
            except ValueError:
                path = item
        if not path:
            raise ValueError(f"--dataset {item!r}: give PATH[:WEIGHT]")
        specs.append(DatasetSpec(path=path if os.path.isabs(path)
                                 else os.path.join(data_dir, path), weight=weight))
    data = dataclasses.replace(config.data, datasets=tuple(specs),
                               balance_weights=config.data.balance_weights and not weighted)
    return dataclasses.replace(config, data=data, deploy_dataset=None)


def with_critic(config: TrainConfig, **changes: Any) -> TrainConfig:
    """Change the critic architecture and keep the data image size in step with it."""
    critic = dataclasses.replace(config.critic, **changes)
    data = dataclasses.replace(config.data, image_size=critic.image_size)
    return dataclasses.replace(config, critic=critic, data=data)


def from_dict(raw: dict[str, Any]) -> TrainConfig:
    """Rebuild a TrainConfig from ``config.json`` (the inverse of ``to_dict``)."""
    data = dict(raw["data"])
    data["datasets"] = tuple(DatasetSpec(**_tuplify(d)) for d in data["datasets"])
    data["augment"] = AugmentConfig(**_tuplify(data["augment"]))
    data["labels"] = LabelConfig(**_tuplify(data["labels"]))
    return TrainConfig(
        **{k: v for k, v in _tuplify(raw).items()
           if k not in ("data", "critic", "calql", "iql")},
        data=DataConfig(**_tuplify(data)),
        critic=CriticConfig.from_dict(raw["critic"]),
        calql=CalQLConfig(**_tuplify(raw["calql"])),
        iql=IQLConfig(**_tuplify(raw["iql"])))


def _tuplify(d: dict[str, Any]) -> dict[str, Any]:
    def conv(v: Any) -> Any:
        if isinstance(v, list):
            return tuple(conv(x) for x in v)
        return v
    return {k: (v if isinstance(v, dict | DatasetSpec | AugmentConfig | LabelConfig)
                else conv(v)) for k, v in d.items()}


__all__ = ["PRESET_NAMES", "TrainConfig", "apply_overrides", "from_dict", "preset", "with_critic",
           "with_datasets"]
