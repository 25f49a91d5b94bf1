"""Simulated episodes -> RLDS ``vgps_sim`` -> the training pipeline -> Cal-QL steps."""

from __future__ import annotations

import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from vgps_training.sim_dataset import load_episode, write_sim_dataset

# TensorFlow and MuJoCo's EGL renderer crash when they share a process, so the episodes are
# simulated in a subprocess (as `vgps collect` would be) and only read here.
RECORD = textwrap.dedent("""
    import os, sys
    os.environ.setdefault("MUJOCO_GL", "egl")
    import numpy as np
    from vgps_widowx import sim

    def record(env, policy, seed, task, max_steps):
        obs, info = env.reset(seed=seed, options={"task": task})
        images, states, actions, success = [obs["image"]], [obs["state"]], [], False
        for _ in range(max_steps):
            action = policy(env)
            obs, _, terminated, truncated, info = env.step(action)
            images.append(obs["image"]); states.append(obs["state"]); actions.append(action)
            success = bool(info["success"])
            if terminated or truncated:
                break
        return dict(images=np.stack(images), states=np.stack(states).astype(np.float32),
                    actions=np.stack(actions).astype(np.float32), instruction=env.instruction,
                    task=task, success=success, seed=seed)

    env = sim.WidowXSimEnv(sim.SimEnvConfig(task="carrot_on_plate", image_size=(32, 32)))
    scripted = sim.ScriptedPolicy("carrot_on_plate")
    ok = record(env, lambda e: scripted.act(e.privileged_state()), 0, "carrot_on_plate", 60)
    idle = record(env, lambda e: np.array([0, 0, 0, 0, 0, 0, 1.0], np.float32), 1,
                  "carrot_on_plate", 12)
    assert ok["success"] and not idle["success"]
    for i, episode in enumerate((ok, idle)):
        np.savez_compressed(os.path.join(sys.argv[1], f"episode_{i:04d}.npz"), **episode)
""")


@pytest.fixture(scope="module")
def episodes_dir(tmp_path_factory):
    """Two real simulated episodes of one task: a scripted success and an idle failure."""
    pytest.importorskip("vgps_widowx.sim")
    root = tmp_path_factory.mktemp("episodes")
    proc = subprocess.run([sys.executable, "-c", RECORD, str(root)], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return root


def test_writes_a_readable_rlds_dataset(episodes_dir, tmp_path):
    import tensorflow_datasets as tfds

    path = write_sim_dataset(episodes_dir, tmp_path)
    builder = tfds.builder_from_directory(str(path))
    episodes = list(tfds.as_numpy(builder.as_dataset(split="train")))
    assert len(episodes) == 2
    by_success = {bool(e["episode_metadata"]["success"]): e for e in episodes}
    ok = by_success[True]
    source = load_episode(episodes_dir / "episode_0000.npz")
    steps = list(ok["steps"])
    assert len(steps) == len(source["actions"])
    np.testing.assert_array_equal(steps[3]["observation"]["image_0"], source["images"][3])
    np.testing.assert_allclose(steps[3]["action"], source["actions"][3])
    assert steps[-1]["is_terminal"]
    assert not any(s["is_terminal"] for s in by_success[False]["steps"])
    assert steps[0]["language_instruction"].decode() == "put carrot on plate"


def test_pipeline_and_training_steps_on_sim_data(episodes_dir, tmp_path):
    import dataclasses

    from vgps_training.config import preset, with_critic
    from vgps_training.trainer import train

    write_sim_dataset(episodes_dir, tmp_path / "rlds")
    config = with_critic(preset("sim", str(tmp_path / "rlds")), image_size=(32, 32),
                         num_filters=8, stage_sizes=(1, 1))
    config = dataclasses.replace(
        config, batch_size=8, steps=2, log_every=1, val_every=2, val_batches=1, save_every=2,
        # two episodes: at 0.5 the scripted success is held out for validation (by its id)
        data=dataclasses.replace(config.data, batch_size=8, shuffle_buffer=32, val_fraction=0.5,
                                 cache_dir=str(tmp_path / "cache")))
    metrics = train(config, tmp_path / "run", tensorboard=False, progress=False)
    assert np.isfinite(metrics["critic_loss"]) and "calql_clip_fraction" in metrics
    held = json.loads((tmp_path / "run" / "run.json").read_text())["datasets"]["vgps_sim"]
    assert held["held_out_ids"] == ["episode_0000"] and held["held_out"]["train_episodes"] == 1


def test_rejects_bad_episode_files(tmp_path):
    np.savez(tmp_path / "bad.npz", images=np.zeros((3, 8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match="missing"):
        write_sim_dataset(tmp_path, tmp_path / "out")
    with pytest.raises(FileNotFoundError, match="no episode files"):
        write_sim_dataset(tmp_path / "empty", tmp_path / "out")
