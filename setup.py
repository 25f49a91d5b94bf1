"""colcon (ament_python) entry for the bringup package; pip reads pyproject.toml."""

from glob import glob

from setuptools import setup

setup(
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/vgps"]),
        ("share/vgps", ["package.xml"]),
        ("share/vgps/launch", glob("launch/*.launch.py")),
        ("share/vgps/config", glob("config/*.yaml")),
    ],
)
