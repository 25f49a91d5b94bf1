"""One registry of arm backends, by name; a backend's module is imported only when it is built.

Usage::

    arm = make_arm("sim", task="carrot_on_plate", seed=0)     # SimArm, not yet connected
    arm = make_arm("interbotix")                              # needs interbotix_xs_modules
    sorted(BACKENDS)                                          # the names make_arm accepts
"""

from __future__ import annotations

import importlib
from typing import Any

from vgps_widowx.arms.base import ArmBackend

# name -> (module, class). Importing a module registers nothing: the table is the registry.
BACKENDS: dict[str, tuple[str, str]] = {
    "sim": ("vgps_widowx.arms.sim", "SimArm"),
    "interbotix": ("vgps_widowx.arms.interbotix", "InterbotixArm"),
    "real": ("vgps_widowx.arms.interbotix", "InterbotixArm"),  # alias of "interbotix"
}


def backend_class(kind: str) -> type[ArmBackend]:
    """The backend class registered as ``kind``, importing its module now.

    Raises:
        ValueError: unknown kind.
    """
    if kind not in BACKENDS:
        raise ValueError(f"kind={kind!r}: choose from {sorted(BACKENDS)}")
    module, name = BACKENDS[kind]
    return getattr(importlib.import_module(module), name)


def make_arm(kind: str, **kwargs: Any) -> ArmBackend:
    """Builds an arm backend (not yet connected).

    Args:
        kind: "sim" (:class:`~vgps_widowx.arms.sim.SimArm`) or "interbotix"
            (:class:`~vgps_widowx.arms.interbotix.InterbotixArm`; alias "real").
        **kwargs: passed to the backend's constructor.

    Raises:
        ValueError: unknown kind.
        ArmUnavailableError: the backend's driver package is missing.
    """
    return backend_class(kind)(**kwargs)
