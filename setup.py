"""colcon (ament_python) entry for the bringup package; pip reads pyproject.toml."""

from glob import glob

from setuptools import setup

setup(
    # colcon/ament_python: executables go to lib/vgps/, where launch_ros finds the recorder
    # (record:=DIR) and `ros2 run vgps vgps ...` runs the CLI; pip reads pyproject.toml's
    # [project.scripts] and puts them on the venv's PATH.
    entry_points={"console_scripts": ["vgps = vgps.cli.main:main",
                                      "vgps-recorder = vgps.bags.recorder_node:main"]},
    options={"develop": {"script_dir": "$base/lib/vgps"},
             "install": {"install_scripts": "$base/lib/vgps"}},
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/vgps"]),
        ("share/vgps", ["package.xml"]),
        ("share/vgps/launch", glob("launch/*.launch.py")),
        ("share/vgps/config", glob("config/*.yaml")),
    ],
)
