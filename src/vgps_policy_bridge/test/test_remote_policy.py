"""RemotePolicy against a tiny local OpenVLA-style /act server (127.0.0.1, ephemeral port)."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import numpy as np
import pytest

from vgps_policy_bridge.remote_policy import (
    RemotePolicy,
    RemotePolicyError,
    decode_array,
    encode_image,
)


class Handler(BaseHTTPRequestHandler):
    requests: ClassVar[list] = []
    mode = "ok"

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append(body)
        mode = type(self).mode
        if mode == "slow":  # the client gives up first; nothing to answer
            time.sleep(1.0)
            return
        if mode == "error":
            self.send_response(500)
            self.end_headers()
            self.wfile.write(b"model crashed")
            return
        image = decode_array(body["image"])
        base = [0.01, 0.0, float(image.mean()) / 1e4, 0, 0, 0, 1.0]
        if mode == "bad_shape":
            reply = [1.0, 2.0]
        elif "n" in body:
            reply = {"actions": [base] * body["n"]}
        else:
            reply = base
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/act"
    httpd.shutdown()


@pytest.fixture(autouse=True)
def reset_handler():
    Handler.requests, Handler.mode = [], "ok"


def observation():
    return {"image": np.full((8, 8, 3), 100, np.uint8)}


def test_k_requests_give_k_single_step_chunks(server):
    policy = RemotePolicy(server, timeout_s=2.0)
    chunks = policy.sample(observation(), "put carrot on plate", 3, np.random.default_rng(0))
    assert chunks.shape == (3, 1, 7) and chunks.dtype == np.float32
    assert len(Handler.requests) == 3
    body = Handler.requests[0]
    assert body["instruction"] == "put carrot on plate" and "n" not in body
    np.testing.assert_array_equal(decode_array(body["image"]), observation()["image"])


def test_batched_is_one_request(server):
    policy = RemotePolicy(server, batched=True)
    chunks = policy.sample(observation(), "x", 4, np.random.default_rng(0))
    assert chunks.shape == (4, 1, 7) and len(Handler.requests) == 1
    assert Handler.requests[0]["n"] == 4


def test_list_image_format(server):
    RemotePolicy(server, image_format="list").sample(observation(), "x", 1,
                                                     np.random.default_rng(0))
    assert np.asarray(Handler.requests[0]["image"]).shape == (8, 8, 3)


@pytest.mark.parametrize("mode, match", [("error", "HTTP 500"), ("bad_shape", "shape"),
                                         ("slow", "did not answer within")])
def test_server_failures_are_clear_errors(server, mode, match):
    Handler.mode = mode
    with pytest.raises(RemotePolicyError, match=match):
        RemotePolicy(server, timeout_s=0.3).sample(observation(), "x", 1,
                                                   np.random.default_rng(0))


def test_unreachable_server():
    with pytest.raises(RemotePolicyError, match="cannot reach"):
        RemotePolicy("http://127.0.0.1:9/act", timeout_s=0.5).sample(
            observation(), "x", 1, np.random.default_rng(0))


def test_json_numpy_encoding_round_trip():
    image = np.arange(24, dtype=np.uint8).reshape(2, 4, 3)
    np.testing.assert_array_equal(decode_array(encode_image(image)), image)
    with pytest.raises(ValueError, match="http"):
        RemotePolicy("ftp://x")
