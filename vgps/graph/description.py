"""The steering graph, described once: which nodes run, with which parameters and remappings.

Pure Python (no ROS import). ``launch/steer_widowx.launch.py`` turns the description into
``launch_ros.actions.Node`` actions and ``vgps up`` (:mod:`vgps.graph.launcher`) into one
process per
node with the same executables and ``--ros-args``. Parameters come from
``config/steer_widowx.yaml`` (keyed by node name), with ``robot:=real`` then
``config/real_widowx.yaml`` from the same directory (the real arm's deployment settings), then
launch arguments, then explicit overrides (``vgps up --set node.param=value``). A relative
``critic`` from a parameter file is looked up beside the parameter file's directory first (the
checkout or the installed package, where ``models/sim_critic`` lives), then in the working
directory; a relative ``critic:=`` argument the other way round.

Launch arguments (``name:=value``):

==============  ===========================================================================
robot           ``sim`` (MuJoCo) or ``real`` (Interbotix WidowX 250) -> arm_driver.backend
policy          ``sim``, ``random``, ``remote``, a ``ws://host:port`` policy server or an
                ``http(s)://.../act`` URL (both remote), ``octo``,
                ``octo-small-1.5``/``octo-base-1.5`` (hf://rail-berkeley/...), an ``hf://`` id
                or a local Octo checkpoint directory
policy_url      (policy:=remote) the server's URL -> policy_node.remote_url
critic          critic checkpoint directory -> critic_node.critic
k               candidates per step -> policy_node, critic_node (warm-up), selector_node
beta            selection temperature -> selector_node (and critic_node, unused there)
task            sim task -> arm_driver.task
instruction     instruction override -> arm_driver, policy_node, critic_node
camera          (robot:=real) the camera driver's image topic (default ``/image_raw``, what
                ``usb_cam`` and ``v4l2_camera`` publish), forwarded after each action; it may
                not be the graph's own ``/camera/image_raw``
overlay         ``true`` adds ``overlay_node`` (enabled), which draws every step's candidates
                coloured by Q on the camera frame -> ``vgps/overlay``; default ``false``
record          bag directory (must not exist yet): adds the ``recorder`` node
                (:mod:`vgps.bags.recorder_node`, not managed, started first), which records the
                steering topics into a rosbag2 bag (MCAP); ``''`` = no recording. Its
                parameters can be overridden as ``recorder.<param>``
security        SROS2 keystore directory (``vgps security init``): every node runs in its
                enclave ``/vgps/<node>`` (``NodeSpec.enclave``), security enforced; ``''`` = off
intervention    ``none`` or ``sim``: adds ``sim_corrector`` (plain node, robot:=sim only), the
                scripted corrector that takes over before known failures; the selector obeys
                ``vgps/intervention`` from ``teleop_keyboard`` (``vgps-teleop-keyboard``, run by
                hand in a terminal) and, with ``sim``, from ``sim_corrector``
==============  ===========================================================================

Usage::

    graph = describe({"robot": "sim", "k": "10"})
    for node in graph.nodes:
        node.package, node.executable, node.name, node.parameters, node.remappings
"""

from __future__ import annotations

import dataclasses
import json
import os
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from vgps.bags import RECORDER_PARAMETERS
from vgps.security import enclave

CONFIG_NAME = "steer_widowx.yaml"
# What the arm driver publishes each observation on (vgps_ros.qos.CAMERA in the root namespace):
# a camera driver publishing here would feed the policy and critic directly, unsynchronised with
# the arm, and the driver its own output.
GRAPH_CAMERA = "/camera/image_raw"
REAL_CONFIG_NAME = "real_widowx.yaml"  # layered over CONFIG_NAME for robot:=real
OCTO_ALIASES = {"octo": "hf://rail-berkeley/octo-small-1.5",
                "octo-small-1.5": "hf://rail-berkeley/octo-small-1.5",
                "octo-base-1.5": "hf://rail-berkeley/octo-base-1.5"}


@dataclasses.dataclass(frozen=True)
class LaunchArgument:
    default: str
    help: str


LAUNCH_ARGUMENTS: dict[str, LaunchArgument] = {
    "robot": LaunchArgument("sim", "sim (MuJoCo WidowX) or real (Interbotix WidowX 250)"),
    "policy": LaunchArgument("sim", "sim | random | remote | ws://host:port | "
                                    "http(s)://host:port/act | octo | "
                                    "octo-small-1.5 | octo-base-1.5 | hf://id | Octo directory"),
    "policy_url": LaunchArgument("", "policy:=remote: the server's ws://host:port "
                                     "(vgps-policy-server) or http://host:port/act"),
    "critic": LaunchArgument("", "critic checkpoint directory ('' = the parameter file's)"),
    "k": LaunchArgument("", "candidates per step ('' = the parameter file's)"),
    "beta": LaunchArgument("", "selection temperature, 0 = argmax ('' = the parameter file's)"),
    "task": LaunchArgument("", "sim task ('' = the parameter file's)"),
    "instruction": LaunchArgument("", "instruction override ('' = the task's own)"),
    "camera": LaunchArgument("/image_raw", "robot:=real: the camera driver's image topic "
                                           "(not the graph's own /camera/image_raw)"),
    "overlay": LaunchArgument("false", "true: start overlay_node, which publishes vgps/overlay "
                                       "(the candidates drawn on the camera frame)"),
    "record": LaunchArgument("", "bag directory to record the steering topics into (rosbag2, "
                                 "MCAP); '' = no recording"),
    "security": LaunchArgument("", "SROS2 keystore (vgps security init): each node in its "
                                   "enclave, security enforced; '' = off"),
    "intervention": LaunchArgument("none", "none | sim: sim adds the scripted corrector, which "
                                           "takes over before known failures (robot:=sim)"),
}


@dataclasses.dataclass(frozen=True)
class NodeSpec:
    """One node of the graph, as launch_ros would start it."""

    package: str
    executable: str
    name: str
    parameters: dict[str, Any]
    remappings: tuple[tuple[str, str], ...] = ()
    lifecycle: bool = True
    enclave: str = ""  # security:=KEYSTORE: its SROS2 enclave (--ros-args --enclave ...)


@dataclasses.dataclass(frozen=True)
class Graph:
    """The nodes in start/activation order and the resolved launch arguments."""

    nodes: tuple[NodeSpec, ...]
    arguments: dict[str, str]

    def node(self, name: str) -> NodeSpec:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(f"no node {name!r} in the graph; nodes: {[n.name for n in self.nodes]}")

    def params_file(self) -> dict[str, Any]:
        """The ROS 2 parameter file content (``{name: {ros__parameters: {...}}}``)."""
        return {n.name: {"ros__parameters": dict(n.parameters)} for n in self.nodes}


class NodeEntry(NamedTuple):
    """A node the graph can start: which executable of which package, under which name.

    :meth:`spec` gives its :class:`NodeSpec` once the parameters are resolved.
    """

    package: str
    executable: str
    name: str
    lifecycle: bool = True  # a managed node (configured and activated by the launcher)

    def spec(self, parameters: dict[str, Any],
             remappings: tuple[tuple[str, str], ...] = (), secure: bool = False) -> NodeSpec:
        """The node with its parameters, remappings and (``secure``) enclave."""
        return NodeSpec(self.package, self.executable, self.name, parameters, remappings,
                        self.lifecycle, enclave(self.name) if secure else "")


# The steering nodes in activation order: the arm driver last, because its activation starts
# the first episode.
NODES = (
    NodeEntry("vgps_critic", "critic_node", "critic_node"),
    NodeEntry("vgps_policy_bridge", "policy_node", "policy_node"),
    NodeEntry("vgps_widowx", "selector_node", "selector_node", lifecycle=False),
    NodeEntry("vgps_widowx", "arm_driver_node", "arm_driver"),
)
# The candidate overlay (overlay:=true): a plain node, off unless asked for.
OVERLAY = NodeEntry("vgps_widowx", "overlay_node", "overlay_node", lifecycle=False)
# The bag recorder (record:=DIR): a plain node of this package, started before all others so it
# is subscribed before the first episode, and stopped after them so it records everything.
RECORDER = NodeEntry("vgps", "vgps-recorder", "recorder", lifecycle=False)
# The scripted corrector (intervention:=sim) and the node names vgps/intervention is obeyed from.
CORRECTOR = NodeEntry("vgps_widowx", "vgps-sim-corrector", "sim_corrector", lifecycle=False)
TELEOP_NODE = "teleop_keyboard"  # vgps-teleop-keyboard, started by hand (needs a terminal)
# Its parameters: vgps.bags.RECORDER_PARAMETERS (the recorder node's own defaults).


def default_config() -> Path:
    """``config/steer_widowx.yaml`` of this checkout, else of the installed ``vgps`` package."""
    here = Path(__file__).resolve().parents[2] / "config" / CONFIG_NAME
    if here.is_file():
        return here
    try:
        from ament_index_python.packages import get_package_share_directory

        return Path(get_package_share_directory("vgps")) / "config" / CONFIG_NAME
    except (ImportError, LookupError, ValueError) as exc:
        raise FileNotFoundError(f"cannot find {CONFIG_NAME} next to {__file__} or in the "
                                f"vgps package share directory ({exc})") from None


def load_config(path: str | os.PathLike | None = None) -> dict[str, dict[str, Any]]:
    """``{node name: {param: value}}`` from a ROS 2 parameter file."""
    path = Path(path) if path is not None else default_config()
    data = yaml.safe_load(path.read_text()) or {}
    out = {}
    for name, body in data.items():
        params = (body or {}).get("ros__parameters")
        if not isinstance(params, dict):
            raise ValueError(f"{path}: node {name!r} has no ros__parameters mapping")
        out[name.lstrip("/")] = dict(params)
    return out


def describe(arguments: Mapping[str, str] | None = None,
             overrides: Mapping[str, Mapping[str, Any]] | None = None,
             config: str | os.PathLike | None = None, autostart: bool = False) -> Graph:
    """Resolves the graph for launch arguments (see the module docstring).

    Args:
        arguments: launch arguments as strings (unknown names raise ValueError).
        overrides: ``{node: {param: value}}`` applied last (values keep their types, strings are
            coerced to the parameter file's type).
        config: the parameter file (default :func:`default_config`).
        autostart: lifecycle nodes configure and activate themselves (``ros2 launch``; ``vgps
            up`` drives the transitions itself).

    Returns:
        The :class:`Graph`.
    """
    args = {name: spec.default for name, spec in LAUNCH_ARGUMENTS.items()}
    unknown = set(arguments or {}) - set(args)
    if unknown:
        raise ValueError(f"unknown launch argument(s) {sorted(unknown)}; "
                         f"known: {sorted(LAUNCH_ARGUMENTS)}")
    args.update({k: str(v) for k, v in (arguments or {}).items()})
    if args["security"]:
        args["security"] = str(Path(args["security"]).expanduser().resolve())
    secure = bool(args["security"])
    config = Path(config) if config is not None else default_config()
    params = load_config(config)
    missing = {n.name for n in NODES} - set(params)
    if missing:
        raise ValueError(f"parameter file lacks node(s) {sorted(missing)}")
    if args["robot"] == "real" and (config.parent / REAL_CONFIG_NAME).is_file():
        _layer(params, load_config(config.parent / REAL_CONFIG_NAME),
               config.parent / REAL_CONFIG_NAME)
    recorder = RECORDER.name
    if args["record"]:
        params[recorder] = {**RECORDER_PARAMETERS, **params.get(recorder, {}),
                            "path": str(Path(args["record"]).expanduser().resolve())}
    elif recorder in (overrides or {}):
        raise ValueError(f"overrides for {recorder!r}: the recorder runs only with "
                         "record:=DIR (vgps up --record DIR)")

    def put(node: str, key: str, value: Any) -> None:
        params[node][key] = coerce(value, params[node].get(key), f"{node}.{key}")

    if args["robot"] not in ("sim", "real"):
        raise ValueError(f"robot:={args['robot']!r}: use sim or real")
    if args["intervention"] not in ("none", "sim"):
        raise ValueError(f"intervention:={args['intervention']!r}: use none or sim")
    if args["intervention"] == "sim" and args["robot"] != "sim":
        raise ValueError("intervention:=sim runs the scripted corrector on the simulator's state "
                         "and needs robot:=sim; on the real arm take over with "
                         "vgps-teleop-keyboard in a terminal")
    put("arm_driver", "backend", "sim" if args["robot"] == "sim" else "interbotix")
    for key, value in policy_parameters(args["policy"]).items():
        put("policy_node", key, value)
    if args["policy_url"]:
        put("policy_node", "remote_url", args["policy_url"])
    if args["robot"] == "real" and params["policy_node"]["policy"] == "sim":
        raise ValueError("policy:=sim plans from the simulator's state and needs robot:=sim; "
                         "use policy:=octo-small-1.5, an Octo checkpoint, a remote /act URL or "
                         "policy:=random (a plumbing check)")
    critic_bases = (config.parent.parent, Path.cwd())  # the parameter file's package, then cwd
    if args["critic"]:
        put("critic_node", "critic", str(Path(args["critic"]).expanduser()))
        critic_bases = critic_bases[::-1]
    for node in ("policy_node", "critic_node", "selector_node"):
        if args["k"]:
            put(node, "k", args["k"])
    for node in ("selector_node", "critic_node"):
        if args["beta"]:
            put(node, "beta", args["beta"])
    if args["task"]:
        put("arm_driver", "task", args["task"])
    if args["instruction"]:
        for node in ("arm_driver", "policy_node", "critic_node"):
            put(node, "instruction", args["instruction"])
    for node, values in (overrides or {}).items():
        if node not in params:
            raise ValueError(f"override for unknown node {node!r}; nodes: {sorted(params)}")
        for key, value in values.items():
            if key not in params[node]:
                raise ValueError(f"{node}.{key}: no such parameter in the parameter file")
            put(node, key, value)
    critic = params["critic_node"].get("critic")
    if critic and not Path(critic).is_absolute():
        params["critic_node"]["critic"] = resolve_relative(critic, critic_bases)
    nodes = []
    if args["record"]:
        values = {k: v for k, v in params[recorder].items() if v is not None}
        if values.get("run_info", "{}") == "{}":  # what vgps replay needs to re-score the run
            values["run_info"] = json.dumps({
                "vgps.run_id": uuid.uuid4().hex,  # keys the run's episodes in datasets
                "vgps.critic": params["critic_node"].get("critic", ""),
                "vgps.policy": args["policy"], "vgps.robot": args["robot"],
                "vgps.k": params["selector_node"].get("k", ""),
                "vgps.beta": params["selector_node"].get("beta", ""),
                "vgps.execute": params["selector_node"].get("execute", "")})
        nodes.append(RECORDER.spec(values, secure=secure))
    for entry in NODES:
        values = dict(params[entry.name])
        if entry.lifecycle:
            values["autostart"] = bool(autostart)
        if entry.name == "selector_node":
            values["intervention_publishers"] = [TELEOP_NODE] + (
                [CORRECTOR.name] if args["intervention"] == "sim" else [])
        remaps: tuple[tuple[str, str], ...] = ()
        if entry.name == "arm_driver" and args["robot"] == "real":
            camera = "/" + args["camera"].strip().strip("/")
            if camera == GRAPH_CAMERA:
                raise ValueError(
                    f"camera:={args['camera']}: the graph itself publishes {GRAPH_CAMERA} (the "
                    "frame taken after each action); start the camera driver on another topic "
                    "(e.g. its default /image_raw) and pass it as camera:=TOPIC")
            remaps = (("camera/source", args["camera"]),)
        nodes.append(entry.spec(values, remaps, secure))
    if args["overlay"] not in ("true", "false"):
        raise ValueError(f"overlay:={args['overlay']!r}: use true or false")
    if args["overlay"] == "true":
        values = {**params.get(OVERLAY.name, {}), "enabled": True}
        if args["robot"] == "real" and values.get("camera_model", "sim") == "sim":
            raise ValueError("overlay:=true with robot:=real needs the camera's calibration: "
                             "set overlay_node camera_model: params, fx, fy, cx, cy, "
                             "camera_xyz and camera_rpy in the parameter file")
        nodes.append(OVERLAY.spec(values, secure=secure))
    if args["intervention"] == "sim":
        nodes.append(CORRECTOR.spec(dict(params.get(CORRECTOR.name, {})), secure=secure))
    return Graph(nodes=tuple(nodes), arguments=args)


def _layer(params: dict[str, dict[str, Any]], layer: Mapping[str, Mapping[str, Any]],
           source: Path) -> None:
    """Puts a parameter file's values over ``params`` (every node and key must exist there)."""
    for node, values in layer.items():
        if node not in params:
            raise ValueError(f"{source}: unknown node {node!r}; nodes: {sorted(params)}")
        for key, value in values.items():
            if key not in params[node]:
                raise ValueError(f"{source}: {node}.{key} is not in the base parameter file")
            params[node][key] = coerce(value, params[node][key], f"{node}.{key}")


def resolve_relative(path: str, bases: tuple[Path, ...]) -> str:
    """An absolute path for relative ``path``: the first base it exists under, else the first."""
    relative = Path(path).expanduser()
    for base in bases:
        if (base / relative).exists():
            return str((base / relative).resolve())
    return str((bases[0] / relative).resolve())


def policy_parameters(policy: str) -> dict[str, Any]:
    """policy_node parameters for the ``policy:=`` launch argument."""
    if policy in ("sim", "remote", "random"):
        return {"policy": policy}
    if policy.startswith(("ws://", "wss://", "http://", "https://")):
        return {"policy": "remote", "remote_url": policy}
    if policy in OCTO_ALIASES:
        return {"policy": "octo", "octo_model": OCTO_ALIASES[policy]}
    if policy.startswith("hf://") or Path(policy).expanduser().is_dir():
        model = policy if policy.startswith("hf://") else str(Path(policy).expanduser().resolve())
        return {"policy": "octo", "octo_model": model}
    raise ValueError(f"policy:={policy!r}: use sim, remote, an http(s) /act URL, octo, "
                     f"{', '.join(sorted(k for k in OCTO_ALIASES if k != 'octo'))}, an hf:// id "
                     "or an existing Octo checkpoint directory")


def coerce(value: Any, like: Any, what: str) -> Any:
    """``value`` converted to the type of ``like`` (strings from the command line)."""
    if like is None or not isinstance(value, str) or isinstance(like, str):
        if isinstance(like, float) and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        return value
    text = value.strip()
    try:
        if isinstance(like, bool):
            if text.lower() in ("true", "1", "yes", "on"):
                return True
            if text.lower() in ("false", "0", "no", "off"):
                return False
            raise ValueError(text)
        if isinstance(like, int):
            return int(text)
        if isinstance(like, float):
            return float(text)
    except ValueError:
        raise ValueError(f"{what}={value!r}: expected a {type(like).__name__}") from None
    return value
