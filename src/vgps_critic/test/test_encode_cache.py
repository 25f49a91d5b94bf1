"""StampedEncoder: encode once per image (ahead of time or on demand), same Q either way."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from conftest import SMALL
from test_inputs import FixedEncoder

import vgps_critic
from vgps_critic.encode_cache import StampedEncoder
from vgps_critic.steering import Steerer
from vgps_ros.input_guard import MessageError


@pytest.fixture(scope="module")
def critic(small_checkpoint):
    return vgps_critic.load(small_checkpoint, language_encoder=FixedEncoder())


class CountingCritic:
    """Wraps a critic and counts encodes (optionally slow, to test concurrent requests)."""

    def __init__(self, critic, delay_s=0.0):
        self.inner, self.delay_s, self.encodes = critic, delay_s, 0
        self.image_size = critic.image_size

    def embed(self, text):
        return self.inner.embed(text)

    def encode(self, image, language):
        self.encodes += 1
        time.sleep(self.delay_s)
        return self.inner.encode(image, language)

    def q(self, features, actions):
        return self.inner.q(features, actions)


def _actions(rng, k=5):
    return rng.uniform(-0.05, 0.05, (k, 7)).astype(np.float32)


def test_pre_encoded_and_on_demand_give_the_steerers_q(critic, rng):
    image = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)  # any camera size
    actions = _actions(rng)
    want = Steerer(critic).choose(image, "put carrot on plate", actions[:, None]).q_values
    ahead = StampedEncoder(critic)
    ahead.add_image(1, image)
    assert ahead.pre_encode(1, "put carrot on plate") > 0
    score = ahead.score(1, "put carrot on plate", actions)
    assert score.pre_encoded and score.q.shape == (5,)
    np.testing.assert_allclose(score.q, want, rtol=1e-5, atol=1e-6)
    late = StampedEncoder(critic)
    late.add_image(1, image)
    score = late.score(1, "put carrot on plate", actions)
    assert not score.pre_encoded
    np.testing.assert_allclose(score.q, want, rtol=1e-5, atol=1e-6)


def test_each_image_is_encoded_once_per_instruction(critic, rng):
    counting = CountingCritic(critic)
    enc = StampedEncoder(counting)
    enc.add_image(7, rng.integers(0, 256, (*SMALL.image_size, 3), dtype=np.uint8))
    enc.pre_encode(7, "a")
    assert enc.pre_encode(7, "a") == 0.0
    enc.score(7, "a", _actions(rng))
    enc.score(7, "a", _actions(rng, 9))
    assert counting.encodes == 1
    enc.score(7, "another instruction", _actions(rng))
    assert counting.encodes == 2


def test_concurrent_requests_wait_for_the_one_encoding(critic, rng):
    counting = CountingCritic(critic, delay_s=0.2)
    enc = StampedEncoder(counting)
    enc.add_image(3, rng.integers(0, 256, (*SMALL.image_size, 3), dtype=np.uint8))
    thread = threading.Thread(target=enc.pre_encode, args=(3, "a"))
    thread.start()
    time.sleep(0.05)
    score = enc.score(3, "a", _actions(rng))  # arrives while pre-encoding runs
    thread.join()
    assert counting.encodes == 1 and score.pre_encoded


def test_unknown_and_evicted_images_are_a_classified_error(critic, rng):
    enc = StampedEncoder(critic, max_entries=2)
    image = rng.integers(0, 256, (*SMALL.image_size, 3), dtype=np.uint8)
    for stamp in (1, 2, 3):
        enc.add_image(stamp, image)
    assert 1 not in enc and 3 in enc
    with pytest.raises(MessageError) as info:
        enc.score(1, "a", _actions(rng))
    assert info.value.kind == "unknown_image"
    with pytest.raises(MessageError, match="bad_image"):
        enc.add_image(4, np.zeros((8, 8), np.uint8))
