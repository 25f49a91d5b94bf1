"""Fine-tuning a deployed critic: init-from, compatibility checks, ensemble members, lineage."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import jax
import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import vgps_critic
from vgps_critic.checkpoint import load_checkpoint
from vgps_critic.config import BRIDGE_BOUNDS
from vgps_critic.critic import Critic
from vgps_critic.ensemble import save_ensemble
from vgps_critic.random_critic import save_random_critic
from vgps_training import finetune, lineage
from vgps_training.cli import main as train_main
from vgps_training.config import apply_overrides, preset
from vgps_training.trainer import build_agent

REPO = Path(__file__).resolve().parents[2]
BRIDGE_ROOT = REPO.parent / "shared" / "data" / "bridge_debug"
needs_bridge = pytest.mark.skipif(not (BRIDGE_ROOT / "bridge_dataset" / "1.0.0").is_dir(),
                                  reason=f"Bridge debug slice not found at {BRIDGE_ROOT}")


@pytest.fixture(scope="module")
def parent(tmp_path_factory) -> Path:
    """A parent critic in the debug preset's architecture (tiny, 32x32, MiniLM), bridge bounds."""
    path = tmp_path_factory.mktemp("parent") / "critic"
    save_random_critic(path, preset="tiny", seed=3)
    return path


def _debug_config(tmp_path: Path, deploy: Path, *overrides: str):
    config = apply_overrides(preset("debug", str(BRIDGE_ROOT)), list(overrides))
    data = dataclasses.replace(
        config.data, cache_dir=str(tmp_path / "cache"), val_fraction=0.3,
        datasets=(*config.data.datasets,
                  dataclasses.replace(config.data.datasets[0], path=str(deploy))))
    return dataclasses.replace(config, data=data)


@needs_bridge
def test_step_zero_q_values_equal_the_parents_exactly(parent, deploy_dataset, tmp_path):
    from vgps_training.data.pipeline import make_dataset

    config = _debug_config(tmp_path, deploy_dataset, f"init_from={json.dumps(str(parent))}")
    loaded = finetune.load_parent(config.init_from)
    config = finetune.resolve_config(config, loaded)
    assert all(d.action_bounds == BRIDGE_BOUNDS for d in config.data.datasets)
    agent = build_agent(config)
    state = finetune.initial_state(agent.init(jax.random.key(7)), loaded)

    reference = vgps_critic.load(parent)
    _, parent_params = load_checkpoint(parent)
    for fresh in (state.params["critic"], agent.deployable_params(state)):
        leaves = zip(jax.tree_util.tree_leaves(fresh), jax.tree_util.tree_leaves(parent_params))
        for a, b in leaves:
            np.testing.assert_array_equal(np.asarray(a), b)
    continued = Critic(reference.card, agent.deployable_params(state))

    data = make_dataset(dataclasses.replace(config.data, train=False, subset="all"))
    batch = next(data.as_numpy())
    instruction = batch["instruction"][0].decode()
    for i in range(3):
        want = reference.score(batch["image"][i], instruction, batch["raw_action"])
        got = continued.score(batch["image"][i], instruction, batch["raw_action"])
        np.testing.assert_array_equal(got, want)  # same function, same parameters: bitwise
    # The training side normalises with the parent's bounds: its Q matches the deployed one.
    embedding = reference.embed(instruction)
    q_train = agent.critic.apply({"params": agent.deployable_params(state)}, batch["image"],
                                 np.repeat(embedding[None], len(batch["image"]), 0),
                                 batch["action"]).min(axis=0)
    q_deployed = [reference.score(img, instruction, act[None])[0]
                  for img, act in zip(batch["image"], batch["raw_action"])]
    np.testing.assert_allclose(np.asarray(q_train), q_deployed, rtol=1e-4, atol=1e-4)


def _parent_agent_and_batch(parent: Path, deploy: Path, tmp_path: Path, *overrides: str):
    """A debug-preset Cal-QL agent continued from ``parent`` (``overrides`` applied), its
    initial state, and one unaugmented batch of Bridge + ``deploy``: (config, parent, agent,
    state, raw batch, agent batch)."""
    from vgps_critic.language import get_encoder
    from vgps_training.data.pipeline import make_dataset
    from vgps_training.trainer import InstructionEmbedder, to_agent_batch

    config = _debug_config(tmp_path, deploy, f"init_from={json.dumps(str(parent))}", *overrides)
    loaded = finetune.load_parent(config.init_from)
    config = finetune.resolve_config(config, loaded)
    agent = build_agent(config)
    state = finetune.initial_state(agent.init(jax.random.key(7)), loaded)
    raw = next(make_dataset(dataclasses.replace(config.data, train=False,
                                                subset="all")).as_numpy())
    batch = to_agent_batch(raw, InstructionEmbedder(get_encoder(config.language_encoder)))
    batch = {k: v for k, v in batch.items() if k != "episode_success"}
    return config, loaded, agent, state, raw, batch


@needs_bridge
def test_finetune_trains_exports_lineage_and_resumes(parent, deploy_dataset, tmp_path, capsys):
    run = tmp_path / "run"
    args = ["--config", "debug", "--data-dir", str(BRIDGE_ROOT), "--run-dir", str(run),
            "--no-tensorboard", "--init-from", str(parent),
            "--dataset", "bridge_dataset/1.0.0:1", "--dataset", f"{deploy_dataset}:1",
            "--set", "data.val_fraction=0.3", "--set", f"data.cache_dir={tmp_path / 'cache'}"]
    assert train_main([*args, "--set", "steps=2"]) == 0, capsys.readouterr().err
    info = json.loads((run / "run.json").read_text())
    assert info["parent"]["critic_id"] == vgps_critic.load(parent).critic_id
    held = info["datasets"]["vgps_deploy"]["held_out"]
    assert held["source"] == "fraction" and held["fraction"] == 0.3
    assert held["train_episodes"] + held["val_episodes"] == 12 and held["val_episodes"] > 0
    assert len(info["datasets"]["vgps_deploy"]["held_out_ids"]) == held["val_episodes"]

    assert train_main([*args, "--set", "steps=3"]) == 0  # resumes from step 2, not the parent
    rows = [r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())
            if "train/critic_loss" in r]
    assert [r["step"] for r in rows] == [1, 2, 3]

    assert train_main(["export", str(run), "--out", str(tmp_path / "child")]) == 0
    child = vgps_critic.load(tmp_path / "child")
    card = child.card
    assert (tuple(card.action_space.low), tuple(card.action_space.high)) == BRIDGE_BOUNDS
    lineage = card.data["lineage"]
    assert lineage["parent"]["critic_id"] == info["parent"]["critic_id"]
    assert lineage["parent"]["path"] == str(parent)
    assert card.training["init_from"] == info["parent"]["critic_id"]
    by_name = {d["name"]: d for d in lineage["datasets"]}
    assert set(by_name) == {"bridge_dataset", "vgps_deploy"}
    assert by_name["vgps_deploy"]["path"] == str(deploy_dataset)
    assert by_name["vgps_deploy"]["version"] == "1.0.0"
    assert by_name["vgps_deploy"]["bags"] == [
        {"path": "/recordings/bag_aa11", "run_id": "aa11", "episodes": 6},
        {"path": "/recordings/bag_bb22", "run_id": "bb22", "episodes": 6}]
    assert "bags" not in by_name["bridge_dataset"]
    assert by_name["bridge_dataset"]["held_out"]["val_episodes"] > 0
    assert card.data["datasets"]["vgps_deploy"]["held_out"] == held
    assert "td_loss" in card.training["validation"]


def test_a_relative_dataset_path_stays_relative_in_the_lineage(tmp_path, monkeypatch):
    """A card shipped with a project must not name the folders of the machine that trained it."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "rlds" / "vgps_sim" / "1.0.0").mkdir(parents=True)
    entry = lineage.dataset_lineage(Path("rlds/vgps_sim/1.0.0/"), "vgps_sim", "1.0.0")
    assert entry == {"name": "vgps_sim", "version": "1.0.0", "path": "rlds/vgps_sim/1.0.0"}
    absolute = lineage.dataset_lineage(tmp_path / "rlds" / "vgps_sim" / "1.0.0", "vgps_sim", "1")
    assert absolute["path"] == str(tmp_path / "rlds" / "vgps_sim" / "1.0.0")


def test_mismatches_are_named(parent, tmp_path, capsys):
    config = apply_overrides(preset("debug", "data"), [f"init_from={json.dumps(str(parent))}"])
    finetune.check_compatible(config, finetune.load_parent(parent))  # the matching case

    wide = tmp_path / "wide"
    save_random_critic(wide, preset="sim")  # 64x64, 16 filters
    with pytest.raises(ValueError, match=r"critic\.image_size=\[32, 32\] in the config but "
                                         r"\[64, 64\] in the parent"):
        finetune.check_compatible(config, finetune.load_parent(wide))
    muse = tmp_path / "muse"
    save_random_critic(muse, preset="tiny", language_encoder="muse")
    with pytest.raises(ValueError, match="language_encoder='minilm-l6-v2' in the config but "
                                         "'muse'"):
        finetune.check_compatible(config, finetune.load_parent(muse))
    sim = apply_overrides(preset("sim", "data"), [])
    with pytest.raises(ValueError, match=r"calql\.discount=0\.98 in the config but .* 0\.9"):
        finetune.check_compatible(
            apply_overrides(sim, ["data.labels.discount=0.98", "calql.discount=0.98"]),
            finetune.load_parent(REPO / "models" / "sim_critic", 0))
    # through the command line: exit code 2 and the reason, before any data is read
    code = train_main(["--config", "debug", "--data-dir", str(tmp_path / "none"), "--run-dir",
                       str(tmp_path / "run"), "--init-from", str(wide), "--no-tensorboard"])
    assert code == 2 and "critic.image_size" in capsys.readouterr().err
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_finetune_preset_needs_a_parent_and_matches_the_shipped_critic(tmp_path, capsys):
    config = preset("finetune", "data")
    assert config.steps < preset("sim", "data").steps
    assert config.calql.critic_lr < preset("sim", "data").calql.critic_lr
    assert config.calql.td_backup == "data" and preset("sim", "data").calql.td_backup == "policy"
    assert [d.path for d in config.data.datasets] == [
        os.path.join("data", "vgps_sim", "1.0.0"), os.path.join("data", "vgps_deploy", "1.0.0")]
    assert not config.data.balance_weights
    shipped = finetune.load_parent(REPO / "models" / "sim_critic", member=1)
    resolved = finetune.resolve_config(config, shipped)  # the shipped critic fits the preset
    assert all(d.action_bounds == shipped.bounds for d in resolved.data.datasets)
    code = train_main(["--config", "finetune", "--data-dir", str(tmp_path), "--run-dir",
                       str(tmp_path / "run"), "--no-tensorboard"])
    assert code == 2 and "--init-from" in capsys.readouterr().err


def test_ensemble_members_are_chosen_explicitly(parent, tmp_path):
    other = tmp_path / "other"
    save_random_critic(other, preset="tiny", seed=11)
    ensemble = tmp_path / "ensemble"
    save_ensemble(ensemble, [parent, other], name="pair")
    with pytest.raises(ValueError, match="ensemble of 2 critics: choose one with --init-member"):
        finetune.load_parent(ensemble)
    with pytest.raises(ValueError, match=r"--init-member 2: .* has members 0\.\.1"):
        finetune.load_parent(ensemble, 2)
    with pytest.raises(ValueError, match="is a single critic"):
        finetune.load_parent(parent, 0)
    by_index = finetune.load_parent(ensemble, 1)
    by_path = finetune.load_parent(ensemble / "members" / "1")
    assert by_index.member == by_path.member == 1
    assert by_index.critic_id == by_path.critic_id == vgps_critic.load(other).critic_id
    assert by_index.critic_id != finetune.load_parent(ensemble, 0).critic_id

    config = apply_overrides(preset("debug", "data"),
                             [f"init_from={json.dumps(str(ensemble))}", "init_member=1"])
    agent = build_agent(config)
    state = finetune.initial_state(agent.init(jax.random.key(0)), by_index)
    _, want = load_checkpoint(other)
    got = agent.deployable_params(state)
    for a, b in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want)):
        np.testing.assert_array_equal(np.asarray(a), b)
    with pytest.raises(ValueError, match="init_member=1: needs init_from"):
        apply_overrides(preset("debug", "data"), ["init_member=1"])


@needs_bridge
def test_data_backup_bootstraps_from_the_datas_next_action_not_the_actor(parent, deploy_dataset,
                                                                         tmp_path):
    _, _, agent, state, raw, batch = _parent_agent_and_batch(
        parent, deploy_dataset, tmp_path, "calql.td_backup=data")
    # the data's next action: the same episode's action one step later (the last repeats itself)
    assert raw["next_action"].shape == raw["action"].shape

    def td_target(state, backup: str) -> np.ndarray:
        agent.config = dataclasses.replace(agent.config, td_backup=backup)
        _, metrics = agent.critic_loss(state.params["critic"], state, batch, jax.random.key(1))
        return float(metrics["td_target"])

    nxt = agent.critic.apply({"params": state.target_critic}, batch["next_image"],
                             batch["language"], batch["next_action"]).min(axis=0)
    want = np.mean(batch["reward"] + agent.config.discount * batch["mask"] * np.asarray(nxt))
    assert td_target(state, "data") == pytest.approx(want, rel=1e-4, abs=1e-4)
    # another actor changes the policy backup's target, not the data backup's
    other = dataclasses.replace(state, params={**state.params, "actor": jax.tree_util.tree_map(
        lambda x: x + 0.5, state.params["actor"])})
    assert td_target(other, "data") == pytest.approx(td_target(state, "data"), abs=1e-6)
    assert td_target(other, "policy") != pytest.approx(td_target(state, "policy"), abs=1e-3)
    del batch["next_action"]
    with pytest.raises(ValueError, match="next_action"):
        td_target(state, "data")


@needs_bridge
def test_a_frozen_encoder_stays_at_the_parents_weights_while_the_head_learns(
        parent, deploy_dataset, tmp_path):
    config, _, agent, state, _, batch = _parent_agent_and_batch(
        parent, deploy_dataset, tmp_path, "calql.td_backup=data", "calql.freeze_encoder=true",
        "calql.critic_delay_steps=0", "calql.warmup_steps=0")
    assert config.calql.freeze_encoder
    before = jax.tree_util.tree_map(np.asarray, state.params["critic"])
    update = jax.jit(agent.update)
    for i in range(3):
        state, metrics = update(state, batch, jax.random.key(i))
    after = jax.tree_util.tree_map(np.asarray, state.params["critic"])

    def moved(a, b) -> float:
        return max(float(np.abs(x - y).max()) for x, y in
                   zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)))

    assert moved(after["encoder"], before["encoder"]) == 0.0
    assert moved(after["network"], before["network"]) > 0.0
    assert moved(after["Dense_0"], before["Dense_0"]) > 0.0
    assert np.isfinite(float(metrics["critic_loss"]))
    # the target critic's encoder stays too (Polyak between two equal encoders)
    np.testing.assert_allclose(
        jax.tree_util.tree_leaves(state.target_critic["encoder"])[0],
        jax.tree_util.tree_leaves(before["encoder"])[0], rtol=0, atol=1e-6)


@needs_bridge
def test_the_anchor_holds_the_critic_to_its_parent(parent, deploy_dataset, tmp_path):
    config, loaded, agent, state, _, batch = _parent_agent_and_batch(
        parent, deploy_dataset, tmp_path, "calql.td_backup=data", "calql.anchor_weight=2.0")
    with pytest.raises(ValueError, match="init-from"):  # no parent given to the agent
        agent.critic_loss(state.params["critic"], state, batch, jax.random.key(1))
    agent.anchor = loaded.params()

    def losses(critic):
        return agent.critic_loss(critic, state, batch, jax.random.key(1))

    _, metrics = losses(state.params["critic"])
    assert float(metrics["anchor_loss"]) == pytest.approx(0.0, abs=1e-8)  # it is the parent
    moved = jax.tree_util.tree_map(lambda x: x * 1.05, state.params["critic"])
    loss2, metrics2 = losses(moved)
    anchor = float(metrics2["anchor_loss"])
    assert anchor > 1e-6
    assert float(loss2) == pytest.approx(
        float(metrics2["td_loss"]) + config.calql.cql_alpha * float(metrics2["cql_loss"])
        + 2.0 * anchor, rel=1e-4)
    # the trainer refuses an anchor without a parent
    with pytest.raises(ValueError, match="anchor"):
        from vgps_training.trainer import train
        train(_debug_config(tmp_path, deploy_dataset, "calql.anchor_weight=1.0", "steps=1"),
              tmp_path / "run", progress=False)


@needs_bridge
def test_the_centred_anchor_holds_the_ranking_and_lets_the_level_follow_the_data(
        parent, deploy_dataset, tmp_path):
    losses = {}
    for centred in (False, True):
        _, loaded, agent, state, _, batch = _parent_agent_and_batch(
            parent, deploy_dataset, tmp_path, "calql.td_backup=data", "calql.anchor_weight=1.0",
            f"calql.anchor_centered={str(centred).lower()}")
        agent.anchor = loaded.params()
        critic = state.params["critic"]
        # Every Q raised by 0.5 (the head's bias): the level moved, the ranking did not.
        raised = {**critic, "Dense_0": {**critic["Dense_0"],
                                        "bias": critic["Dense_0"]["bias"] + 0.5}}
        scaled = jax.tree_util.tree_map(lambda x: x * 1.05, critic)  # the ranking moves too
        losses[centred] = [
            float(agent.critic_loss(p, state, batch, jax.random.key(1))[1]["anchor_loss"])
            for p in (critic, raised, scaled)]
    value, centred = losses[False], losses[True]
    assert value[0] == pytest.approx(0.0, abs=1e-8) and centred[0] == pytest.approx(0.0, abs=1e-8)
    assert value[1] == pytest.approx(0.25, rel=1e-3)  # (0.5)^2 at every action
    assert centred[1] == pytest.approx(0.0, abs=1e-6)
    assert centred[2] > 1e-6 and value[2] > centred[2]


@needs_bridge
def test_expectile_backup_bootstraps_from_v_which_fits_an_upper_expectile_of_q(
        parent, deploy_dataset, tmp_path):
    _, _, agent, state, _, batch = _parent_agent_and_batch(
        parent, deploy_dataset, tmp_path, "calql.td_backup=expectile", "calql.expectile=0.9")
    assert set(state.params) == {"critic", "actor", "log_alpha", "value"}
    critic = state.params["critic"]

    def td_target(state) -> float:
        _, metrics = agent.critic_loss(state.params["critic"], state, batch, jax.random.key(1))
        return float(metrics["td_target"])

    # the target is r + gamma * mask * V(s'), V on the critic's own features at s'
    features = agent.critic.apply({"params": critic}, batch["next_image"], batch["language"],
                                  method="encode")
    v_next = np.asarray(agent.value.apply({"params": state.params["value"]}, features))
    want = np.mean(batch["reward"] + agent.config.discount * batch["mask"] * v_next)
    assert td_target(state) == pytest.approx(want, rel=1e-4, abs=1e-4)
    # another actor leaves it; another V moves it by gamma * mask * the shift
    shifted = jax.tree_util.tree_map(lambda x: x + 0.0, state.params["value"])
    shifted["value"]["bias"] = shifted["value"]["bias"] + 1.0
    other_v = dataclasses.replace(state, params={**state.params, "value": shifted})
    actor = jax.tree_util.tree_map(lambda x: x + 0.5, state.params["actor"])
    other_actor = dataclasses.replace(state, params={**state.params, "actor": actor})
    assert td_target(other_actor) == pytest.approx(td_target(state), abs=1e-6)
    assert td_target(other_v) - td_target(state) == pytest.approx(
        agent.config.discount * float(np.mean(batch["mask"])), rel=1e-4)

    # V's loss is the expectile regression of the target critic's Q at the data's actions (min
    # over heads) on V: the constant shift of V that minimises it is the expectile of Q - V,
    # computed here by hand
    q = np.asarray(agent.critic.apply({"params": state.target_critic}, batch["image"],
                                      batch["language"], batch["action"]).min(axis=0))
    v = np.asarray(agent.value.apply({"params": state.params["value"]}, agent.critic.apply(
        {"params": critic}, batch["image"], batch["language"], method="encode")))
    residual = (q - v).astype(np.float64)
    assert np.ptp(residual) > 1e-4

    def expectile_by_hand(tau: float) -> float:  # the root of sum w(r - m) (r - m) = 0
        low, high = residual.min(), residual.max()
        for _ in range(100):
            m = (low + high) / 2
            d = residual - m
            if np.sum(np.where(d > 0, tau, 1 - tau) * d) > 0:
                low = m
            else:
                high = m
        return float(m)

    shifts = np.linspace(residual.min(), residual.max(), 2001)
    step = float(shifts[1] - shifts[0])

    def best_shift(tau: float) -> float:
        agent.config = dataclasses.replace(agent.config, expectile=tau)

        def loss(shift):
            params = {**state.params["value"], "value": {
                **state.params["value"]["value"],
                "bias": state.params["value"]["value"]["bias"] + shift}}
            return agent.value_loss(params, state, batch)[0]

        return float(shifts[int(np.argmin(jax.jit(jax.vmap(loss))(shifts)))])

    got = {tau: best_shift(tau) for tau in (0.1, 0.5, 0.9)}
    for tau, shift in got.items():
        assert shift == pytest.approx(expectile_by_hand(tau), abs=2 * step)
    assert got[0.5] == pytest.approx(float(np.mean(residual)), abs=2 * step)  # 0.5: the mean
    assert got[0.1] < got[0.5] < got[0.9]

    # one jitted update trains V (and only with this backup is there a V to train)
    new_state, metrics = jax.jit(agent.update)(state, batch, jax.random.key(3))
    assert np.isfinite(float(metrics["value_loss"]))
    moved = max(float(np.abs(a - b).max()) for a, b in zip(
        jax.tree_util.tree_leaves(new_state.params["value"]),
        jax.tree_util.tree_leaves(state.params["value"])))
    assert moved > 0.0
    _, _, data_agent, data_state, _, _ = _parent_agent_and_batch(
        parent, deploy_dataset, tmp_path / "data", "calql.td_backup=data")
    assert "value" not in data_state.params and "value" not in data_agent.optimizers
    with pytest.raises(ValueError, match="expectile"):
        apply_overrides(preset("debug", "data"), ["calql.expectile=1.0"])
