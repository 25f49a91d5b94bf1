"""SROS2 (DDS-Security) for the steering graph: keystore, per-node permissions, RMW probe.

One enclave per node, ``/vgps/<node>`` (:func:`enclave`), in a keystore laid out as SROS2's
``ros2 security`` writes it (:mod:`vgps.security.keystore`), with permissions derived from the
graph description (:mod:`vgps.security.permissions`). A node joins its enclave with
``--ros-args --enclave /vgps/<node>`` and the environment of :func:`security_env`.
:mod:`vgps.security.probe` tells whether the RMW can enforce any of it (the PyPI wheels cannot).
This module is pure (no ROS, no ``cryptography``).
"""

from __future__ import annotations

import os
from pathlib import Path

ENCLAVE_ROOT = "/vgps"
MONITOR = "vgps_up"  # the node of `vgps up` itself (its monitor and lifecycle client)


def enclave(node: str) -> str:
    """The enclave path of a node of the graph (``/vgps/<node>``)."""
    return f"{ENCLAVE_ROOT}/{node}"


def security_env(keystore: str | os.PathLike) -> dict[str, str]:
    """The environment that turns DDS-Security on, enforced, with ``keystore``."""
    return {"ROS_SECURITY_KEYSTORE": str(Path(keystore).expanduser().resolve()),
            "ROS_SECURITY_ENABLE": "true", "ROS_SECURITY_STRATEGY": "Enforce"}


def missing_enclaves(keystore: str | os.PathLike, nodes: list[str]) -> list[str]:
    """The enclaves of ``nodes`` that ``keystore`` lacks (cert, key or signed permissions)."""
    root = Path(keystore) / "enclaves"
    need = ("cert.pem", "key.pem", "permissions.p7s", "governance.p7s")
    return [enclave(n) for n in nodes
            if not all((root / enclave(n).lstrip("/") / f).is_file() for f in need)]
