"""The ``vgps-policy-server`` command as a real process on 127.0.0.1."""

from __future__ import annotations

import signal
import socket

import numpy as np
import pytest

from vgps_policy_server.client import PolicyClient, PolicyConnectionError

INSTRUCTION = "put the carrot on the plate"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_serves_random_and_a_signal_stops_it_cleanly(server_process, observation, sig):
    server = server_process("--policy", "random", "--port", "0", "--horizon", "3")
    assert server.line == f"vgps-policy-server: serving random on {server.url}\n"
    assert server.url.startswith("ws://127.0.0.1:") and server.port > 0
    client = PolicyClient(server.url, timeout_s=5.0)
    assert client.metadata()["horizon"] == 3
    client.reset("ep")
    actions, _ = client.sample(observation(), INSTRUCTION, 50, 7, "ep", 0)
    assert actions.shape == (50, 3, 7) and np.isfinite(actions).all()
    server.proc.send_signal(sig)  # with a client still connected
    assert server.proc.wait(timeout=15) == 0
    client.close()


def test_unknown_policy_lists_the_available_ones(run_cli):
    result = run_cli("--policy", "no-such-policy", "--port", "0")
    assert result.returncode == 2
    assert "unknown policy 'no-such-policy'; available:" in result.stderr
    assert "octo" in result.stderr and "random" in result.stderr
    assert result.stdout == ""


def test_a_plug_in_that_cannot_be_imported_fails_with_its_reason(run_cli, tmp_path):
    dist = tmp_path / "broken_plugins-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugins\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[vgps_policy_server.policies]\n"
                                           "broken = vgps_no_such_module_xyz\n"
                                           "notfactory = json\n")
    env = {"PYTHONPATH": str(tmp_path)}
    result = run_cli("--policy", "broken", "--port", "0", env=env)
    assert result.returncode == 2
    assert ("policy 'broken' cannot be loaded: importing vgps_no_such_module_xyz failed with "
            "ModuleNotFoundError") in result.stderr
    result = run_cli("--policy", "notfactory", "--port", "0", env=env)
    assert result.returncode == 2 and "not a policy factory" in result.stderr
    result = run_cli("--policy", "nope", env=env)
    assert "broken, notfactory, octo, random" in result.stderr


def test_bad_policy_options_and_busy_ports_fail_clearly(run_cli):
    result = run_cli("--policy", "random", "--port", "0", "--horizon", "0")
    assert result.returncode == 2
    assert "cannot build policy 'random': ValueError: RandomPolicy.horizon=0" in result.stderr
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        result = run_cli("--policy", "random", "--port", str(port))
    assert result.returncode == 1 and f"cannot listen on 127.0.0.1:{port}" in result.stderr
    result = run_cli("--policy", "random", "--help")
    assert result.returncode == 0 and "--horizon" in result.stdout


def test_server_killed_mid_episode_then_back_on_the_same_port(server_process, observation):
    server = server_process("--policy", "random", "--port", "0")
    client = PolicyClient(server.url, timeout_s=5.0, connect_timeout_s=2.0)
    client.reset("ep")
    first, _ = client.sample(observation(), INSTRUCTION, 8, 3, "ep", 0)
    server.proc.kill()
    server.proc.wait(timeout=10)
    with pytest.raises(PolicyConnectionError):
        client.sample(observation(), INSTRUCTION, 8, 3, "ep", 1)
    with pytest.raises(PolicyConnectionError, match="cannot connect"):
        client.sample(observation(), INSTRUCTION, 8, 3, "ep", 1)
    back = server_process("--policy", "random", "--port", str(server.port))
    assert back.url == server.url
    again, _ = client.sample(observation(), INSTRUCTION, 8, 3, "ep", 1)  # reconnected
    np.testing.assert_array_equal(first, again)
    back.proc.kill()  # killed between two calls, and back before the next one:
    back.proc.wait(timeout=10)
    server_process("--policy", "random", "--port", str(server.port))
    again, _ = client.sample(observation(), INSTRUCTION, 8, 3, "ep", 2)  # no error at all
    np.testing.assert_array_equal(first, again)
    client.close()
