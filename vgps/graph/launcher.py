"""The native launcher behind ``vgps up``: one process per node, lifecycle, monitor, clean exit.

:func:`up` starts every node of :func:`vgps.graph.description.describe` as its own process
(:mod:`vgps.graph.processes`: the executables and arguments launch_ros would use), drives the
lifecycle nodes through configure and activate (:mod:`vgps.graph.lifecycle`), watches the graph
with :class:`~vgps.graph.monitor.GraphMonitor`, and shuts everything down: SIGINT to every node,
SIGTERM after ``sigint_timeout_s``, SIGKILL after ``sigterm_timeout_s`` - no orphans.

ROS isolation: the node processes get ``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST`` and a random
``ROS_DOMAIN_ID`` where the caller's environment has not set them (:func:`isolate`); this
process's environment is never written. The launcher's own node joins that domain through
``rclpy.init(domain_id=...)``. With ``security:=KEYSTORE`` every node runs in its enclave
(``/vgps/<node>``, :mod:`vgps.security`), this process's node in ``/vgps/vgps_up`` (read-only
plus the lifecycle calls; the security variables are in os.environ only while rcl initialises),
after a probe shows that the RMW enforces DDS-Security (else it refuses to start: the PyPI
wheels have none). Its discovery range is the caller's (rclpy reads it from the
environment only; a node with the default range, SUBNET, talks to LOCALHOST nodes on the same
host), so set ``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST`` as ``make demo`` does to keep it local.

With ``record:=DIR`` the bag recorder (:mod:`vgps.bags.recorder_node`) starts first; the arm driver
is activated (which starts the first episode) only once the recorder subscribes to the steering
topics, and at shutdown the recorder gets its SIGINT after every other node has exited, so the bag
is finalised and holds everything they published. ``summary.json`` then says what the bag holds
(``"bag"``).

A node process that dies is reported and the rest keeps running (the selector falls back, the arm
holds); only the arm driver's death ends the run. Node logs go to ``<out>/logs/<node>.log``;
``<out>/processes.json`` lists the node PIDs, ``<out>/params.yaml`` the parameters used.

Usage::

    result = up(UpConfig(arguments={"critic": "models/sim_critic"}, episodes=2,
                         out=Path("out/demo"), video=True))
    result.episodes[0].success, result.step_latency_ms.p50, result.exit_code
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vgps.graph.description import RECORDER, Graph, describe
from vgps.graph.lifecycle import Lifecycle, bring_up
from vgps.graph.policy_server import ServedPolicyProcess
from vgps.graph.processes import NodeProcesses, isolate
from vgps.graph.result import UpResult, read_bag_summary
from vgps.security import MONITOR, enclave, missing_enclaves, security_env

if TYPE_CHECKING:
    from vgps.graph.monitor import GraphMonitor

# Where these lived before the launcher was split (tests and benchmarks import them from here).
__all__ = ["UpConfig", "UpResult", "up"]


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
    serve_policy: str = ""  # start `vgps-policy-server --policy NAME`; policy:= becomes its URL
    serve_args: tuple[str, ...] = ()  # its policy options


def up(config: UpConfig, echo: Callable[[str], None] = print,
       stop: threading.Event | None = None) -> UpResult:
    """Runs the graph until the episodes are done, ``stop`` is set, or the timeout passes.

    Args:
        config: what to run.
        echo: where progress lines go.
        stop: set it to end the run (exit code 0).

    Returns:
        The :class:`~vgps.graph.result.UpResult`; its ``to_json()`` is written to
        ``<out>/summary.json``.
    """
    env = isolate(os.environ)  # the node processes' environment; os.environ stays as it is
    domain_id = int(env["ROS_DOMAIN_ID"])
    overrides = {k: dict(v) for k, v in config.overrides.items()}
    if config.episodes is not None:
        overrides.setdefault("arm_driver", {})["episodes"] = config.episodes or 1_000_000
    workdir = Path(config.out) if config.out else Path(tempfile.mkdtemp(prefix="vgps-up-"))
    server = None
    arguments = dict(config.arguments)
    if config.serve_policy:  # before the graph: the policy node checks the server at configure
        server = ServedPolicyProcess(config.serve_policy, config.serve_args, env,
                                     workdir / "logs")
        arguments["policy"] = server.start()
        echo(f"policy server {config.serve_policy} at {server.url} "
             f"(log {server.log_path})")
    try:
        graph = describe(arguments, overrides, config.config)
        _check_critic(graph)
        bag = _check_record(graph)
        _check_security(graph, env)
    except BaseException:
        if server is not None:
            server.stop()
        raise
    sim = graph.node("arm_driver").parameters["backend"] == "sim"
    expected = config.episodes if config.episodes is not None else int(
        graph.node("arm_driver").parameters["episodes"])
    expected = expected or None
    stop = stop or threading.Event()

    import rclpy
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor

    from vgps.graph.monitor import GraphMonitor

    # SIGINT / SIGTERM raise KeyboardInterrupt in this thread, which shuts the graph down in
    # order below (rclpy's own handlers chain to these). Not sys.argv: name:=value there are
    # launch arguments.
    previous = _interrupt_on_signals(before_rclpy=True)
    keystore = graph.arguments.get("security", "")
    with _environment(security_env(keystore) if keystore else {}):  # rcl reads it at init
        rclpy.init(args=["vgps-up", *(("--ros-args", "--enclave", enclave(MONITOR))
                                      if keystore else ())], domain_id=domain_id)
    previous.update(_interrupt_on_signals(before_rclpy=False))
    node = rclpy.create_node(MONITOR)
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
    echo(f"vgps up: ROS_DOMAIN_ID={domain_id}, logs and parameters in {workdir}")
    if bag is not None:
        echo(f"recording the steering topics to {bag}")
    exit_code, started = 0, False
    try:
        exit_code = 0 if sim else _wait_for_arm(node, graph, echo)
        if exit_code == 0:
            started = True
            procs.start()
            exit_code = bring_up(graph, procs, Lifecycle(node), config.startup_timeout_s, echo)
        if exit_code == 0:
            exit_code = _watch(procs, monitor, expected, config, echo, stop)
    except KeyboardInterrupt:
        echo("interrupted")
        exit_code = 130
    finally:
        echo("shutting the graph down ...")
        procs.shutdown(last=[RECORDER.name])
        if server is not None:
            server.stop()
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
    video = sim and config.video
    result = UpResult.from_monitor(
        monitor.summary(), arguments=dict(graph.arguments), exit_code=exit_code,
        ros_domain_id=domain_id, video_requested=video,
        video=monitor.write_video(workdir / "episode_0.mp4") if video else None,
        bag=read_bag_summary(bag, echo) if bag is not None and started else None)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "summary.json").write_text(json.dumps(result.to_json(), indent=2))
    return result


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


def _wait_for_arm(node: Any, graph: Graph, echo: Callable[[str], None]) -> int:
    """Waits up to the arm driver's ``connect_timeout_s`` for Interbotix's driver services.

    Before any node starts (and before the critic spends seconds loading), so that a missing
    driver fails fast and plainly. The arm driver checks again at configure.

    Returns:
        0 when the driver is up; 2 when it is not (echoed with what to start).
    """
    from vgps_widowx.arms.interbotix_config import DRIVER_HINT, DRIVER_SERVICES

    params = graph.node("arm_driver").parameters
    model = params["robot_model"]
    namespace = "/" + (params["robot_name"] or model).strip("/")
    timeout = float(params["connect_timeout_s"])
    wanted = {f"{namespace}/{name}" for name in DRIVER_SERVICES}
    echo(f"waiting for Interbotix's driver under {namespace} (connect_timeout_s={timeout:g}) ...")
    deadline = time.monotonic() + timeout
    while True:
        missing = wanted - {name for name, _ in node.get_service_names_and_types()}
        if not missing:
            return 0
        if time.monotonic() >= deadline:
            echo(f"vgps up: error: no Interbotix driver for {model} under {namespace}: "
                 f"{len(missing)} of its {len(wanted)} services (e.g. {sorted(missing)[0]}) did "
                 f"not appear within connect_timeout_s={timeout:g} s; "
                 + DRIVER_HINT.format(model=model))
            return 2
        time.sleep(0.05)


def _check_security(graph: Graph, env: dict[str, str]) -> None:
    """security:=KEYSTORE: every enclave is there and the RMW enforces security, or raise."""
    keystore = graph.arguments.get("security", "")
    if not keystore:
        return
    missing = missing_enclaves(keystore, [*(n.name for n in graph.nodes), MONITOR])
    if missing:
        raise FileNotFoundError(f"security:={keystore}: no enclave {', '.join(missing)} there; "
                                f"write the keystore with `vgps security init {keystore}`")
    from vgps.security.probe import require_security

    require_security(env)  # RuntimeError on an RMW without DDS-Security (the PyPI wheels)


@contextlib.contextmanager
def _environment(values: dict[str, str]):
    """``values`` in os.environ for the block only (rcl reads security settings from it)."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _check_critic(graph: Graph) -> None:
    path = graph.node("critic_node").parameters.get("critic", "")
    if not path or not Path(path).is_dir():
        raise FileNotFoundError(
            f"critic checkpoint {path!r} not found: pass critic:=<checkpoint directory> (make "
            "a random one for plumbing tests with `vgps critic init --config sim --out DIR`)")


def _check_record(graph: Graph) -> Path | None:
    """The bag directory of ``record:=``, checked before anything starts (None: no recording)."""
    try:
        spec = graph.node(RECORDER.name)
    except KeyError:
        return None
    path = Path(spec.parameters["path"])
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise FileExistsError(f"record:={path}: already exists and is not an empty directory; "
                              "record into a new path")
    return path


def _watch(procs: NodeProcesses, monitor: GraphMonitor, expected: int | None, config: UpConfig,
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
