"""The launch file: built from the one graph description, with executables that exist.

Where ``launch_ros`` is importable (a full ROS 2 install) ``generate_launch_description()`` is
run; everywhere the file is checked statically: it is parsed with ``ast``, imports
``launch``/``launch_ros`` only inside ``generate_launch_description``, takes its nodes from
``vgps.graph.description.describe``, and every node's executable is a console script of its
package (in its
pyproject.toml for pip and its setup.py for colcon) that is installed here.
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
