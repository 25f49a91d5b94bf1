"""colcon builds the ROS 2 workspace (ros2_ws/) into the layout ROS expects, plain and symlinked.

What a lab does on a ROS 2 machine (ros2_ws/README.md), here against the ROS 2 wheels of this
venv instead of /opt/ros: colcon from PyPI (``colcon-common-extensions``) with setuptools 68.1.2,
the version of Ubuntu 24.04, in a venv of its own that sees this venv's packages the way a
``--system-site-packages`` venv sees /opt/ros (kept in ``build/colcon-venv``, made on first use).
A copy of the workspace is built with ``colcon build`` and with ``colcon build
--symlink-install``; then every package must have its ament index entry and package.xml, every
node executable (and ``vgps``, ``vgps-recorder``) must be in ``lib/<package>/``, the launch file,
parameter file and shipped critic in ``share/vgps/``, and the installed workspace, sourced, must
import every package from the install and run the ``vgps`` executable.

Takes ~1-2 minutes on 2 cores (vgps_interfaces is compiled twice), hence ``slow``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from vgps.graph.description import NODES, OVERLAY, RECORDER

pytestmark = [pytest.mark.ros, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
COLCON_VENV = ROOT / "build" / "colcon-venv"
REQUIREMENTS = ("colcon-common-extensions", "setuptools==68.1.2")
PACKAGES = ("vgps_interfaces", "vgps_ros", "vgps_policy_server", "vgps_critic",
            "vgps_policy_bridge", "vgps_widowx", "vgps")
PYTHON_PACKAGES = PACKAGES[1:]
# What the workspace's packages are made of (ros2_ws/src links to src/* and to the root).
COPIED = ("setup.py", "package.xml", "pyproject.toml", "README.md", "resource", "launch",
          "config", "models", "vgps", "src", "ros2_ws")
NOT_COPIED = shutil.ignore_patterns("__pycache__", "*.egg-info", "build", "install", "log")
EXECUTABLES = sorted({(e.package, e.executable) for e in (*NODES, OVERLAY, RECORDER)}
                     | {("vgps", "vgps"), ("vgps_policy_server", "vgps-policy-server")})
SHARED = ("launch/steer_widowx.launch.py", "config/steer_widowx.yaml", "config/real_widowx.yaml",
          *(p.relative_to(ROOT).as_posix() for p in sorted((ROOT / "models" / "sim_critic")
                                                           .rglob("*")) if p.is_file()))


def _run(cmd, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kwargs)


def _explain(done: subprocess.CompletedProcess) -> str:
    return f"{' '.join(map(str, done.args))} exited {done.returncode}:\n" + \
        "\n".join((done.stdout + done.stderr).splitlines()[-60:])


@pytest.fixture(scope="module")
def colcon_python() -> Path:
    """The colcon venv's Python (made once; remade when the requirements change)."""
    underlay = sysconfig.get_paths()["purelib"]  # this venv's packages: the "ROS install"
    stamp = COLCON_VENV / "vgps-colcon.json"
    wanted = {"requirements": list(REQUIREMENTS), "underlay": underlay,
              "python": sys.version.split()[0]}
    python = COLCON_VENV / "bin" / "python"
    if not (stamp.is_file() and json.loads(stamp.read_text()) == wanted and python.exists()):
        shutil.rmtree(COLCON_VENV, ignore_errors=True)
        for cmd in ([sys.executable, "-m", "venv", str(COLCON_VENV)],
                    [str(python), "-m", "pip", "install", "--quiet", *REQUIREMENTS]):
            done = _run(cmd)
            assert done.returncode == 0, _explain(done)
        purelib = _run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()"
                        "['purelib'])"]).stdout.strip()
        # A path line: this venv's packages come after colcon's own (its setuptools first).
        (Path(purelib) / "vgps_underlay.pth").write_text(underlay + "\n")
        stamp.write_text(json.dumps(wanted))
    return python


def _environment(colcon_python: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "COLCON_PREFIX_PATH", "_ROS_WHEELS_BOOTSTRAP_COMPLETE")}
    env.update(AMENT_PREFIX_PATH=sys.prefix, CMAKE_PREFIX_PATH=sys.prefix,
               PATH=f"{colcon_python.parent}{os.pathsep}{env['PATH']}")
    return env


def _sourced(install: Path, env: dict[str, str]) -> dict[str, str]:
    """The environment after ``. install/setup.sh``."""
    done = _run(["sh", "-c", '. "$1/setup.sh" && env -0', "sh", str(install)], env=env)
    assert done.returncode == 0, _explain(done)
    return dict(line.split("=", 1) for line in done.stdout.split("\0") if "=" in line)


@pytest.fixture(scope="module", params=[False, True], ids=["plain", "symlink-install"])
def built(request, colcon_python, tmp_path_factory):
    """``(copy of the repository, its install directory, environment)`` after colcon build."""
    symlink = request.param
    copy = tmp_path_factory.mktemp("symlink" if symlink else "plain")
    for name in COPIED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, copy / name, symlinks=True, ignore=NOT_COPIED)
        else:
            shutil.copy2(source, copy / name)
    ws = copy / "ros2_ws"
    env = _environment(colcon_python)
    listed = _run([str(colcon_python), "-m", "colcon", "list", "--names-only"], cwd=ws, env=env)
    assert sorted(listed.stdout.split()) == sorted(PACKAGES), _explain(listed)
    cmd = [str(colcon_python), "-m", "colcon", "build", "--parallel-workers", "2",
           *(["--symlink-install"] if symlink else []),
           "--cmake-args", f"-DPython3_EXECUTABLE={sys.executable}", "-DBUILD_TESTING=OFF"]
    done = _run(cmd, cwd=ws, env=env)
    assert done.returncode == 0, _explain(done)
    return copy, ws / "install", env, symlink


def test_every_package_is_in_the_ament_index_with_its_package_xml(built):
    _, install, _, _ = built
    for pkg in PACKAGES:
        assert (install / pkg / "share" / pkg / "package.xml").is_file(), pkg
        index = install / pkg / "share" / "ament_index" / "resource_index" / "packages" / pkg
        assert index.is_file(), f"{pkg} is not in the ament index"


@pytest.mark.parametrize(("package", "name"), EXECUTABLES, ids=lambda v: str(v))
def test_executables_are_in_lib_package(built, package, name):
    _, install, _, _ = built
    path = install / package / "lib" / package / name
    assert path.is_file() and os.access(path, os.X_OK), f"{path} missing (ros2 run/launch)"


def test_launch_config_and_shipped_critic_are_in_share_vgps(built):
    copy, install, _, symlink = built
    share = install / "vgps" / "share" / "vgps"
    for rel in SHARED:
        path = share / rel
        assert path.is_file(), f"{rel} is not installed in share/vgps"
        # --symlink-install links the sources; a plain build copies them.
        assert path.is_symlink() == symlink, rel
        if symlink:
            assert path.resolve() == (copy / rel).resolve()


def test_sourced_install_imports_every_package_from_the_install(built):
    copy, install, env, symlink = built
    env = _sourced(install, env)
    code = (
        "import importlib, json, sys\n"
        "from ament_index_python.packages import get_package_share_directory\n"
        "from vgps.graph.description import default_config\n"
        f"mods = {[*PYTHON_PACKAGES, 'vgps_interfaces.msg']!r}\n"
        "out = {m: importlib.import_module(m).__file__ for m in mods}\n"
        f"out.update({{'share:' + p: get_package_share_directory(p) for p in {PACKAGES!r}}})\n"
        "out['config'] = str(default_config())\n"
        "print(json.dumps(out))\n")
    done = _run([str(COLCON_VENV / "bin" / "python"), "-c", code], env=env, cwd=copy.parent)
    assert done.returncode == 0, _explain(done)
    found = json.loads(done.stdout.splitlines()[-1])
    for key, where in found.items():
        # From the installed workspace (or, symlinked, its sources), never from this checkout.
        assert Path(where).resolve().is_relative_to(copy.resolve()), f"{key}: {where}"
    for pkg in PACKAGES:
        assert Path(found[f"share:{pkg}"]) == install / pkg / "share" / pkg
    if not symlink:
        assert Path(found["vgps_widowx"]).is_relative_to(install / "vgps_widowx")
    done = _run([str(install / "vgps" / "lib" / "vgps" / "vgps"), "--help"], env=env)
    assert done.returncode == 0 and "usage" in done.stdout.lower(), _explain(done)
