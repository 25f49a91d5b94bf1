"""The policies ``vgps-policy-server --policy NAME`` can serve, found by name.

One registry: the built-in factory modules below plus every entry point of the group
``vgps_policy_server.policies`` (other packages add theirs there, e.g. vgps_policy_bridge's
``sim``). A factory module exposes ``add_arguments(parser)`` (its CLI options) and
``build(args) -> ServedPolicy``; it is imported only when chosen, so a policy's own
dependencies (Octo, JAX, torch) are needed only to serve that policy.

Usage::

    available()                      # {"octo": "vgps_policy_server.policies.octo", ...}
    factory = load("random")         # the module; raises PolicyLoadError with the reason
    policy = factory.build(args)
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from types import ModuleType

GROUP = "vgps_policy_server.policies"
BUILT_IN = {
    "octo": "vgps_policy_server.policies.octo",
    "random": "vgps_policy_server.policies.random",
}


class PolicyLoadError(RuntimeError):
    """A policy name is unknown, or its factory module cannot be imported."""


def available() -> dict[str, str]:
    """Policy name -> factory module, sorted by name (built-ins win over entry points)."""
    found = dict(BUILT_IN)
    for entry in entry_points(group=GROUP):
        found.setdefault(entry.name, entry.value.partition(":")[0])
    return dict(sorted(found.items()))


def load(name: str) -> ModuleType:
    """The factory module of ``name``.

    Raises:
        PolicyLoadError: the name is unknown (the message lists the known ones), or importing
            its module failed (the message names the module and the error).
    """
    modules = available()
    if name not in modules:
        raise PolicyLoadError(f"unknown policy {name!r}; available: {', '.join(modules)}")
    try:
        module = importlib.import_module(modules[name])
    except Exception as exc:  # any failure of a plug-in's import is reported
        raise PolicyLoadError(f"policy {name!r} cannot be loaded: importing {modules[name]} "
                              f"failed with {type(exc).__name__}: {exc}") from exc
    missing = [attr for attr in ("add_arguments", "build") if not callable(
        getattr(module, attr, None))]
    if missing:
        raise PolicyLoadError(f"policy {name!r}: {modules[name]} lacks {missing}, so it is not "
                              "a policy factory (needs add_arguments(parser) and build(args))")
    return module
