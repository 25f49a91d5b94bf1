"""Keyboard teleop keymap: byte decoding, take-over toggling, held keys, gripper, quitting."""

from __future__ import annotations

import numpy as np
import pytest

from vgps_widowx.teleop_keys import KeyboardTeleop, TeleopConfig, decode


@pytest.mark.parametrize(("data", "keys"), [
    (b" ", ["space"]),
    (b"wW", ["w", "w"]),
    (b"\x1b", ["esc"]),
    (b"\x03", ["ctrl-c"]),
    (b"\x1b[A\x1b[B", []),  # arrow keys are ignored
    (b"w\x1b[1;5Cs", ["w", "s"]),  # so is a modified arrow between keys
    (b"\x1bOPg", ["g"]),  # F1 (ESC O P)
    (b"\x1bq", ["esc", "q"]),
])
def test_decode_splits_raw_terminal_bytes_into_keys(data, keys):
    assert decode(data) == keys


def test_space_toggles_the_take_over():
    teleop = KeyboardTeleop()
    assert teleop.press("space", 0.0) == "take_over" and teleop.take_over
    assert teleop.press("space", 0.1) == "release" and not teleop.take_over


@pytest.mark.parametrize(("key", "axis", "value"), [
    ("w", 0, 0.01), ("s", 0, -0.01), ("a", 1, 0.01), ("d", 1, -0.01),
    ("r", 2, 0.01), ("f", 2, -0.01), ("q", 5, 0.05), ("e", 5, -0.05),
])
def test_each_motion_key_moves_one_axis_by_one_step(key, axis, value):
    teleop = KeyboardTeleop(TeleopConfig(translation_step=0.01, rotation_step=0.05))
    assert teleop.press(key, 1.0) == "move"
    expected = np.zeros(7, np.float32)
    expected[axis], expected[6] = value, 1.0
    assert np.allclose(teleop.action(1.1), expected)


def test_a_key_counts_as_held_only_for_key_hold_s():
    teleop = KeyboardTeleop(TeleopConfig(key_hold_s=0.3))
    teleop.press("w", 1.0)
    teleop.press("a", 1.2)
    assert np.allclose(teleop.action(1.25)[:3], [0.01, 0.01, 0.0])
    assert np.allclose(teleop.action(1.4)[:3], [0.0, 0.01, 0.0])  # w let go 0.4 s ago
    assert np.allclose(teleop.action(1.6)[:3], 0.0)


def test_the_opposite_key_replaces_the_direction():
    teleop = KeyboardTeleop()
    teleop.press("w", 1.0)
    teleop.press("s", 1.05)
    assert teleop.action(1.1)[0] == pytest.approx(-0.01)


def test_g_toggles_the_gripper_between_open_and_closed():
    teleop = KeyboardTeleop()
    assert teleop.action(0.0)[6] == 1.0
    assert teleop.press("g", 0.0) == "gripper" and teleop.action(0.0)[6] == 0.0
    teleop.press("g", 0.1)
    assert teleop.action(0.1)[6] == 1.0 and "gripper open" in teleop.status(0.1)


@pytest.mark.parametrize("key", ["esc", "ctrl-c"])
def test_quitting_releases_the_take_over(key):
    teleop = KeyboardTeleop()
    teleop.press("space", 0.0)
    teleop.press("w", 0.0)
    assert teleop.press(key, 0.1) == "quit"
    assert not teleop.take_over and np.allclose(teleop.action(0.1)[:6], 0.0)


def test_unknown_keys_do_nothing():
    teleop = KeyboardTeleop()
    assert teleop.press("x", 0.0) == "" and not teleop.take_over


@pytest.mark.parametrize("field", ["translation_step", "rotation_step", "key_hold_s"])
def test_config_rejects_non_positive_steps(field):
    with pytest.raises(ValueError, match=field):
        TeleopConfig(**{field: 0.0})
