"""The native launcher behind ``vgps up``: one process per node, lifecycle, monitor, clean exit.

Starts every node of :func:`vgps.graph.description.describe` as its own process with the
executables and arguments launch_ros would use (``<exe> --ros-args -r __node:=<name> --params-file
<yaml> -r from:=to``), drives the lifecycle nodes through configure and activate with the
``lifecycle_msgs`` services, watches the graph with :class:`~vgps.graph.monitor.GraphMonitor`, and
shuts everything down: SIGINT to every node, SIGTERM after ``sigint_timeout_s``, SIGKILL after
``sigterm_timeout_s`` - no orphans. ROS isolation (``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST``, a
random ``ROS_DOMAIN_ID``) is set when the caller has not set it.

With ``record:=DIR`` the bag recorder (:mod:`vgps.bags.recorder_node`) starts first; the arm driver
is activated (which starts the first episode) only once the recorder subscribes to the steering
topics, and at shutdown the recorder gets its SIGINT after every other node has exited, so the bag
is finalised and holds everything they published. ``summary.json`` then says what the bag holds
(``"bag"``).

A node process that dies is reported and the rest keeps running (the selector falls back, the arm
holds); only the arm driver's death ends the run. Node logs go to ``<out>/logs/<node>.log``;
``<out>/processes.json`` lists the node PIDs, ``<out>/params.yaml`` the parameters used.

Usage::

    summary = up(UpConfig(arguments={"critic": "models/sim_critic"}, episodes=2,
                          out=Path("out/demo"), video=True))
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any

import yaml

from vgps.graph.description import RECORDER, Graph, NodeSpec, describe

TRANSITIONS = {"configure": 1, "activate": 3}  # lifecycle_msgs/msg/Transition ids


@dataclasses.dataclass
class UpConfig:
    """What ``vgps up`` runs."""

    arguments: dict[str, str] = dataclasses.field(default_factory=dict)  # launch arguments
    overrides: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    config: Path | None = None  # parameter file (default config/steer_widowx.yaml)
    out: Path | None = None  # summary, video, logs (a temporary directory when None)
    episodes: int | None = None  # sim: stop after this many; 0 = until interrupted
    video: bool = False  # write <out>/episode_0.mp4 (sim camera)
    timeout_s: float | None = None  # give up (exit code 3) after this long
    startup_timeout_s: float = 240.0  # lifecycle transitions must finish within this
    quiet: bool = False  # no per-step lines


def isolate(env: Mapping[str, str]) -> dict[str, str]:
    """A copy of ``env`` with ROS isolation and headless rendering set where unset."""
    env = dict(env)
    env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    env.setdefault("ROS_DOMAIN_ID", str(random.SystemRandom().randint(1, 100)))
    env.setdefault("MUJOCO_GL", "egl")
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def executable(spec: NodeSpec) -> str:
    """Path of a node executable: next to this Python, on PATH, or in ``lib/<package>/``."""
    here = Path(sys.executable).parent / spec.executable
    if here.is_file():
        return str(here)
    found = shutil.which(spec.executable)
    if found:
        return found
    for prefix in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep):
        candidate = Path(prefix) / "lib" / spec.package / spec.executable
        if prefix and candidate.is_file():
            return str(candidate)
    raise FileNotFoundError(f"executable {spec.executable!r} of package {spec.package!r} not "
                            "found: install the package (pip install -e src/<package>)")


def ros_arguments(spec: NodeSpec, params_file: Path) -> list[str]:
    """The ``--ros-args`` launch_ros passes for a node (name, parameter file, remappings)."""
    args = ["--ros-args", "-r", f"__node:={spec.name}", "--params-file", str(params_file)]
    for source, target in spec.remappings:
        args += ["-r", f"{source}:={target}"]
    return args


class NodeProcesses:
    """The node processes of one graph."""

    def __init__(self, graph: Graph, workdir: Path, env: Mapping[str, str]):
        self.graph = graph
        self.workdir = workdir
        self.env = dict(env)
        self.params_file = workdir / "params.yaml"
        self.procs: dict[str, subprocess.Popen] = {}
        self.logs: dict[str, Path] = {}
        self.reported: set[str] = set()

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "logs").mkdir(exist_ok=True)
        self.params_file.write_text(yaml.safe_dump(self.graph.params_file(), sort_keys=False))
        for spec in self.graph.nodes:
            log = self.workdir / "logs" / f"{spec.name}.log"
            with log.open("wb") as handle:
                self.procs[spec.name] = subprocess.Popen(
                    [executable(spec), *ros_arguments(spec, self.params_file)],
                    stdin=subprocess.DEVNULL, stdout=handle, stderr=subprocess.STDOUT,
                    env=self.env, start_new_session=True)
            self.logs[spec.name] = log
        pids = {name: p.pid for name, p in self.procs.items()}
        (self.workdir / "processes.json").write_text(json.dumps(pids, indent=2))

    def exited(self) -> dict[str, int]:
        """Nodes that exited so far and their return codes."""
        return {n: p.returncode for n, p in self.procs.items() if p.poll() is not None}

    def log_tail(self, name: str, lines: int = 15) -> str:
        try:
            text = self.logs[name].read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(text[-lines:])

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


class TransitionError(RuntimeError):
    """A lifecycle transition failed; ``node`` names the node."""

    def __init__(self, node: str, message: str):
        super().__init__(f"{node}: {message}")
        self.node = node


class Lifecycle:
    """Calls ``/<node>/change_state`` on lifecycle nodes from the launcher's own node."""

    def __init__(self, node: Any):
        from lifecycle_msgs.srv import ChangeState

        self.node = node
        self._type = ChangeState
        self._clients: dict[str, Any] = {}

    def transition(self, names: list[str], transition: str, timeout_s: float,
                   alive: Callable[[], dict[str, int]]) -> None:
        """Requests ``transition`` on every node in ``names`` concurrently and waits.

        Raises:
            TransitionError: a service never appeared, a node died, or a transition failed.
        """
        from lifecycle_msgs.msg import Transition

        deadline = time.monotonic() + timeout_s
        futures = {}
        for name in names:
            client = self._clients.setdefault(
                name, self.node.create_client(self._type, f"/{name}/change_state"))
            while not client.service_is_ready():
                if name in alive():
                    raise TransitionError(name, f"exited before it could {transition}")
                if time.monotonic() > deadline:
                    raise TransitionError(name, f"/{name}/change_state never appeared")
                time.sleep(0.1)
            request = self._type.Request()
            request.transition = Transition(id=TRANSITIONS[transition])
            futures[name] = client.call_async(request)
        for name, future in futures.items():
            while not future.done():
                if name in alive():
                    raise TransitionError(name, f"exited during {transition}")
                if time.monotonic() > deadline:
                    raise TransitionError(name, f"{transition} did not finish in {timeout_s:g} s")
                time.sleep(0.05)
            if not future.result().success:
                raise TransitionError(name, f"{transition} failed (see its log)")


def up(config: UpConfig, echo: Callable[[str], None] = print,
       stop: threading.Event | None = None) -> dict[str, Any]:
    """Runs the graph until the episodes are done, ``stop`` is set, or the timeout passes.

    Returns:
        The summary written to ``<out>/summary.json`` (plus ``"exit_code"``).
    """
    env = isolate(os.environ)
    os.environ.update({k: env[k] for k in ("ROS_AUTOMATIC_DISCOVERY_RANGE", "ROS_DOMAIN_ID")})
    overrides = {k: dict(v) for k, v in config.overrides.items()}
    if config.episodes is not None:
        overrides.setdefault("arm_driver", {})["episodes"] = config.episodes or 1_000_000
    graph = describe(config.arguments, overrides, config.config)
    sim = graph.node("arm_driver").parameters["backend"] == "sim"
    expected = None
    if sim:
        expected = config.episodes if config.episodes is not None else int(
            graph.node("arm_driver").parameters["episodes"])
        expected = expected or None
    _check_critic(graph)
    bag = _check_record(graph)
    workdir = Path(config.out) if config.out else Path(tempfile.mkdtemp(prefix="vgps-up-"))
    stop = stop or threading.Event()

    import rclpy
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor

    from vgps.graph.monitor import GraphMonitor

    # SIGINT / SIGTERM raise KeyboardInterrupt in this thread, which shuts the graph down in
    # order below (rclpy's own handlers chain to these). Not sys.argv: name:=value there are
    # launch arguments.
    previous = _interrupt_on_signals(before_rclpy=True)
    rclpy.init(args=["vgps-up"])
    previous.update(_interrupt_on_signals(before_rclpy=False))
    node = rclpy.create_node("vgps_up")
    monitor = GraphMonitor(node, video=config.video and sim,
                           echo=None if config.quiet else echo)
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    def spin() -> None:
        with contextlib.suppress(ExternalShutdownException):  # Ctrl-C: rclpy shut it down
            executor.spin()

    spinner = threading.Thread(target=spin, daemon=True)
    spinner.start()
    procs = NodeProcesses(graph, workdir, env)
    echo(f"vgps up: ROS_DOMAIN_ID={env['ROS_DOMAIN_ID']}, logs and parameters in {workdir}")
    if bag is not None:
        echo(f"recording the steering topics to {bag}")
    exit_code = 0
    try:
        procs.start()
        exit_code = _bring_up(graph, procs, Lifecycle(node), config, echo)
        if exit_code == 0:
            exit_code = _watch(procs, monitor, expected, config, echo, stop)
    except KeyboardInterrupt:
        echo("interrupted")
        exit_code = 130
    finally:
        echo("shutting the graph down ...")
        procs.shutdown(last=[RECORDER[2]])
        executor.shutdown(timeout_sec=1.0)
        # The spinner must be gone before the interpreter finalises: a daemon thread still in
        # rclpy's wait is killed mid C++ frame then, which aborts the process ("terminate
        # called without an active exception").
        spinner.join(timeout=5.0)
        node.destroy_node()
        rclpy.try_shutdown()
        for signum, handler in previous.items():
            if handler is not None:  # None: set outside Python, cannot be restored
                signal.signal(signum, handler)
    summary = {**monitor.summary(), "arguments": graph.arguments, "exit_code": exit_code,
               "ros_domain_id": int(env["ROS_DOMAIN_ID"])}
    if config.video and sim:
        video = monitor.write_video(workdir / "episode_0.mp4")
        summary["video"] = str(video) if video else None
    if bag is not None:
        summary["bag"] = _bag_summary(bag, echo)
    (workdir / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def _interrupt_on_signals(before_rclpy: bool) -> dict[int, Any]:
    """SIGINT and SIGTERM end the run like Ctrl-C (the graph is shut down, no orphans).

    Before ``rclpy.init`` SIGINT is set to Python's default, which rclpy's handler then chains
    to: a process started in the background by a non-interactive shell (CI runners, ``nohup``)
    inherits SIGINT *ignored*, and so would every node it starts. After ``rclpy.init`` SIGTERM
    gets a handler that raises KeyboardInterrupt.

    Returns:
        The previous handlers, to restore (empty outside the main thread).
    """
    if threading.current_thread() is not threading.main_thread():
        return {}
    if before_rclpy:
        return {signal.SIGINT: signal.signal(signal.SIGINT, signal.default_int_handler)}

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    return {signal.SIGTERM: signal.signal(signal.SIGTERM, handler)}


def _check_critic(graph: Graph) -> None:
    path = graph.node("critic_node").parameters.get("critic", "")
    if not path or not Path(path).is_dir():
        raise FileNotFoundError(
            f"critic checkpoint {path!r} not found: pass critic:=<checkpoint directory> (make "
            "a random one for plumbing tests with `vgps critic init --config sim --out DIR`)")


def _check_record(graph: Graph) -> Path | None:
    """The bag directory of ``record:=``, checked before anything starts (None: no recording)."""
    try:
        spec = graph.node(RECORDER[2])
    except KeyError:
        return None
    path = Path(spec.parameters["path"])
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise FileExistsError(f"record:={path}: already exists and is not an empty directory; "
                              "record into a new path")
    return path


def _bag_summary(path: Path, echo: Callable[[str], None]) -> dict[str, Any]:
    """What the recorded bag holds (messages per topic, problems), echoed in one line."""
    from vgps.bags import BagError, BagReader

    try:
        reader = BagReader(path)
    except BagError as exc:
        echo(f"warning: the bag could not be read: {exc}")
        return {"path": str(path), "error": str(exc)}
    counts = {name: topic.count for name, topic in reader.topics.items()}
    echo(f"bag {path}: {sum(counts.values())} messages on {len(counts)} topics"
         + (f"; problems: {'; '.join(reader.problems)}" if reader.problems else ""))
    return {"path": str(path), "messages": counts, "problems": reader.problems}


def _wait_subscribed(node: Any, spec: NodeSpec, procs: NodeProcesses, timeout_s: float) -> None:
    """Waits until the recorder subscribes to the steering topics (it must see episode 0).

    Raises:
        TransitionError: it exited or did not subscribe in time.
    """
    from rclpy.node import NodeNameNonExistentError

    from vgps.bags.recorder_node import expected_subscriptions

    wanted = set(expected_subscriptions(spec.parameters.get("topics")))
    deadline = time.monotonic() + timeout_s
    while True:
        if spec.name in procs.exited():
            raise TransitionError(spec.name, "exited at start-up")
        try:
            found = {t for t, _ in node.get_subscriber_names_and_types_by_node(spec.name, "/")}
        except NodeNameNonExistentError:  # not discovered yet
            found = set()
        if wanted <= found:
            return
        if time.monotonic() > deadline:
            raise TransitionError(spec.name, f"not subscribed to {sorted(wanted - found)} "
                                             f"after {timeout_s:g} s")
        time.sleep(0.1)


def _bring_up(graph: Graph, procs: NodeProcesses, lifecycle: Lifecycle, config: UpConfig,
              echo: Callable[[str], None]) -> int:
    managed = [n.name for n in graph.nodes if n.lifecycle]
    first, last = managed[:-1], managed[-1:]  # the arm driver activates last (starts episodes)
    recorders = [n for n in graph.nodes if n.name == RECORDER[2]]
    start = time.monotonic()
    try:
        echo(f"configuring {', '.join(managed)} (loads models, warms up JIT) ...")
        lifecycle.transition(managed, "configure", config.startup_timeout_s, procs.exited)
        lifecycle.transition(first, "activate", 30.0, procs.exited)
        for spec in recorders:  # subscribed before the first episode starts
            _wait_subscribed(lifecycle.node, spec, procs, 30.0)
        lifecycle.transition(last, "activate", 30.0, procs.exited)
    except TransitionError as exc:
        echo(f"vgps up: error: {exc}")
        echo(f"--- last lines of {procs.logs[exc.node]} ---\n{procs.log_tail(exc.node)}")
        return 2
    echo(f"graph up in {time.monotonic() - start:.1f} s")
    return 0


def _watch(procs: NodeProcesses, monitor: Any, expected: int | None, config: UpConfig,
           echo: Callable[[str], None], stop: threading.Event) -> int:
    deadline = time.monotonic() + config.timeout_s if config.timeout_s else None
    while not stop.is_set():
        if expected is not None and monitor.episodes_done() >= expected:
            return 0
        for name, code in procs.exited().items():
            if name in procs.reported:
                continue
            procs.reported.add(name)
            echo(f"warning: {name} exited with code {code}; the rest of the graph keeps "
                 f"running (log: {procs.logs[name]})")
            if name == "arm_driver":
                echo(procs.log_tail(name))
                return 4
        if deadline is not None and time.monotonic() > deadline:
            echo(f"vgps up: timeout after {config.timeout_s:g} s")
            return 3
        stop.wait(0.2)
    return 0
