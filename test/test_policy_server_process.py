"""vgps up --serve-policy: the server process starts, is found by its ready line, and stops."""

from __future__ import annotations

import os

import pytest

from vgps.graph.policy_server import ServedPolicyProcess


def test_the_served_policy_process_starts_listens_and_stops(tmp_path):
    server = ServedPolicyProcess("random", [], os.environ, tmp_path / "logs")
    with server:
        assert server.url.startswith("ws://127.0.0.1:")
        from vgps_policy_server.client import PolicyClient

        client = PolicyClient(server.url, timeout_s=10.0)
        assert client.metadata()["policy"]["name"] == "random"
        client.close()
    assert server.proc.poll() is not None  # stopped
    assert "serving random on " + server.url in (tmp_path / "logs" /
                                                 "policy_server.log").read_text()


def test_a_server_that_cannot_start_is_reported_with_its_log(tmp_path):
    server = ServedPolicyProcess("no-such-policy", [], os.environ, tmp_path / "logs",
                                 ready_timeout_s=60)
    with pytest.raises(RuntimeError, match="exited with code") as info:
        server.start()
    assert "no-such-policy" in str(info.value)


def test_vgps_eval_takes_a_policy_servers_url():
    from vgps.evaluation.runner import REMOTE_TIMEOUT_S, in_process_policy
    from vgps_policy_bridge.server_policy import ServerPolicy
    from vgps_policy_server.policies.random import RandomPolicy
    from vgps_policy_server.server import PolicyServer

    with PolicyServer(RandomPolicy(), "127.0.0.1", 0) as server:
        policy = in_process_policy(f"ws://127.0.0.1:{server.port}")
        assert isinstance(policy, ServerPolicy) and policy.name == "remote:random"
        assert policy.client.timeout_s == REMOTE_TIMEOUT_S
    with pytest.raises(ValueError, match="ws://host:port"):
        in_process_policy("gpt")
