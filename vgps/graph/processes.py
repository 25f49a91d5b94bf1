"""The node processes of a graph: one per node, started as launch_ros would, stopped in order.

Each node of a :class:`~vgps.graph.description.Graph` runs its executable with the arguments
launch_ros uses (``<exe> --ros-args -r __node:=<name> --params-file <yaml> -r from:=to``) in the
environment it is given (with ``security:=KEYSTORE``: ``--enclave /vgps/<node>`` and
:func:`vgps.security.security_env`; nothing is read from or written to this process's
environment beyond the caller's copy: :func:`isolate` makes one). Shutdown sends SIGINT to
every node, SIGTERM after ``sigint_timeout_s``, SIGKILL after ``sigterm_timeout_s`` (process
groups: no orphans). Node logs go to ``<workdir>/logs/<node>.log``, the node PIDs to
``<workdir>/processes.json``, the parameters to ``<workdir>/params.yaml``.

Usage::

    procs = NodeProcesses(describe({"critic": "models/sim_critic"}), Path("out/up"),
                          isolate(os.environ))
    procs.start()
    procs.exited()                      # {node: return code} of the nodes that exited
    procs.shutdown(last=[RECORDER.name])
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Collection, Mapping
from pathlib import Path

import yaml

from vgps.graph.description import Graph, NodeSpec
from vgps.security import security_env


def isolate(env: Mapping[str, str]) -> dict[str, str]:
    """A copy of ``env`` with ROS isolation and headless rendering set where unset.

    Sets ``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST``, a random ``ROS_DOMAIN_ID`` in 1..100,
    ``MUJOCO_GL=egl``, ``PYTHONUNBUFFERED=1`` and ``XLA_PYTHON_CLIENT_PREALLOCATE=false`` (every
    JAX process of the graph leaves GPU memory to the others); ``env`` itself is left unchanged.
    """
    env = dict(env)
    env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    env.setdefault("ROS_DOMAIN_ID", str(random.SystemRandom().randint(1, 100)))
    env.setdefault("MUJOCO_GL", "egl")
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    return env


def executable(spec: NodeSpec, env: Mapping[str, str] | None = None) -> str:
    """Path of a node executable: next to this Python, on PATH, or in ``lib/<package>/``.

    Args:
        spec: the node.
        env: the environment whose ``PATH`` and ``AMENT_PREFIX_PATH`` are searched (default:
            this process's).

    Raises:
        FileNotFoundError: not found anywhere (the message says what to install).
    """
    env = os.environ if env is None else env
    here = Path(sys.executable).parent / spec.executable
    if here.is_file():
        return str(here)
    found = shutil.which(spec.executable, path=env.get("PATH"))
    if found:
        return found
    for prefix in env.get("AMENT_PREFIX_PATH", "").split(os.pathsep):
        candidate = Path(prefix) / "lib" / spec.package / spec.executable
        if prefix and candidate.is_file():
            return str(candidate)
    raise FileNotFoundError(f"executable {spec.executable!r} of package {spec.package!r} not "
                            "found: install the package (pip install -e src/<package>)")


def ros_arguments(spec: NodeSpec, params_file: Path) -> list[str]:
    """The ``--ros-args`` launch_ros passes for a node (name, parameter file, remappings,
    and its enclave under ``security:=``)."""
    args = ["--ros-args", "-r", f"__node:={spec.name}", "--params-file", str(params_file)]
    for source, target in spec.remappings:
        args += ["-r", f"{source}:={target}"]
    if spec.enclave:
        args += ["--enclave", spec.enclave]
    return args


def node_env(graph: Graph, env: Mapping[str, str]) -> dict[str, str]:
    """``env`` with, under ``security:=KEYSTORE``, DDS-Security on and enforced."""
    keystore = graph.arguments.get("security", "")
    return {**env, **security_env(keystore)} if keystore else dict(env)


class NodeProcesses:
    """The node processes of one graph.

    Args:
        graph: the nodes to start, in order.
        workdir: receives ``params.yaml``, ``processes.json`` and ``logs/``.
        env: the environment of every node process (see :func:`isolate`).
    """

    def __init__(self, graph: Graph, workdir: Path, env: Mapping[str, str]):
        self.graph = graph
        self.workdir = workdir
        self.env = node_env(graph, env)
        self.params_file = workdir / "params.yaml"
        self.procs: dict[str, subprocess.Popen] = {}
        self.logs: dict[str, Path] = {}
        self.reported: set[str] = set()

    def start(self) -> None:
        """Writes the parameter file and starts every node (stdout and stderr to its log)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "logs").mkdir(exist_ok=True)
        self.params_file.write_text(yaml.safe_dump(self.graph.params_file(), sort_keys=False))
        for spec in self.graph.nodes:
            log = self.workdir / "logs" / f"{spec.name}.log"
            with log.open("wb") as handle:
                self.procs[spec.name] = subprocess.Popen(
                    [executable(spec, self.env), *ros_arguments(spec, self.params_file)],
                    stdin=subprocess.DEVNULL, stdout=handle, stderr=subprocess.STDOUT,
                    env=self.env, start_new_session=True)
            self.logs[spec.name] = log
        pids = {name: p.pid for name, p in self.procs.items()}
        (self.workdir / "processes.json").write_text(json.dumps(pids, indent=2))

    def exited(self) -> dict[str, int]:
        """Nodes that exited so far and their return codes."""
        return {n: p.returncode for n, p in self.procs.items() if p.poll() is not None}

    def log_tail(self, name: str, lines: int = 15) -> str:
        """The last ``lines`` lines of a node's log ('' when unreadable)."""
        try:
            text = self.logs[name].read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(text[-lines:])

    def dump_stacks(self, name: str, wait_s: float = 1.0) -> bool:
        """Asks a live node to write every thread's Python stack to its log (SIGUSR1, which
        :func:`vgps_ros.runtime.spin` registers with :mod:`faulthandler`).

        Returns:
            Whether the signal was sent (the node is alive).
        """
        proc = self.procs.get(name)
        if proc is None or proc.poll() is not None:
            return False
        try:
            os.kill(proc.pid, signal.SIGUSR1)
        except ProcessLookupError:
            return False
        time.sleep(wait_s)
        return True

    def shutdown(self, sigint_timeout_s: float = 10.0, sigterm_timeout_s: float = 5.0,
                 last: Collection[str] = ()) -> None:
        """SIGINT every live node, then SIGTERM, then SIGKILL (process groups).

        The nodes named in ``last`` (the recorder) are stopped the same way, but only once all
        the others have exited.
        """
        first = [p for name, p in self.procs.items() if name not in last]
        then = [p for name, p in self.procs.items() if name in last]
        for group in (first, then):
            _stop(group, sigint_timeout_s, sigterm_timeout_s)


def _stop(procs: list[subprocess.Popen], sigint_timeout_s: float,
          sigterm_timeout_s: float) -> None:
    for sig, timeout in ((signal.SIGINT, sigint_timeout_s),
                         (signal.SIGTERM, sigterm_timeout_s), (signal.SIGKILL, 5.0)):
        alive = [p for p in procs if p.poll() is None]
        if not alive:
            return
        for proc in alive:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
        deadline = time.monotonic() + timeout
        for proc in alive:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(deadline - time.monotonic(), 0.01))
