"""colcon (ament_python) entry; pip reads pyproject.toml. Installs the ament index marker."""

from setuptools import setup

package = "vgps_widowx"
setup(
    # The node executables; pip reads the same list from pyproject.toml [project.scripts].
    entry_points={"console_scripts": ["selector_node = vgps_widowx.selector_node:main",
                                      "arm_driver_node = vgps_widowx.arm_driver_node:main",
                                      "overlay_node = vgps_widowx.overlay_node:main"]},
    # colcon/ament_python: executables go to lib/<package>/, where ros2 run and launch_ros look.
    options={"develop": {"script_dir": f"$base/lib/{package}"},
             "install": {"install_scripts": f"$base/lib/{package}"}},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{package}"]),
        (f"share/{package}", ["package.xml"]),
    ],
)
