"""The ``octo`` served policy: its pure pieces here, and the REAL Octo in its own environment.

The pure tests (K buckets, seeds, the per-episode history window, the factory without Octo) run
everywhere. The Octo tests run ``vgps-policy-server --policy octo`` under another interpreter
and talk to it with this environment's client; they are SKIPPED unless both are set:

- ``VGPS_OCTO_PYTHON``: a Python that can ``import octo`` (Octo's own venv: Python 3.10/3.11,
  numpy 1.24.3, jax 0.4.20, TensorFlow 2.15; docs/octo_check.md). This checkout's
  ``vgps_policy_server`` is put first on its ``PYTHONPATH``, so it need not be installed there.
- ``VGPS_OCTO_MODEL``: a checkpoint directory saved by ``OctoModel.save_pretrained`` (or an
  ``hf://`` id when the hub is reachable). The tests never build one: a model is made from
  Octo's code, which this repository does not carry (docs/octo_check.md says how the small one
  of the recorded check was made).

Usage::

    python -m pytest src/vgps_policy_server/test/test_octo.py
    VGPS_OCTO_PYTHON=/path/to/octo-venv/bin/python VGPS_OCTO_MODEL=/path/to/checkpoint \\
        python -m pytest src/vgps_policy_server/test/test_octo.py
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from vgps_policy_server.policies import octo

PACKAGE_ROOT = Path(__file__).resolve().parents[1]
OCTO_PYTHON = os.environ.get("VGPS_OCTO_PYTHON", "")
OCTO_MODEL = os.environ.get("VGPS_OCTO_MODEL", "")
BUCKETS = "1,10,50"
START_TIMEOUT_S = 600.0  # import (~6 s), load, and compile three buckets on a loaded 2-core CPU
INSTRUCTION = "put the carrot on the plate"


# --- pure pieces ----------------------------------------------------------------------------


def test_parse_buckets_sorts_and_deduplicates() -> None:
    assert octo.parse_buckets("50, 1,10,10") == (1, 10, 50)
    assert octo.parse_buckets([25, 5]) == (5, 25)
    assert octo.parse_buckets("7") == (7,)


@pytest.mark.parametrize("text", ["0,10", "1,x", "", "1,-5"])
def test_parse_buckets_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="--k-buckets"):
        octo.parse_buckets(text)


@pytest.mark.parametrize(("k", "bucket"), [(1, 1), (2, 10), (10, 10), (11, 25), (25, 25),
                                           (26, 50), (50, 50), (51, 100), (100, 100)])
def test_bucket_for_rounds_up(k: int, bucket: int) -> None:
    assert octo.bucket_for(k, octo.DEFAULT_K_BUCKETS) == bucket


@pytest.mark.parametrize("k", [0, -1, 101])
def test_bucket_for_refuses_out_of_range(k: int) -> None:
    with pytest.raises(ValueError, match="1 <= k <= 100"):
        octo.bucket_for(k, octo.DEFAULT_K_BUCKETS)


@pytest.mark.parametrize(("seed", "key"), [(0, [0, 0]), (5, [0, 5]), (2**32 - 1, [0, 2**32 - 1]),
                                           (2**32, [1, 0]), (2**64 - 1, [2**32 - 1, 2**32 - 1])])
def test_seed_key_data(seed: int, key: list[int]) -> None:
    data = octo.seed_key_data(seed)
    assert data.dtype == np.uint32
    assert data.tolist() == key


@pytest.mark.parametrize("seed", [-1, 2**64])
def test_seed_key_data_refuses(seed: int) -> None:
    with pytest.raises(ValueError, match="seed"):
        octo.seed_key_data(seed)


def frame(value: int, size: int = 4) -> np.ndarray:
    return np.full((size, size, 3), value, np.uint8)


def values(images: np.ndarray) -> list[int]:
    return [int(image[0, 0, 0]) for image in images]


def test_stack_window_pads_with_the_first_frame() -> None:
    images, mask = octo.stack_window([frame(1)], 3)
    assert images.shape == (3, 4, 4, 3) and images.dtype == np.uint8
    assert values(images) == [1, 1, 1]
    assert mask.dtype == bool and mask.tolist() == [False, False, True]
    images, mask = octo.stack_window([frame(1), frame(2)], 3)
    assert values(images) == [1, 1, 2] and mask.tolist() == [False, True, True]
    images, mask = octo.stack_window([frame(1), frame(2)], 2)
    assert values(images) == [1, 2] and mask.tolist() == [True, True]


@pytest.mark.parametrize("count", [0, 3])
def test_stack_window_refuses_wrong_counts(count: int) -> None:
    with pytest.raises(ValueError, match="frames for a window of 2"):
        octo.stack_window([frame(i) for i in range(count)], 2)


def test_episode_history_follows_steps() -> None:
    history = octo.EpisodeHistory(window=2)

    def observe(step: int, value: int) -> tuple[list[int], list[bool]]:
        images, mask = history.observe(step, frame(value))
        return values(images), mask.tolist()

    assert observe(0, 10) == ([10, 10], [False, True])  # first frame, padded
    assert observe(1, 11) == ([10, 11], [True, True])
    assert observe(2, 12) == ([11, 12], [True, True])  # window slides
    assert observe(2, 22) == ([11, 22], [True, True])  # a retry replaces the newest frame
    assert observe(5, 15) == ([22, 15], [True, True])  # skipped steps: appended
    assert observe(1, 31) == ([31, 31], [False, True])  # went back: a new history
    assert observe(1, 41) == ([41, 41], [False, True])  # retry of a lone first frame


def test_episode_history_window_one() -> None:
    history = octo.EpisodeHistory(window=1)
    assert values(history.observe(0, frame(1))[0]) == [1]
    images, mask = history.observe(1, frame(2))
    assert values(images) == [2] and mask.tolist() == [True]


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    octo.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_arguments_defaults_and_parsing() -> None:
    args = parse("--model", "some/dir")
    assert (args.model, args.dataset_key, args.horizon, args.k_buckets, args.image_size,
            args.warmup) == ("some/dir", "bridge_dataset", None, (1, 10, 25, 50, 100), None,
                             True)
    args = parse("--model", "m", "--k-buckets", "50,1", "--image-size", "any", "--horizon", "2",
                 "--no-warmup")
    assert (args.k_buckets, args.image_size, args.horizon, args.warmup) == ((1, 50), 0, 2, False)
    assert parse("--model", "m", "--image-size", "128").image_size == 128


@pytest.mark.parametrize("argv", [[], ["--model", "m", "--image-size", "0"],
                                  ["--model", "m", "--image-size", "big"],
                                  ["--model", "m", "--k-buckets", "0"]])
def test_arguments_refused(argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        parse(*argv)


def test_module_imports_without_octo_jax_or_tensorflow() -> None:
    code = ("import sys, vgps_policy_server.policies.octo; "
            "print(sorted(m for m in ('octo', 'jax', 'tensorflow', 'flax') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    assert out.strip() == "[]"


needs_no_octo = pytest.mark.skipif(importlib.util.find_spec("octo") is not None,
                                   reason="octo is importable here")


@needs_no_octo
def test_build_without_octo_names_octos_environment() -> None:
    with pytest.raises(octo.OctoUnavailableError, match="octo-models/octo") as caught:
        octo.build(parse("--model", "anything"))
    assert isinstance(caught.value, ImportError)


@needs_no_octo
def test_cli_without_octo_exits_2_with_the_reason() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "vgps_policy_server.cli", "--policy", "octo", "--model", "m"],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert "octo-models/octo" in result.stderr and "kvablack/dlimp" in result.stderr
    assert result.stdout == ""


# --- the real Octo, in its own environment ---------------------------------------------------


def octo_python_reason() -> str:
    """Why the Octo tests cannot run ("" when they can)."""
    if not OCTO_PYTHON:
        return "VGPS_OCTO_PYTHON is not set (a Python that can import octo)"
    if not OCTO_MODEL:
        return "VGPS_OCTO_MODEL is not set (an Octo checkpoint directory)"
    try:
        subprocess.run([OCTO_PYTHON, "-c", "import octo"], capture_output=True, timeout=120,
                       check=True)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"VGPS_OCTO_PYTHON={OCTO_PYTHON} cannot import octo ({type(exc).__name__})"
    return ""


class OctoServer:
    """``vgps-policy-server --policy octo`` under ``VGPS_OCTO_PYTHON``, on a free port."""

    def __init__(self, *extra: str):
        env = {**os.environ, "JAX_PLATFORMS": os.environ.get("JAX_PLATFORMS", "cpu"),
               "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
               "TOKENIZERS_PARALLELISM": "false",
               "PYTHONPATH": os.pathsep.join(filter(None, [str(PACKAGE_ROOT),
                                                           os.environ.get("PYTHONPATH")]))}
        command = [OCTO_PYTHON, "-m", "vgps_policy_server.cli", "--policy", "octo", "--port",
                   "0", "--model", OCTO_MODEL, "--k-buckets", BUCKETS, *extra]
        self.proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=env)
        line = self._first_line(START_TIMEOUT_S)
        if " on ws://" not in line:
            self.proc.kill()
            _, err = self.proc.communicate(timeout=30)
            raise RuntimeError(f"the Octo server did not start: {line!r}; stderr: {err[-3000:]}")
        self.url = line.strip().rsplit(" on ", 1)[1]

    def _first_line(self, timeout_s: float) -> str:
        with selectors.DefaultSelector() as selector:
            selector.register(self.proc.stdout, selectors.EVENT_READ)
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline and self.proc.poll() is None:
                if selector.select(timeout=0.5):
                    return self.proc.stdout.readline()
        return ""

    def stop(self) -> int:
        """SIGTERM, then the exit code (the server stops cleanly: 0)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate(timeout=30)
        return self.proc.returncode


@pytest.fixture(scope="module")
def octo_server() -> Iterator[OctoServer]:
    reason = octo_python_reason()
    if reason:
        pytest.skip(reason)
    server = OctoServer("--image-size", "any")
    yield server
    assert server.stop() == 0


@pytest.fixture(scope="module")
def client(octo_server: OctoServer) -> Iterator:
    from vgps_policy_server.client import PolicyClient

    with PolicyClient(octo_server.url, timeout_s=60.0, connect_timeout_s=30.0) as connected:
        yield connected


def image(seed: int, size: int = 256) -> dict:
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    return {"images": {"primary": pixels}, "state": {}}


def sample(client, obs: dict, k: int, seed: int, episode: str, step: int) -> np.ndarray:
    actions, timing = client.sample(obs, INSTRUCTION, k, seed, episode, step)
    assert timing["sample_ms"] > 0
    return actions


def test_octo_metadata(client) -> None:
    meta = client.metadata()
    assert meta["policy"] == {"name": "octo", "version": OCTO_MODEL}
    assert (meta["action_dim"], meta["action_space"], meta["needs_privileged"]) == (
        7, "bridge_ee_delta", False)
    assert meta["images"] == {"primary": [0, 0]}  # --image-size any
    assert meta["max_k"] == 50 and meta["horizon"] >= 1 and meta["window"] >= 1


@pytest.mark.parametrize("k", [1, 10, 50])
def test_octo_samples_k_chunks(client, k: int) -> None:
    horizon = client.metadata()["horizon"]
    client.reset(f"k{k}")
    actions = sample(client, image(0), k, 7, f"k{k}", 0)
    assert actions.shape == (k, horizon, 7) and actions.dtype == np.float32
    assert np.isfinite(actions).all()
    assert ((actions[..., 6] >= 0) & (actions[..., 6] <= 1)).all()
    if k > 1:
        assert len({chunk.tobytes() for chunk in actions}) == k  # K distinct samples


def test_octo_seed_reproduces_and_k_cuts_a_bucket(client) -> None:
    first = sample(client, image(1), 10, 123, "seed-a", 0)
    again = sample(client, image(1), 10, 123, "seed-b", 0)
    other = sample(client, image(1), 10, 124, "seed-c", 0)
    seven = sample(client, image(1), 7, 123, "seed-d", 0)  # bucket 10, cut to 7
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    np.testing.assert_array_equal(seven, first[:7])


def test_octo_history_and_reset(client) -> None:
    if client.metadata()["window"] < 2:
        pytest.skip("the model keeps no history (window 1)")
    a, b = image(2), image(3)
    fresh = sample(client, b, 10, 5, "fresh", 0)  # b alone: the first frame of an episode
    sample(client, a, 10, 5, "hist", 0)
    with_history = sample(client, b, 10, 5, "hist", 1)  # window [a, b]
    assert not np.array_equal(with_history, fresh)  # the earlier frame is seen
    retried = sample(client, b, 10, 5, "hist", 1)  # the same step again: the same window
    np.testing.assert_array_equal(retried, with_history)
    client.reset("hist")
    np.testing.assert_array_equal(sample(client, b, 10, 5, "hist", 0), fresh)
    sample(client, a, 10, 5, "back", 0)
    sample(client, a, 10, 5, "back", 1)
    np.testing.assert_array_equal(sample(client, b, 10, 5, "back", 0), fresh)  # went back


def test_octo_resizes_other_sizes(client) -> None:
    actions = sample(client, image(4, size=128), 10, 0, "small", 0)
    assert actions.shape[0] == 10 and np.isfinite(actions).all()


def test_octo_bad_k_is_an_error_reply(client) -> None:
    from vgps_policy_server.client import PolicyServerError

    with pytest.raises(PolicyServerError) as caught:
        client.sample(image(0), INSTRUCTION, 51, 0, "bad", 0)
    assert caught.value.code == "bad_k"
    assert sample(client, image(0), 1, 0, "bad", 0).shape[0] == 1  # still serving
