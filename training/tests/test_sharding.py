"""Data-parallel training on 2 simulated devices gives the same losses as 1 device."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import json
    import jax, numpy as np
    from vgps_critic.config import PRESETS
    from vgps_training.agents import CalQLAgent, IQLAgent
    from vgps_training.distributed import make_mesh, replicate, shard_batch

    assert jax.device_count() == 2, jax.devices()
    rng = np.random.default_rng(0)
    B = 8
    cfg = PRESETS["tiny"]
    batch = dict(
        image=rng.integers(0, 256, (B, 32, 32, 3), dtype=np.uint8),
        next_image=rng.integers(0, 256, (B, 32, 32, 3), dtype=np.uint8),
        language=rng.normal(size=(B, 384)).astype(np.float32),
        action=rng.uniform(-1, 1, (B, 7)).astype(np.float32),
        reward=-np.ones(B, np.float32), mask=(rng.random(B) > 0.2).astype(np.float32),
        mc_return=rng.uniform(-8, -1, B).astype(np.float32))
    out = {}
    for name, cls in (("calql", CalQLAgent), ("iql", IQLAgent)):
        agent = cls(cfg)
        update = jax.jit(agent.update)
        runs = {}
        for n in (1, 2):
            mesh = make_mesh(jax.devices()[:n])
            state = replicate(agent.init(jax.random.key(0)), mesh)
            losses = []
            for step in range(3):
                state, m = update(state, shard_batch(batch, mesh), jax.random.key(1))
                losses.append({k: float(v) for k, v in m.items()})
            shards = {len(x.sharding.device_set) for x in shard_batch(batch, mesh).values()}
            runs[n] = {"losses": losses, "devices": sorted(shards)}
        out[name] = runs
    print("RESULT" + json.dumps(out))
""")


def test_two_devices_match_one():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2",
               JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT"))
    result = json.loads(line[len("RESULT"):])
    for agent, runs in result.items():
        one, two = runs["1"], runs["2"]
        assert one["devices"] == [1] and two["devices"] == [2], agent
        for step, (a, b) in enumerate(zip(one["losses"], two["losses"])):
            for key in a:
                assert abs(a[key] - b[key]) <= 1e-4 * max(1.0, abs(a[key])), (agent, step, key,
                                                                                a[key], b[key])
