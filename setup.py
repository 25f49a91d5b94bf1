"""colcon (ament_python) entry of the bringup package ``vgps``; pip reads pyproject.toml.

colcon runs this file without pip: ``setup.py --dry-run`` read back as Python literals, and with
``--symlink-install`` ``setup.py develop`` in its build directory, where only this file, the
``vgps`` package directory and the data files are linked (no pyproject.toml). So name, version
(package.xml's), packages and scripts are given here too; test/test_colcon.py builds both ways.

Installed for ROS (``share/vgps/``): package.xml, the launch file, the parameter file and the
shipped simulation critic (``models/sim_critic``, the launch file's default ``critic``).
"""

import os
from glob import glob
from pathlib import Path
from xml.etree import ElementTree

from setuptools import find_packages, setup
from setuptools.dist import Distribution

package = "vgps"
# The repository root, also when colcon runs this file through its link in the build directory.
HERE = Path(__file__).resolve().parent
SHIPPED_MODELS = ("models/sim_critic",)


class LiteralDistribution(Distribution):
    """Keeps ``python_requires`` a string, as colcon can read it back.

    setuptools turns pyproject.toml's ``requires-python`` into a ``SpecifierSet``, whose repr
    (``<SpecifierSet('>=3.10')>``) ``ast.literal_eval`` in colcon-python-setup-py cannot parse.
    """

    def parse_config_files(self, *args, **kwargs):
        super().parse_config_files(*args, **kwargs)
        for holder in (self, self.metadata):
            if getattr(holder, "python_requires", None) is not None:
                holder.python_requires = str(holder.python_requires)


def tree_data_files(top: str) -> list[tuple[str, list[str]]]:
    """``(share/vgps/<dir>, [files])`` for every directory under ``top`` (relative paths)."""
    out = []
    for folder, dirs, names in os.walk(HERE / top):
        dirs.sort()
        rel = Path(folder).relative_to(HERE).as_posix()
        files = sorted(f"{rel}/{name}" for name in names)
        if files:
            out.append((f"share/{package}/{rel}", files))
    return out


setup(
    distclass=LiteralDistribution,
    name=package,
    version=ElementTree.parse(HERE / "package.xml").findtext("version"),
    packages=find_packages(include=[package, f"{package}.*"]),
    # colcon/ament_python: executables go to lib/vgps/, where launch_ros finds the recorder
    # (record:=DIR) and `ros2 run vgps vgps ...` runs the CLI; pip reads pyproject.toml's
    # [project.scripts] and puts them on the venv's PATH.
    entry_points={"console_scripts": ["vgps = vgps.cli.main:main",
                                      "vgps-recorder = vgps.bags.recorder_node:main"]},
    options={"develop": {"script_dir": f"$base/lib/{package}"},
             "install": {"install_scripts": f"$base/lib/{package}"}},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{package}"]),
        (f"share/{package}", ["package.xml"]),
        (f"share/{package}/launch", sorted(glob("launch/*.launch.py", root_dir=HERE))),
        (f"share/{package}/config", sorted(glob("config/*.yaml", root_dir=HERE))),
        *(entry for top in SHIPPED_MODELS for entry in tree_data_files(top)),
    ],
)
