"""Fine-tuning a deployed critic: init-from, compatibility checks, ensemble members, lineage."""

from __future__ import annotations

import dataclasses
import json
import os
import re
from pathlib import Path

import jax
import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from finetune_setup import (
    BRIDGE_ROOT,
    REPO,
    anchored_agent,
    debug_config,
    needs_bridge,
    parent_agent_and_batch,
)

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


@needs_bridge
def test_step_zero_q_values_equal_the_parents_exactly(parent, deploy_dataset, tmp_path):
    from vgps_training.data.pipeline import make_dataset

    config = debug_config(tmp_path, deploy_dataset, f"init_from={json.dumps(str(parent))}")
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
    assert "collections" not in card.data

    # the simulated collections behind the data go into the card (compare refuses their seeds)
    records = [{"name": "base", "episodes": 400, "seed": 40000, "k": 1, "steered_by": None},
               {"name": "round1", "episodes": 160, "seed": 41110, "k": 10, "task": "spoon"}]
    (tmp_path / "collections.json").write_text(json.dumps(records))
    export_args = ["export", str(run), "--out", str(tmp_path / "child"), "--force"]
    assert train_main([*export_args, "--collections", str(tmp_path / "collections.json")]) == 0
    with_collections = vgps_critic.load(tmp_path / "child")
    assert with_collections.card.data["collections"] == records
    assert with_collections.critic_id == child.critic_id  # the parameters are the same
    for bad, reason in (({"name": "x"}, "must be a JSON list"),
                        ([{"episodes": 1, "seed": 2}], r"collections\[0\] needs a 'name'"),
                        ([{"name": "x", "episodes": 1, "seed": -2}], "'seed' must be a whole"),
                        ([{"name": "x", "episodes": 1.5, "seed": 2}], "'episodes' must be")):
        (tmp_path / "bad.json").write_text(json.dumps(bad))
        capsys.readouterr()
        assert train_main([*export_args, "--collections", str(tmp_path / "bad.json")]) == 2
        assert re.search(reason, capsys.readouterr().err)
    assert train_main([*export_args, "--collections", str(tmp_path / "missing.json")]) == 2
    assert "missing.json" in capsys.readouterr().err
    assert vgps_critic.load(tmp_path / "child").card.data["collections"] == records  # untouched


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
            finetune.load_parent(REPO / "models" / "sim_critic"))
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
    # the shipped critic (a single network) and each member of the one it replaced fit the preset
    for parent in (finetune.load_parent(REPO / "models" / "sim_critic"),
                   finetune.load_parent(REPO / "models" / "sim_critic_prev", member=1)):
        resolved = finetune.resolve_config(config, parent)
        assert all(d.action_bounds == parent.bounds for d in resolved.data.datasets)
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
def test_a_frozen_encoder_stays_at_the_parents_weights_while_the_head_learns(
        parent, deploy_dataset, tmp_path):
    config, _, agent, state, _, batch = parent_agent_and_batch(
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
    config, loaded, agent, state, _, batch = parent_agent_and_batch(
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
        train(debug_config(tmp_path, deploy_dataset, "calql.anchor_weight=1.0", "steps=1"),
              tmp_path / "run", progress=False)


@needs_bridge
def test_the_centred_anchor_holds_the_ranking_and_lets_the_level_follow_the_data(
        parent, deploy_dataset, tmp_path):
    losses = {}
    for centred in (False, True):
        _, agent, state, batch = anchored_agent(
            parent, deploy_dataset, tmp_path, f"calql.anchor_centered={str(centred).lower()}")
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
def test_the_anchor_can_also_hold_the_other_gripper_command_at_the_datas_motion(
        parent, deploy_dataset, tmp_path):
    anchors = {}
    for flip in (False, True):
        config, agent, state, batch = anchored_agent(
            parent, deploy_dataset, tmp_path, f"calql.anchor_flip_gripper={str(flip).lower()}")
        moved = jax.tree_util.tree_map(lambda x: x * 1.05, state.params["critic"])
        anchors[flip] = float(
            agent.critic_loss(moved, state, batch, jax.random.key(1))[1]["anchor_loss"])
    # By hand: the same noisy copies of the data's actions, gripper negated.
    n, a = config.calql.cql_n_actions, batch["action"].shape[-1]
    noise = config.calql.anchor_noise * jax.random.normal(
        jax.random.fold_in(jax.random.key(1), 5), (batch["action"].shape[0], n, a))
    noisy = np.clip(np.asarray(batch["action"])[:, None] + np.asarray(noise), -1.0, 1.0)
    flipped = noisy * np.array([1.0] * (a - 1) + [-1.0], np.float32)

    def q(params, actions):
        return agent._q(params, agent._encode(params, batch["image"], batch["language"]),
                        actions)

    held = float(np.mean((np.asarray(q(moved, flipped))
                          - np.asarray(q(agent.anchor, flipped))) ** 2))
    assert held > 1e-6
    # means over 3N regulariser actions and N noisy copies, and with the flip N flipped more
    assert anchors[True] * 5 == pytest.approx(anchors[False] * 4 + held, rel=1e-4)
