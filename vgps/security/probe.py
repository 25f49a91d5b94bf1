"""Can this RMW enforce DDS-Security? Asked for real: a probe node in a child process.

The probe writes a throwaway keystore with one enclave (:mod:`vgps.security.keystore`) and
creates a node in it with ``ROS_SECURITY_ENABLE=true`` and ``ROS_SECURITY_STRATEGY=Enforce``
in a subprocess. Fast DDS built without security (the PyPI Kilted wheels) fails there with
"This Fast DDS version doesn't have the security libraries"; :func:`require_security` turns that
(and any other failure) into a :class:`RuntimeError` that says what to do, so the graph never
runs in the clear when security was asked for.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

from vgps.security import enclave, security_env

NO_SECURITY_MARK = "doesn't have the security libraries"
_PROBE = """
import rclpy
rclpy.init(args=["--ros-args", "--enclave", "{enclave}"])
node = rclpy.create_node("vgps_security_probe")
node.destroy_node()
rclpy.shutdown()
print("VGPS_SECURITY_PROBE_OK")
"""


def probe(env: Mapping[str, str], timeout_s: float = 60.0) -> tuple[bool, str]:
    """Creates a node with security enforced in a child process.

    Args:
        env: the environment of the graph's processes (its ``ROS_DOMAIN_ID`` is used).

    Returns:
        ``(ok, output)``: whether the node came up in its enclave, and what the child printed.
    """
    from vgps.security.keystore import write_keystore
    from vgps.security.permissions import NodeTopics, dds_grants

    name = "vgps_security_probe"
    with tempfile.TemporaryDirectory(prefix="vgps-security-probe-") as tmp:
        keystore = Path(tmp) / "keystore"
        # The probe's grants: only the base grants of a node (it publishes nothing).
        write_keystore(keystore, {enclave(name): dds_grants(name, NodeTopics())},
                       domains=(0, 232))
        child_env = {**env, **security_env(keystore)}
        try:
            done = subprocess.run([sys.executable, "-c", _PROBE.format(enclave=enclave(name))],
                                  env=child_env, capture_output=True, text=True,
                                  timeout=timeout_s, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            return False, f"the probe node did not come up within {timeout_s:g} s"
    output = (done.stdout + done.stderr).strip()
    return done.returncode == 0 and "VGPS_SECURITY_PROBE_OK" in done.stdout, output


def require_security(env: Mapping[str, str], timeout_s: float = 60.0) -> None:
    """Raises RuntimeError unless the RMW of ``env`` enforces DDS-Security (see module doc)."""
    ok, output = probe(env, timeout_s)
    if ok:
        return
    rmw = env.get("RMW_IMPLEMENTATION", "the default RMW (rmw_fastrtps_cpp)")
    if NO_SECURITY_MARK in output:
        raise RuntimeError(
            f"security:= needs DDS-Security, and {rmw} here has no security support (Fast DDS "
            "built without -DSECURITY=ON, as in the PyPI ROS 2 wheels: \"This Fast DDS version "
            "doesn't have the security libraries\"); refusing to run the graph in the clear. "
            "Use a ROS 2 install from apt (its Fast DDS has security), or drop security:=")
    tail = "\n".join(output.splitlines()[-8:])
    raise RuntimeError(f"security:= but a node with security enforced could not start on {rmw}; "
                       f"refusing to run the graph in the clear. The probe said:\n{tail}")

