"""Typed parameter descriptions and the one validated path for live parameter updates.

Every vgps node describes its parameters as a tuple of :class:`Param` (name, default,
description, range or choices, read-only, live), declares them with :func:`declare` (each with its
``ParameterDescriptor``) and registers ONE on-set callback with :func:`watch`. A change goes
through, in order: the type and the range or choices of its :class:`Param`; for a parameter that
is not ``live``, the node's lock (a managed node refuses it while configured, a plain node always);
the node's ``validate`` hook, which returns a reason or ``""``; then its ``apply`` hook. A rejected
batch changes nothing and the caller gets the reason.

Usage::

    PARAMETERS = (
        Param("k", 10, "candidates per step (live)", range=(1, 4096)),
        Param("policy", "sim", "policy adapter", choices=("sim", "octo", "remote"), live=False),
    )

    class MyNode(Node):
        def __init__(self):
            super().__init__("my_node")
            declare(self, PARAMETERS)
            watch(self, PARAMETERS, apply=self._apply)   # the plain-node lock: start-up only

        def _apply(self, update: Update) -> None:          # ValueError -> rejected, with reason
            if "k" in update:
                self._proposer.k = update.value("k")
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.node import Node

from vgps_ros.runtime import describe, result

__all__ = ["START_UP_ONLY", "Param", "Update", "declare", "watch"]

START_UP_ONLY = "is read at start-up only"  # the lock of a plain node's non-live parameters


def _kind(value: object) -> str:
    """The ROS parameter type a Python value is declared or set as."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "double"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)) or hasattr(value, "typecode"):
        return "array"
    return type(value).__name__


@dataclasses.dataclass(frozen=True)
class Param:
    """One node parameter: declared with its descriptor, checked on every change.

    Attributes:
        name: the parameter name.
        default: its default; its type is the parameter's type (``0`` is an integer, ``0.0`` a
            double; a tuple declares an array).
        description: the descriptor's description (``ros2 param describe``).
        range: inclusive ``(low, high)`` for integer and double parameters.
        choices: the allowed values of a string parameter.
        read_only: cannot change after start-up (rclpy refuses it).
        live: may change while the node works; ``False``: read at configure (a managed node
            refuses changes while configured) or at start-up (a plain node always refuses).
    """

    name: str
    default: Any
    description: str
    range: tuple[float, float] | None = None
    choices: tuple[str, ...] | None = None
    read_only: bool = False
    live: bool = True

    def __post_init__(self) -> None:
        kind = _kind(self.default)
        if kind not in ("bool", "integer", "double", "string", "array"):
            raise ValueError(f"Param {self.name}: default {self.default!r} is not a parameter "
                             f"value")
        if self.range is not None:
            low, high = self.range
            if kind not in ("integer", "double") or not low <= high:
                raise ValueError(f"Param {self.name}: range={self.range} needs a numeric "
                                 f"default and low <= high")
            if kind == "integer" and not (_kind(low) == _kind(high) == "integer"):
                raise ValueError(f"Param {self.name}: integer default {self.default!r} with a "
                                 f"non-integer range {self.range}")
        if self.choices is not None and kind != "string":
            raise ValueError(f"Param {self.name}: choices need a string default")
        reason = self.check(self.default)
        if reason:
            raise ValueError(f"Param {self.name}: the default is invalid: {reason}")

    @property
    def value(self) -> Any:
        """The default as rclpy declares it (arrays as lists)."""
        return list(self.default) if isinstance(self.default, tuple) else self.default

    def descriptor(self) -> ParameterDescriptor:
        """The ParameterDescriptor: description, range, allowed values, read-only."""
        kind = _kind(self.default)
        return describe(self.description,
                        int_range=self.range if kind == "integer" else None,
                        float_range=self.range if kind == "double" else None,
                        choices=self.choices, read_only=self.read_only)

    def check(self, value: object) -> str:
        """Why ``value`` cannot be this parameter's value ("" when it can): type, range,
        choices."""
        kind, want = _kind(value), _kind(self.default)
        if kind != want:
            return f"{self.name} must be of type {want}, got {value!r}"
        if self.range is not None:
            low, high = self.range
            if not (math.isfinite(value) and low <= value <= high):
                return f"{self.name}={value!r} is outside [{low}, {high}]"
        if self.choices is not None and value not in self.choices:
            return f"{self.name} must be one of {self.choices}, got {value!r}"
        return ""


@dataclasses.dataclass(frozen=True)
class Update:
    """One batch of parameter changes, as the ``validate`` and ``apply`` hooks see it.

    Attributes:
        changes: the new values by name (only this node's described parameters).
        current: the value a parameter has now (before the batch).
    """

    changes: Mapping[str, Any]
    current: Callable[[str], Any]

    def __contains__(self, name: object) -> bool:
        return name in self.changes

    def value(self, name: str) -> Any:
        """The value ``name`` will have once the batch is applied."""
        return self.changes[name] if name in self.changes else self.current(name)


def declare(node: Node, params: Iterable[Param]) -> None:
    """Declares each parameter with its default and descriptor (overrides from YAML apply)."""
    for p in params:
        node.declare_parameter(p.name, p.value, p.descriptor())


def watch(node: Node, params: Iterable[Param], *,
          validate: Callable[[Update], str] | None = None,
          apply: Callable[[Update], None] | None = None,
          locked: Callable[[], str] = lambda: START_UP_ONLY) -> None:
    """Registers the node's one on-set-parameters callback (see the module docstring).

    Args:
        node: the node whose parameters ``params`` are.
        params: the described parameters; changes to other parameters pass unchecked.
        validate: returns why a batch is refused ("" to accept); sees the whole batch.
        apply: applies an accepted batch; it must be atomic: a ``ValueError`` it raises refuses
            the batch with its message and must leave the node unchanged.
        locked: why non-live parameters cannot change now ("" when they can).
    """
    specs = {p.name: p for p in params}

    def on_set(changed: list) -> SetParametersResult:
        changes = {p.name: p.value for p in changed if p.name in specs}
        if not changes:
            return result()
        for name, value in changes.items():
            reason = specs[name].check(value)
            if not reason and not specs[name].live:
                why = locked()
                reason = f"{name} {why}" if why else ""
            if reason:
                return result(reason)
        update = Update(changes, lambda name: node.get_parameter(name).value)
        reason = validate(update) if validate is not None else ""
        if reason:
            return result(reason)
        if apply is not None:
            try:
                apply(update)
            except ValueError as exc:
                return result(str(exc))
        return result()

    node.add_on_set_parameters_callback(on_set)
