"""teleop_keyboard: take over the arm from the critic with the keyboard (plain node).

Puts the terminal it runs in into raw mode (restored on exit), reads keys
(:mod:`vgps_widowx.teleop_keys`: space toggles the take-over, w/s a/d r/f q/e move, g toggles the
gripper, Esc or Ctrl-C quits) and, while taking over, publishes ``vgps/intervention``
(vgps_interfaces/Intervention: ``take_over`` true, the action, ``source``) at ``rate_hz``; a
release publishes one ``take_over`` false message, and so does quitting. The selector executes
the action instead of the critic's choice while the take-over is fresh (its
``intervention_timeout_s``), through the same safety filter, and records each such step with
reason ``"intervention"``.

Not started by ``vgps up`` or the launch file: it needs your terminal. Start the graph, then in a
second terminal (same ``ROS_DOMAIN_ID``)::

    vgps-teleop-keyboard
    vgps-teleop-keyboard --ros-args -p translation_step:=0.02 -p rate_hz:=10.0

The selector obeys ``vgps/intervention`` only from the node names in its
``intervention_publishers`` parameter (default ``teleop_keyboard`` and ``sim_corrector``); keep
this node's default name.
"""

from __future__ import annotations

import contextlib
import os
import select
import sys
import termios
import time
import tty

from rclpy.node import Node

from vgps_interfaces.msg import Intervention
from vgps_ros import qos
from vgps_ros.conversions import float_array
from vgps_ros.parameters import Param, declare, watch
from vgps_ros.runtime import spin
from vgps_widowx.teleop_keys import HELP, KeyboardTeleop, TeleopConfig, decode

_D = TeleopConfig()
PARAMETERS = (
    Param("rate_hz", 10.0, "Intervention messages per second while taking over",
          range=(1.0, 100.0), live=False),
    Param("translation_step", _D.translation_step, "m per control step while a move key is "
          "held", range=(0.001, 0.05), live=False),
    Param("rotation_step", _D.rotation_step, "rad of yaw per control step while q/e is held",
          range=(0.005, 0.5), live=False),
    Param("key_hold_s", _D.key_hold_s, "a key counts as held this long after its last press",
          range=(0.05, 2.0), live=False),
    Param("source", "keyboard", "who intervenes (recorded in each decision's detail)",
          live=False),
)
POLL_S = 0.02  # how often the terminal is read


class TeleopKeyboardNode(Node):
    """Keyboard take-over (see the module docstring).

    Args:
        name: the node name (the selector trusts ``teleop_keyboard``).
        fd: the terminal's file descriptor (default: standard input).

    Raises:
        RuntimeError: ``fd`` is not a terminal.
    """

    def __init__(self, name: str = "teleop_keyboard", fd: int | None = None):
        self._fd = sys.stdin.fileno() if fd is None else fd
        if not os.isatty(self._fd):
            raise RuntimeError("vgps-teleop-keyboard reads keys from a terminal, but its input "
                               "is not one; run it in an interactive terminal")
        super().__init__(name)
        declare(self, PARAMETERS)
        watch(self, PARAMETERS)
        self._teleop = KeyboardTeleop(TeleopConfig(
            **{k: self.get_parameter(k).value
               for k in ("translation_step", "rotation_step", "key_hold_s")}))
        self._source = str(self.get_parameter("source").value)
        self._pub = self.create_publisher(Intervention, qos.INTERVENTION, qos.COMMAND)
        self._saved = termios.tcgetattr(self._fd)
        tty.setraw(self._fd)  # restored in destroy_node
        self.create_timer(POLL_S, self._on_poll)
        self.create_timer(1.0 / self.get_parameter("rate_hz").value, self._on_publish)
        self._say(HELP)

    def _say(self, text: str) -> None:
        """One line on the terminal (raw mode: carriage return and line feed)."""
        os.write(self._fd, f"\r{text}\x1b[K\r\n".encode())

    def _on_poll(self) -> None:
        if not select.select([self._fd], [], [], 0)[0]:
            return
        try:
            data = os.read(self._fd, 64)
        except OSError:
            data = b"\x03"  # the terminal went away: quit
        now = time.monotonic()
        for key in decode(data or b"\x03"):
            event = self._teleop.press(key, now)
            if event == "quit":
                self._publish(False)
                self._say("teleop: released, quitting")
                time.sleep(0.2)  # let the release reach the selector before the node goes
                raise KeyboardInterrupt
            if event in ("take_over", "release"):
                self._publish(self._teleop.take_over)
            if event:
                self._say(self._teleop.status(now))

    def _on_publish(self) -> None:
        if self._teleop.take_over:
            self._publish(True)

    def _publish(self, take_over: bool) -> None:
        msg = Intervention()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.take_over = bool(take_over)
        if take_over:
            msg.action = float_array(self._teleop.action(time.monotonic()))
        msg.source = self._source
        self._pub.publish(msg)

    def destroy_node(self) -> None:
        """Releases a take-over still held (a SIGINT from outside), restores the terminal,
        then destroys the node."""
        if self._teleop.take_over:
            self._teleop.take_over = False
            # The context may already be shut down; the selector's intervention_timeout_s
            # ends the take-over then.
            with contextlib.suppress(Exception):
                self._publish(False)
        termios.tcsetattr(self._fd, termios.TCSADRAIN, self._saved)
        super().destroy_node()


def main(args: list[str] | None = None) -> None:
    if not os.isatty(sys.stdin.fileno()):
        print("vgps-teleop-keyboard: standard input is not a terminal; run it in an "
              "interactive terminal (it reads keys)", file=sys.stderr)
        raise SystemExit(2)
    spin(TeleopKeyboardNode, args)


if __name__ == "__main__":
    main()
