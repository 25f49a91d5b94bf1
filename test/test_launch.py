"""The launch file: built from the one graph description, with executables that exist.

Where ``launch_ros`` is importable (a full ROS 2 install) ``generate_launch_description()`` is
run; everywhere the file is checked statically: it is parsed with ``ast``, imports
``launch``/``launch_ros`` only inside ``generate_launch_description``, takes its nodes from
``vgps.graph.description.describe``, passes their parameters through ``typed_parameters`` with
``ParameterValue`` and ``NODE_ENV`` as each node's environment, and every node's executable is a
console script of its package (in its pyproject.toml for pip and its setup.py for colcon) that
is installed here. The file's pure helpers (the typing of string parameters, the critic lookup)
run here against a stand-in ``ParameterValue``; docs/launch_check.md records the file run by
launch's own ``LaunchService`` over a colcon install.
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from vgps.graph.description import LAUNCH_ARGUMENTS, describe
from vgps.graph.processes import executable

ROOT = Path(__file__).resolve().parents[1]
LAUNCH_FILE = ROOT / "launch" / "steer_widowx.launch.py"


def _tree() -> ast.Module:
    return ast.parse(LAUNCH_FILE.read_text(), filename=str(LAUNCH_FILE))


def _imported_modules(nodes) -> set[str]:
    names = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_launch_ros_imports_stay_inside_generate_launch_description():
    tree = _tree()
    top_level = _imported_modules(tree.body)
    assert not {m for m in top_level if m.split(".")[0] in ("launch", "launch_ros")}
    [func] = [n for n in tree.body if isinstance(n, ast.FunctionDef)
              and n.name == "generate_launch_description"]
    inside = _imported_modules(ast.walk(func))
    assert {"launch", "launch_ros.actions", "vgps.graph.description"} <= inside


def test_launch_file_uses_the_graph_description():
    tree = _tree()
    calls = {n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call)
             and isinstance(n.func, ast.Name)}
    assert {"describe", "Node", "DeclareLaunchArgument", "LaunchDescription"} <= calls
    node_call = next(n for n in ast.walk(tree) if isinstance(n, ast.Call)
                     and isinstance(n.func, ast.Name) and n.func.id == "Node")
    assert {k.arg for k in node_call.keywords} >= {"package", "executable", "name",
                                                    "parameters", "remappings"}
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    assert "LAUNCH_ARGUMENTS" in names


def _setup_py_scripts(package: str) -> set[str]:
    tree = ast.parse((ROOT / "src" / package / "setup.py").read_text())
    scripts = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values):
                if isinstance(key, ast.Constant) and key.value == "console_scripts":
                    scripts |= {ast.literal_eval(v).split("=")[0].strip() for v in value.elts}
    return scripts


@pytest.mark.parametrize("node", describe().nodes, ids=lambda n: n.name)
def test_every_node_executable_is_a_console_script(node):
    pyproject = tomllib.loads((ROOT / "src" / node.package / "pyproject.toml").read_text())
    scripts = pyproject["project"].get("scripts", {})
    assert node.executable in scripts, f"{node.executable} not in {node.package}'s scripts"
    module, _, func = scripts[node.executable].partition(":")
    assert importlib.util.find_spec(module) is not None and func == "main"
    assert node.executable in _setup_py_scripts(node.package), "colcon would not install it"
    assert Path(executable(node)).is_file()  # installed where vgps up looks


@pytest.mark.ros
def test_generate_launch_description_runs():  # pragma: no cover - needs a full ROS 2 install
    pytest.importorskip("launch_ros",
                        reason="launch_ros is not installed (pip-only ROS 2); checked statically")
    spec = importlib.util.spec_from_file_location("steer_widowx_launch", LAUNCH_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    description = module.generate_launch_description()
    declared = {a.name for a in description.entities if hasattr(a, "default_value")}
    assert set(LAUNCH_ARGUMENTS) <= declared


def _launch_module():
    spec = importlib.util.spec_from_file_location("steer_widowx_launch_pure", LAUNCH_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # no launch/launch_ros import at module level
    return module


class _ParameterValue:
    """Stand-in for launch_ros.parameter_descriptions.ParameterValue (records its arguments)."""

    def __init__(self, value, *, value_type=None):
        self.value, self.value_type = value, value_type


def test_node_parameters_go_through_typed_parameters_and_every_node_gets_node_env():
    tree = _tree()
    [func] = [n for n in tree.body if isinstance(n, ast.FunctionDef)
              and n.name == "generate_launch_description"]
    imports = {(n.module, a.name) for n in ast.walk(func) if isinstance(n, ast.ImportFrom)
               for a in n.names}
    assert ("launch_ros.parameter_descriptions", "ParameterValue") in imports
    node_call = next(n for n in ast.walk(func) if isinstance(n, ast.Call)
                     and isinstance(n.func, ast.Name) and n.func.id == "Node")
    keywords = {k.arg: k.value for k in node_call.keywords}
    [typed] = keywords["parameters"].elts
    assert isinstance(typed, ast.Call) and typed.func.id == "typed_parameters"
    assert [a.id for a in typed.args if isinstance(a, ast.Name)] == ["ParameterValue"]
    assert "NODE_ENV" in {n.id for n in ast.walk(keywords["additional_env"])
                          if isinstance(n, ast.Name)}
    assert _launch_module().NODE_ENV["XLA_PYTHON_CLIENT_PREALLOCATE"] == "false"


def test_typed_parameters_wraps_strings_and_string_lists_only():
    typed = _launch_module().typed_parameters(
        {"instruction": "put x: here", "flag": "yes", "topics": ["camera/image_raw", "on"],
         "k": 10, "beta": 0.0, "pre_encode": True, "camera_xyz": [0.0, 0.1, 0.2], "empty": []},
        _ParameterValue)
    assert (typed["instruction"].value, typed["instruction"].value_type) == ("put x: here", str)
    assert (typed["flag"].value, typed["flag"].value_type) == ("yes", str)
    assert typed["topics"].value == ["camera/image_raw", "on"]
    assert typed["topics"].value_type == list[str]
    assert {k: typed[k] for k in ("k", "beta", "pre_encode", "camera_xyz", "empty")} == {
        "k": 10, "beta": 0.0, "pre_encode": True, "camera_xyz": [0.0, 0.1, 0.2], "empty": []}


def test_every_string_parameter_of_the_graph_is_typed(tmp_path):
    graph = describe({"instruction": "put x: here", "overlay": "true",
                      "record": str(tmp_path / "bag")})
    for node in graph.nodes:
        typed = _launch_module().typed_parameters(node.parameters, _ParameterValue)
        for name, value in node.parameters.items():
            if isinstance(value, str):
                assert typed[name].value_type is str, f"{node.name}.{name}"


def test_relative_critic_resolves_in_the_share_directory_first(tmp_path):
    resolve = _launch_module().resolve_critic
    share, cwd = tmp_path / "share", tmp_path / "cwd"
    (share / "models" / "sim_critic").mkdir(parents=True)
    (cwd / "mine").mkdir(parents=True)
    assert resolve("models/sim_critic", share, cwd) == str(share / "models" / "sim_critic")
    assert resolve("mine", share, cwd) == str(cwd / "mine")
    assert resolve("/abs/critic", share, cwd) == "/abs/critic"
    # Nowhere: the share-directory path, which the critic node then names in its error.
    assert resolve("missing", share, cwd) == str(share / "missing")
    (cwd / "models" / "sim_critic").mkdir(parents=True)
    assert resolve("models/sim_critic", share, cwd) == str(share / "models" / "sim_critic")


def test_the_default_critic_is_installed_with_the_launch_file():
    from vgps.graph.description import load_config

    default = load_config(ROOT / "config" / "steer_widowx.yaml")["critic_node"]["critic"]
    assert not Path(default).is_absolute() and (ROOT / default / "card.json").is_file()
    setup_py = (ROOT / "setup.py").read_text()
    assert f'"{default}"' in setup_py, "setup.py does not install the default critic"


@pytest.mark.ros
def test_the_graphs_camera_topic_is_the_one_the_description_guards():
    from vgps.graph.description import GRAPH_CAMERA
    from vgps_ros import qos

    assert GRAPH_CAMERA == "/" + qos.CAMERA


def test_security_argument_puts_every_node_in_its_enclave():
    tree = _tree()
    [func] = [n for n in tree.body if isinstance(n, ast.FunctionDef)
              and n.name == "generate_launch_description"]
    node_call = next(n for n in ast.walk(func) if isinstance(n, ast.Call)
                     and isinstance(n.func, ast.Name) and n.func.id == "Node")
    keywords = {k.arg: k.value for k in node_call.keywords}
    assert "--enclave" in {n.value for n in ast.walk(keywords["ros_arguments"])
                           if isinstance(n, ast.Constant)}
    names = {n.id for n in ast.walk(func) if isinstance(n, ast.Name)}
    assert {"security_env", "require_security"} <= names  # refuses without DDS-Security
    assert "security" in LAUNCH_ARGUMENTS
