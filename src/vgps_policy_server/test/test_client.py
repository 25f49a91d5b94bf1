"""PolicyClient's typed errors against real servers: error replies, a stalled server, a lost
connection, another protocol version."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from websockets.sync.server import serve as ws_serve

from vgps_policy_server.client import (
    PolicyClient,
    PolicyClientError,
    PolicyConnectionError,
    PolicyServerError,
    PolicyTimeoutError,
)
from vgps_policy_server.policies.random import RandomPolicy
from vgps_policy_server.protocol import pack

INSTRUCTION = "put the carrot on the plate"


class StalledPolicy(RandomPolicy):
    """A random policy that sleeps ``sleep_s`` before each sample."""

    def __init__(self, sleep_s: float):
        super().__init__(horizon=4)
        self.sleep_s = sleep_s

    def sample(self, observation, instruction, k, seed, episode_id, step):
        time.sleep(self.sleep_s)
        return super().sample(observation, instruction, k, seed, episode_id, step)


def test_server_error_replies_raise_policy_server_error(serve, observation):
    server = serve(RandomPolicy(horizon=4))
    with PolicyClient(server.url) as client:
        with pytest.raises(PolicyServerError) as info:
            client.sample(observation(), INSTRUCTION, 0, 0, "ep", 0)
        assert info.value.code == "bad_k" and "1..256" in info.value.message
        assert isinstance(info.value, PolicyClientError) and isinstance(info.value, RuntimeError)
        with pytest.raises(TypeError, match="cannot be sent"):
            client.sample({"images": {"primary": np.zeros((2, 2, 3), np.float16)}}, "x", 1, 0,
                          "ep", 0)
        with pytest.raises(TypeError):
            client.sample({"images": {}}, "x", 2.5, 0, "ep", 0)


def test_a_stalled_server_raises_timeout_and_the_client_reconnects(serve, observation):
    server = serve(StalledPolicy(sleep_s=1.0))
    client = PolicyClient(server.url, timeout_s=0.3)
    start = time.monotonic()
    with pytest.raises(PolicyTimeoutError, match=r"within 0\.3 s"):
        client.sample(observation(), INSTRUCTION, 2, 0, "ep", 0)
    assert time.monotonic() - start < 0.9
    assert client.metadata()["horizon"] == 4  # a new connection; metadata needs no policy
    client.timeout_s = 5.0
    assert client.sample(observation(), INSTRUCTION, 2, 0, "ep", 1)[0].shape == (2, 4, 7)
    client.close()


def test_connection_errors(serve):
    server = serve(RandomPolicy())
    url = server.url
    client = PolicyClient(url, connect_timeout_s=2.0)
    client.metadata()
    server.stop()  # closes the connection and the port
    with pytest.raises(PolicyConnectionError, match=url):
        client.metadata()
    with pytest.raises(PolicyConnectionError, match="cannot connect"):
        client.reset("ep")
    client.close()
    with pytest.raises(ValueError, match="ws://"):
        PolicyClient("http://127.0.0.1:1")


def test_a_server_of_another_protocol_version_is_refused():
    def handler(ws):
        for _ in ws:
            ws.send(pack({"type": "metadata", "protocol": "vgps-policy/9"}))

    with ws_serve(handler, "127.0.0.1", 0, compression=None) as other:
        thread = threading.Thread(target=other.serve_forever, daemon=True)
        thread.start()
        port = other.socket.getsockname()[1]
        with PolicyClient(f"ws://127.0.0.1:{port}") as client, pytest.raises(
                PolicyServerError) as info:
            client.metadata()
        assert info.value.code == "version_mismatch" and "vgps-policy/9" in info.value.message
        other.shutdown()
        thread.join(5)
