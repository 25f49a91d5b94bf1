"""Keyboard teleoperation: key bytes -> take-over flag and one Bridge action (pure, no terminal).

The keyboard node (:mod:`vgps_widowx.teleop_keyboard_node`) reads raw bytes from the terminal,
:func:`decode` splits them into key names and :class:`KeyboardTeleop` turns them into what it
publishes on ``vgps/intervention``:

============  ==================================================================
space         toggle the take-over (on: the selector executes these actions)
w / s         +x / -x (away from / towards the base)
a / d         +y / -y (left / right seen from behind the arm)
r / f         +z / -z (up / down)
q / e         +yaw / -yaw
g             toggle the gripper (open <-> closed); absolute, 1 = open
Esc, Ctrl-C   quit (the node releases the take-over first)
============  ==================================================================

A motion key moves its axis by ``translation_step`` (m) or ``rotation_step`` (rad) per control
step for ``key_hold_s`` after its last press: the terminal's key repeat keeps a held key alive, so
holding ``w`` moves forward steadily and letting go stops within ``key_hold_s``. The opposite key
of an axis replaces its direction. Arrow keys and other escape sequences are ignored.

Usage::

    teleop = KeyboardTeleop(TeleopConfig())
    for key in decode(os.read(fd, 64)):
        event = teleop.press(key, now)    # take_over | release | move | gripper | quit | ""
    teleop.action(now)                        # (7,) float32 [dx, dy, dz, 0, 0, dyaw, gripper]
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

# key -> (action index, sign)
MOTION_KEYS: dict[str, tuple[int, float]] = {
    "w": (0, 1.0), "s": (0, -1.0),
    "a": (1, 1.0), "d": (1, -1.0),
    "r": (2, 1.0), "f": (2, -1.0),
    "q": (5, 1.0), "e": (5, -1.0),
}
QUIT_KEYS = ("esc", "ctrl-c")
HELP = ("keyboard teleop: space take over/release | w/s x | a/d y | r/f z | q/e yaw | "
        "g gripper | Esc quit")


@dataclasses.dataclass(frozen=True)
class TeleopConfig:
    """Step sizes of the keyboard teleop (per control step)."""

    translation_step: float = 0.01  # m per step along x, y or z while a key is held
    rotation_step: float = 0.05  # rad per step of yaw while a key is held
    key_hold_s: float = 0.3  # a key counts as held this long after its last press (key repeat)

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if (isinstance(value, bool) or not isinstance(value, (int, float))
                    or not math.isfinite(value) or value <= 0):
                raise ValueError(f"TeleopConfig.{field.name}={value!r}: must be a finite "
                                 "number > 0")


def decode(data: bytes) -> list[str]:
    """Key names in a chunk of raw terminal input.

    Args:
        data: bytes read from a terminal in raw mode.

    Returns:
        ``"space"``, ``"esc"`` (a lone escape byte), ``"ctrl-c"``, or the lower-case character;
        escape sequences (arrow keys, ``ESC [ ...``, ``ESC O ...``) are dropped.
    """
    keys: list[str] = []
    text = data.decode("latin-1")
    i = 0
    while i < len(text):
        char = text[i]
        if char == "\x1b":
            if i + 1 < len(text) and text[i + 1] in "[O":
                i += 2
                while i < len(text) and not ("@" <= text[i] <= "~"):
                    i += 1  # parameters of the sequence, up to its final byte
                i += 1
                continue
            keys.append("esc")
        elif char == "\x03":
            keys.append("ctrl-c")
        elif char == " ":
            keys.append("space")
        elif char.isprintable():
            keys.append(char.lower())
        i += 1
    return keys


class KeyboardTeleop:
    """Take-over flag, gripper state and held motion keys (see the module docstring).

    Args:
        config: step sizes.
    """

    def __init__(self, config: TeleopConfig | None = None):
        self.config = config or TeleopConfig()
        self.take_over = False
        self.gripper = 1.0
        self._held: dict[int, tuple[float, float]] = {}  # axis -> (sign, last press time)

    def press(self, key: str, now: float) -> str:
        """Applies one key.

        Args:
            key: a name from :func:`decode`.
            now: the press time (s).

        Returns:
            ``"take_over"``, ``"release"``, ``"move"``, ``"gripper"``, ``"quit"`` or ``""``
            (a key without a meaning).
        """
        if key in QUIT_KEYS:
            self.take_over = False
            self._held.clear()
            return "quit"
        if key == "space":
            self.take_over = not self.take_over
            self._held.clear()
            return "take_over" if self.take_over else "release"
        if key == "g":
            self.gripper = 0.0 if self.gripper > 0.5 else 1.0
            return "gripper"
        if key in MOTION_KEYS:
            axis, sign = MOTION_KEYS[key]
            self._held[axis] = (sign, float(now))
            return "move"
        return ""

    def action(self, now: float) -> np.ndarray:
        """The action for a control step at ``now``.

        Returns:
            float32 (7,) ``[dx, dy, dz, 0, 0, dyaw, gripper]``: the held keys' steps, zero
            elsewhere, and the gripper state.
        """
        cfg = self.config
        out = np.zeros(7, np.float32)
        for axis, (sign, pressed) in list(self._held.items()):
            if now - pressed > cfg.key_hold_s:
                del self._held[axis]
                continue
            out[axis] = sign * (cfg.translation_step if axis < 3 else cfg.rotation_step)
        out[6] = self.gripper
        return out

    def status(self, now: float) -> str:
        """One line: mode, action and gripper (for the terminal)."""
        a = self.action(now)
        mode = "TAKE-OVER" if self.take_over else "critic steers"
        return (f"[{mode}] dx {a[0]:+.3f} dy {a[1]:+.3f} dz {a[2]:+.3f} dyaw {a[5]:+.2f} "
                f"gripper {'open' if self.gripper > 0.5 else 'closed'}")
