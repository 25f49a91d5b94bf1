"""The one graph description: parameter file + launch arguments -> nodes, and launcher helpers."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import yaml

from vgps.cli.up import parse_launch_arguments, parse_sets
from vgps.graph.description import (
    CORRECTOR,
    LAUNCH_ARGUMENTS,
    NODES,
    OVERLAY,
    RECORDER,
    coerce,
    describe,
    load_config,
    policy_parameters,
)
from vgps.graph.processes import isolate, ros_arguments

ROOT = Path(__file__).resolve().parents[1]


def test_parameter_file_is_keyed_by_node_name():
    config = load_config(ROOT / "config" / "steer_widowx.yaml")
    assert set(config) == {node.name for node in NODES} | {OVERLAY.name, CORRECTOR.name}
    assert isinstance(config["selector_node"]["beta"], float)


def test_defaults_describe_the_sim_graph_in_activation_order():
    graph = describe()
    assert [n.name for n in graph.nodes] == ["critic_node", "policy_node", "selector_node",
                                             "arm_driver"]
    assert [n.lifecycle for n in graph.nodes] == [True, True, False, True]
    assert graph.node("arm_driver").parameters["backend"] == "sim"
    assert Path(graph.node("critic_node").parameters["critic"]).is_absolute()
    assert graph.node("critic_node").parameters["autostart"] is False
    assert all(n.remappings == () for n in graph.nodes)


def test_overlay_node_only_on_request():
    assert OVERLAY.name not in [n.name for n in describe().nodes]
    graph = describe({"overlay": "true"})
    overlay = graph.node(OVERLAY.name)
    assert (overlay.package, overlay.executable, overlay.lifecycle) == (
        OVERLAY.package, OVERLAY.executable, False)
    assert overlay.parameters["enabled"] is True
    assert overlay.parameters["camera_xyz"] == [0.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="calibration"):
        describe({"overlay": "true", "robot": "real", "policy": "octo"})
    with pytest.raises(ValueError, match="true or false"):
        describe({"overlay": "yes"})


def test_launch_arguments_reach_every_node_that_needs_them(tmp_path):
    graph = describe({"robot": "real", "policy": "octo-small-1.5", "critic": str(tmp_path),
                      "k": "50", "beta": "0.1", "task": "stack_blocks",
                      "instruction": "stack it", "record": "out/bag"}, autostart=True)
    params = {n.name: n.parameters for n in graph.nodes}
    assert params["arm_driver"]["backend"] == "interbotix"
    assert params["policy_node"]["policy"] == "octo"
    assert params["policy_node"]["octo_model"] == "hf://rail-berkeley/octo-small-1.5"
    assert params["critic_node"]["critic"] == str(tmp_path)
    assert params["policy_node"]["k"] == params["selector_node"]["k"] == 50
    assert params["selector_node"]["beta"] == 0.1 and isinstance(params["critic_node"]["k"], int)
    assert params["arm_driver"]["task"] == "stack_blocks"
    assert {params[n]["instruction"] for n in ("arm_driver", "policy_node", "critic_node")} == {
        "stack it"}
    assert graph.node("arm_driver").remappings == (("camera/source", "/image_raw"),)
    assert params["critic_node"]["autostart"] is True
    assert graph.arguments["record"] == "out/bag"


def test_the_real_arm_layers_the_bridge_deployment_settings():
    sim, real = (describe({"robot": robot, "policy": "random"}) for robot in ("sim", "real"))
    arm = real.node("arm_driver").parameters
    assert arm["reset_pose"] == "bridge_start" and arm["sticky_gripper_steps"] == 3
    assert arm["workspace_low"] == [0.1, -0.15, -0.1] and arm["workspace_high"] == [
        0.45, 0.25, 0.18]
    assert (arm["yaw_low"], arm["yaw_high"]) == (-1.57, 1.57)
    assert arm["move_time"] == arm["control_period_s"] == 0.2 and arm["max_steps"] == 120
    assert {real.node(n).parameters["k"] for n in ("policy_node", "critic_node",
                                                    "selector_node")} == {50}
    assert real.node("selector_node").parameters["beta"] == 0.0
    assert real.node("selector_node").parameters["execute"] == "ensemble"
    assert real.node("policy_node").parameters["horizon"] == 4
    assert sim.node("arm_driver").parameters["sticky_gripper_steps"] == 0
    assert sim.node("selector_node").parameters["k"] == 10
    # launch arguments and overrides still win over the real arm's file
    graph = describe({"robot": "real", "policy": "random", "k": "8"},
                     overrides={"arm_driver": {"sticky_gripper_steps": 1}})
    assert graph.node("selector_node").parameters["k"] == 8
    assert graph.node("arm_driver").parameters["sticky_gripper_steps"] == 1


@pytest.mark.parametrize("camera", ["/camera/image_raw", "camera/image_raw", "/camera/image_raw/"])
def test_the_camera_driver_may_not_publish_on_the_graphs_own_camera_topic(camera):
    with pytest.raises(ValueError, match="the graph itself publishes /camera/image_raw"):
        describe({"robot": "real", "policy": "random", "camera": camera})
    graph = describe({"robot": "real", "policy": "random", "camera": "/cam/color/image_raw"})
    assert graph.node("arm_driver").remappings == (("camera/source", "/cam/color/image_raw"),)


def test_a_real_arm_file_with_unknown_keys_is_refused(tmp_path):
    base = tmp_path / "steer_widowx.yaml"
    base.write_text((ROOT / "config" / "steer_widowx.yaml").read_text())
    (tmp_path / "real_widowx.yaml").write_text(
        "arm_driver:\n  ros__parameters:\n    reset_pos: neutral\n")
    with pytest.raises(ValueError, match=r"arm_driver\.reset_pos is not in the base"):
        describe({"robot": "real", "policy": "random"}, config=base)
    assert describe({"robot": "sim"}, config=base)  # only robot:=real reads it


def test_the_default_critic_is_found_from_any_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    critic = describe().node("critic_node").parameters["critic"]
    assert critic == str((ROOT / "models" / "sim_critic").resolve())
    (tmp_path / "mine").mkdir()  # a relative critic:= argument is the working directory's
    assert describe({"critic": "mine"}).node("critic_node").parameters["critic"] == str(
        tmp_path / "mine")


def test_overrides_are_typed_and_checked():
    graph = describe(overrides={"arm_driver": {"image_size": "64"},
                                "selector_node": {"watchdog_timeout_s": 1}})
    assert graph.node("arm_driver").parameters["image_size"] == 64
    assert graph.node("selector_node").parameters["watchdog_timeout_s"] == 1.0
    with pytest.raises(ValueError, match="no such parameter"):
        describe(overrides={"arm_driver": {"nope": 1}})
    with pytest.raises(ValueError, match="unknown launch argument"):
        describe({"robott": "sim"})
    with pytest.raises(ValueError, match="expected a int"):
        describe({"k": "ten"})


@pytest.mark.parametrize("policy, expected", [
    ("sim", {"policy": "sim"}),
    ("remote", {"policy": "remote"}),
    ("http://gpu:8000/act", {"policy": "remote", "remote_url": "http://gpu:8000/act"}),
    ("hf://rail-berkeley/octo-base-1.5", {"policy": "octo",
                                          "octo_model": "hf://rail-berkeley/octo-base-1.5"}),
])
def test_policy_argument(policy, expected):
    assert policy_parameters(policy) == expected


def test_unknown_policy_is_an_error():
    with pytest.raises(ValueError, match="policy:="):
        policy_parameters("no-such-policy")
    with pytest.raises(ValueError, match="needs robot:=sim"):
        describe({"robot": "real", "policy": "sim"})


def test_coerce():
    assert coerce("true", False, "x") is True and coerce("3", 1.0, "x") == 3.0
    assert coerce(2, 1.0, "x") == 2.0 and coerce("a", "b", "x") == "a"


def test_ros_arguments_match_launch_ros(tmp_path):
    node = describe({"robot": "real", "policy": "remote"}).node("arm_driver")
    args = ros_arguments(node, tmp_path / "p.yaml")
    assert args == ["--ros-args", "-r", "__node:=arm_driver", "--params-file",
                    str(tmp_path / "p.yaml"), "-r", "camera/source:=/image_raw"]


def test_params_file_round_trips_through_yaml():
    graph = describe()
    data = yaml.safe_load(yaml.safe_dump(graph.params_file()))
    assert data["selector_node"]["ros__parameters"] == graph.node("selector_node").parameters


def test_isolation_is_set_only_where_unset():
    caller = {"ROS_DOMAIN_ID": "42"}
    env = isolate(caller)
    assert env["ROS_DOMAIN_ID"] == "42" and env["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"
    assert caller == {"ROS_DOMAIN_ID": "42"}  # a copy: the caller's environment is not written
    assert 1 <= int(isolate({})["ROS_DOMAIN_ID"]) <= 100
    assert env["XLA_PYTHON_CLIENT_PREALLOCATE"] == "false"  # JAX leaves GPU memory to the others
    kept = isolate({"XLA_PYTHON_CLIENT_PREALLOCATE": "true"})
    assert kept["XLA_PYTHON_CLIENT_PREALLOCATE"] == "true"


def test_named_node_entries_make_the_specs():
    assert [node.name for node in NODES] == ["critic_node", "policy_node", "selector_node",
                                             "arm_driver"]
    assert (RECORDER.package, RECORDER.executable, RECORDER.name) == ("vgps", "vgps-recorder",
                                                                      "recorder")
    assert not RECORDER.lifecycle and not OVERLAY.lifecycle
    spec = RECORDER.spec({"path": "/tmp/bag"})
    assert (spec.package, spec.executable, spec.name, spec.lifecycle, spec.remappings) == (
        "vgps", "vgps-recorder", "recorder", False, ())
    graph = describe({"record": "/tmp/vgps-bag-never-made"})
    assert graph.nodes[0].name == RECORDER.name  # started first


def test_cli_parsers():
    assert parse_launch_arguments(["k:=10", "instruction:=a b"]) == {"k": "10",
                                                                    "instruction": "a b"}
    assert parse_sets(["arm_driver.image_size=64", "selector_node.fallback=hold"]) == {
        "arm_driver": {"image_size": 64}, "selector_node": {"fallback": "hold"}}
    for bad in (["k=10"],):
        with pytest.raises(ValueError):
            parse_launch_arguments(bad)
    with pytest.raises(ValueError):
        parse_sets(["image_size=64"])
    assert set(LAUNCH_ARGUMENTS) >= {"robot", "policy", "critic", "k", "beta", "task",
                                     "instruction", "record"}


MONITOR_SUMMARY = {
    "episodes": [{"episode": 0, "task": "carrot_on_plate", "success": True, "steps": 25,
                  "outcome": "succeeded"},
                 {"episode": 1, "task": "carrot_on_plate", "success": False, "steps": 40,
                  "outcome": "timeout"}],
    "step_latency_ms": {"p50": 10.239, "p95": 17.412, "n": 48},
    "decisions": {"argmax": 48, "fallback": 1},
    "idle_holds": 31,
}


@pytest.mark.parametrize("extra", [
    {},
    {"video": "/out/episode_0.mp4"},
    {"video": None},
    {"bag": {"path": "/out/bag", "messages": {"vgps/selected": 48}, "problems": []}},
    {"bag": {"path": "/out/bag", "error": "no MCAP file"}},
], ids=["plain", "video", "no-frames", "bag", "bad-bag"])
def test_up_result_writes_the_summary_json_of_before(extra):
    from vgps.graph.result import BagSummary, UpResult

    arguments = {name: arg.default for name, arg in LAUNCH_ARGUMENTS.items()}
    bag = extra.get("bag")
    if bag is not None:
        bag = BagSummary(path=bag["path"], messages=bag.get("messages"),
                         problems=tuple(bag.get("problems", ())), error=bag.get("error"))
    result = UpResult.from_monitor(
        MONITOR_SUMMARY, arguments=arguments, exit_code=0, ros_domain_id=45,
        video_requested="video" in extra,
        video=Path(extra["video"]) if extra.get("video") else None, bag=bag)
    # Exactly what up() wrote as a dict before it returned a typed result: same keys, same order.
    before = {**MONITOR_SUMMARY, "arguments": arguments, "exit_code": 0, "ros_domain_id": 45,
              **extra}
    assert json.dumps(result.to_json(), indent=2) == json.dumps(before, indent=2)
    assert result.episodes[1].outcome == "timeout" and result.step_latency_ms.p95 == 17.412
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.exit_code = 1  # type: ignore[misc]


def test_security_argument_gives_every_node_its_enclave(tmp_path):
    from vgps.graph.processes import node_env

    plain = describe({"record": str(tmp_path / "bag"), "overlay": "true"})
    assert all(n.enclave == "" for n in plain.nodes)
    assert "--enclave" not in ros_arguments(plain.nodes[0], tmp_path / "p.yaml")
    assert "ROS_SECURITY_ENABLE" not in node_env(plain, {"A": "1"})
    graph = describe({"security": str(tmp_path / "keys"), "record": str(tmp_path / "bag"),
                      "overlay": "true"})
    assert {n.name: n.enclave for n in graph.nodes} == {
        n.name: f"/vgps/{n.name}" for n in plain.nodes}
    for node in graph.nodes:
        assert ros_arguments(node, tmp_path / "p.yaml")[-2:] == ["--enclave", node.enclave]
    env = node_env(graph, {"A": "1"})
    assert env["ROS_SECURITY_KEYSTORE"] == str((tmp_path / "keys").resolve())
    assert env["ROS_SECURITY_ENABLE"] == "true" and env["ROS_SECURITY_STRATEGY"] == "Enforce"
    assert env["A"] == "1"
