"""colcon (ament_python) entry; pip reads pyproject.toml. Installs the ament index marker."""

from setuptools import setup

package = "vgps_ros"
setup(
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{package}"]),
        (f"share/{package}", ["package.xml"]),
    ],
)
