"""The two descriptions of each Python package agree: pyproject.toml (pip) and setup.py +
package.xml (colcon). Pure and fast; test_colcon.py builds the workspace for real.

Checked for the bringup package and the runtime packages: package.xml is valid XML whose
name is the package's; its version is pyproject.toml's (setup.py reads it from package.xml); the
console scripts of setup.py are exactly pyproject.toml's; every pip dependency that has a rosdep
key is declared in package.xml under that key, and ros2_ws/README.md's pip step installs every
other one; ros2_ws/src links to every package.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from xml.etree import ElementTree

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"vgps": ROOT, **{name: ROOT / "src" / name for name in
                            ("vgps_ros", "vgps_policy_server", "vgps_critic",
                             "vgps_policy_bridge", "vgps_widowx")}}
# pip distribution -> rosdep key (rosdep/python.yaml of ros/rosdistro) for those that have one.
ROSDEP_KEYS = {"numpy": "python3-numpy", "pyyaml": "python3-yaml", "pillow": "python3-pil",
               "rich": "python3-rich", "tqdm": "python3-tqdm", "msgpack": "python3-msgpack"}


def _dependencies(folder: Path) -> set[str]:
    """pip distribution names of the package's runtime dependencies."""
    return {re.split(r"[<>=!~\[; ]", req, maxsplit=1)[0].lower()
            for req in _pyproject(folder)["dependencies"]}


def _pyproject(folder: Path) -> dict:
    return tomllib.loads((folder / "pyproject.toml").read_text())["project"]


def _manifest(folder: Path) -> ElementTree.Element:
    return ElementTree.parse(folder / "package.xml").getroot()


def _setup_py_scripts(folder: Path) -> dict[str, str]:
    tree = ast.parse((folder / "setup.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values):
                if isinstance(key, ast.Constant) and key.value == "console_scripts":
                    pairs = (ast.literal_eval(v).split("=") for v in value.elts)
                    return {name.strip(): target.strip() for name, target in pairs}
    return {}


@pytest.mark.parametrize("name", PACKAGES)
def test_package_xml_names_the_package_with_pyprojects_version(name):
    manifest = _manifest(PACKAGES[name])
    assert manifest.findtext("name") == name
    assert manifest.findtext("version") == _pyproject(PACKAGES[name])["version"]
    assert manifest.find("export/build_type").text == "ament_python"


@pytest.mark.parametrize("name", PACKAGES)
def test_setup_py_installs_pyprojects_scripts(name):
    assert _setup_py_scripts(PACKAGES[name]) == _pyproject(PACKAGES[name]).get("scripts", {})


@pytest.mark.parametrize("name", PACKAGES)
def test_python_dependencies_with_a_rosdep_key_are_declared(name):
    manifest = _manifest(PACKAGES[name])
    declared = {e.text for tag in ("depend", "exec_depend") for e in manifest.iter(tag)}
    pip = _dependencies(PACKAGES[name])
    needed = {ROSDEP_KEYS[dist] for dist in pip if dist in ROSDEP_KEYS}
    assert needed <= declared, f"{name}/package.xml lacks {sorted(needed - declared)}"
    # The suite's own packages (vgps-ros, ...) are ROS packages of the same names.
    own = {dist.replace("-", "_") for dist in pip if dist.startswith("vgps-")}
    assert own <= declared, f"{name}/package.xml lacks {sorted(own - declared)}"


def test_ros2_ws_links_every_package():
    src = ROOT / "ros2_ws" / "src"
    linked = {p.name: p.resolve() for p in src.iterdir() if p.is_symlink()}
    assert linked == {**{n: f.resolve() for n, f in PACKAGES.items()},
                      "vgps_interfaces": (ROOT / "src" / "vgps_interfaces").resolve()}


def test_ros2_ws_readme_pip_step_installs_every_dependency_without_a_rosdep_key():
    readme = (ROOT / "ros2_ws" / "README.md").read_text()
    # the `pip install ...` commands (with their continuation lines)
    commands = re.findall(r"^pip install (.*?)(?<!\\)$", readme, flags=re.M | re.S)
    named = {re.split(r"[<>=!~\[]", word.strip('"'), maxsplit=1)[0].lower()
             for command in commands for word in command.split() if not word.startswith("-")}
    needed = {dist for folder in PACKAGES.values() for dist in _dependencies(folder)
              if dist not in ROSDEP_KEYS and not dist.startswith("vgps-")}
    assert needed <= named, f"ros2_ws/README.md does not pip install {sorted(needed - named)}"
