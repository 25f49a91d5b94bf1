"""colcon (ament_python) entry of vgps_widowx; pip reads pyproject.toml.

colcon runs this file without pip: ``setup.py --dry-run`` read back as Python literals, and with
``--symlink-install`` ``setup.py develop`` in its build directory, where only this file, the
package directory and the data files are linked (no pyproject.toml). So name, version
(package.xml's), packages and scripts are given here too; test/test_colcon.py builds both ways.
"""

from pathlib import Path
from xml.etree import ElementTree

from setuptools import find_packages, setup
from setuptools.dist import Distribution

package = "vgps_widowx"
# The source directory, also when colcon runs this file through its link in the build directory.
HERE = Path(__file__).resolve().parent


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


setup(
    distclass=LiteralDistribution,
    name=package,
    version=ElementTree.parse(HERE / "package.xml").findtext("version"),
    packages=find_packages(include=[package, f"{package}.*"]),
    # The node executables; pip reads the same list from pyproject.toml [project.scripts].
    entry_points={"console_scripts": [
        "selector_node = vgps_widowx.selector_node:main",
        "arm_driver_node = vgps_widowx.arm_driver_node:main",
        "overlay_node = vgps_widowx.overlay_node:main",
        "vgps-teleop-keyboard = vgps_widowx.teleop_keyboard_node:main",
        "vgps-sim-corrector = vgps_widowx.sim_corrector_node:main",
    ]},
    # colcon/ament_python: executables go to lib/<package>/, where ros2 run and launch_ros look.
    options={"develop": {"script_dir": f"$base/lib/{package}"},
             "install": {"install_scripts": f"$base/lib/{package}"}},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{package}"]),
        (f"share/{package}", ["package.xml"]),
    ],
)
