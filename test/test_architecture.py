"""The layout stays true: the import contracts catch what they forbid, no import cycle between
the project's modules, and no Python module over 400 lines.

The contracts themselves (``[tool.importlinter]`` in pyproject.toml) are checked on the real
tree by ``lint-imports`` in ``make lint``, which ``make test`` runs first; here each contract is
shown to fail on a copy of the tree with one deliberate violation.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = {  # root package: its directory in the repository
    "vgps": REPO / "vgps",
    "vgps_ros": REPO / "src" / "vgps_ros" / "vgps_ros",
    "vgps_critic": REPO / "src" / "vgps_critic" / "vgps_critic",
    "vgps_widowx": REPO / "src" / "vgps_widowx" / "vgps_widowx",
    "vgps_policy_bridge": REPO / "src" / "vgps_policy_bridge" / "vgps_policy_bridge",
    "vgps_training": REPO / "training" / "vgps_training",
}
MAX_LINES = 400
NOT_SOURCE = {".git", ".venv", "build", "install", "log", "ros2_ws", "out", "runs"}
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")

# (contract id, module file to change, line appended to it, text the report must show)
VIOLATIONS = [
    ("layers", "vgps_ros/qos.py", "import vgps_critic.selection",
     "vgps_ros.qos -> vgps_critic.selection"),
    ("layers", "vgps_training/config.py", "import vgps.bags", "vgps_training.config -> vgps.bags"),
    ("ros-in-nodes-only", "vgps_critic/model.py", "import rclpy", "vgps_critic.model -> rclpy"),
    ("ros-in-nodes-only", "vgps_widowx/safety.py", "import vgps_interfaces.msg",
     "vgps_widowx.safety -> vgps_interfaces"),
    ("ros-in-nodes-only", "vgps_widowx/safety.py", "from vgps_widowx import selector_node",
     "vgps_widowx.safety -> vgps_widowx.selector_node"),
    ("ros-in-nodes-only", "vgps_policy_bridge/policy.py", "from vgps_ros import qos",
     "vgps_policy_bridge.policy -> vgps_ros.qos"),  # reaches rclpy through vgps_ros
    ("pure-input-guard", "vgps_ros/input_guard.py", "import std_msgs.msg",
     "vgps_ros.input_guard -> std_msgs"),
    ("standalone-training", "vgps_training/config.py", "import rclpy",
     "vgps_training.config -> rclpy"),
    ("standalone-training", "vgps_training/config.py", "import vgps_widowx.safety",
     "vgps_training.config -> vgps_widowx.safety"),
    ("acyclic", "vgps_critic/model.py", "import vgps_critic.critic",
     "No cycles are allowed in vgps_critic"),  # vgps_critic.critic imports the model
]


def copy_packages(root: Path) -> None:
    """The six packages' Python files side by side under ``root``, as lint-imports finds them."""
    for name, source in PACKAGES.items():
        shutil.copytree(source, root / name, ignore=lambda d, names: [
            n for n in names if not (n.endswith(".py") or (Path(d) / n).is_dir())
            or n == "__pycache__"])


@pytest.mark.parametrize(("contract", "module", "line", "shown"), VIOLATIONS,
                         ids=[f"{c}:{m}:{line}" for c, m, line, _ in VIOLATIONS])
def test_contract_fails_on_a_violation(tmp_path, contract, module, line, shown):
    copy_packages(tmp_path)
    with (tmp_path / module).open("a") as handle:
        handle.write(f"\n{line}  # a deliberate violation\n")
    # lint-imports puts its working directory first on sys.path: the copy shadows the install
    proc = subprocess.run([str(LINT_IMPORTS), "--no-cache", "--no-logo", "--contract", contract,
                           str(REPO / "pyproject.toml")], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300, env={**os.environ, "PYTHONPATH": ""})
    report = proc.stdout + proc.stderr
    assert proc.returncode == 1, report
    assert "BROKEN" in report and shown in report, report


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles: every strongly connected group of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1 or node in graph[node]:
                    groups.append(sorted(group))
    return groups


def test_strongly_connected_finds_every_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a", "e"}, "e": {"d"}, "f": {"f"},
             "g": set()}
    assert sorted(strongly_connected(graph)) == [["a", "b", "c"], ["d", "e"], ["f"]]


def test_no_import_cycle_between_modules():
    # TYPE_CHECKING imports count: a cycle that exists only for the type checker is still two
    # modules that cannot be understood apart (a Protocol in the lower one removes it).
    graph = grimp.build_graph(*PACKAGES, cache_dir=None)
    imports = {m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}

    def where(importer: str, imported: str) -> str:
        details = graph.get_import_details(importer=importer, imported=imported)
        lines = ", ".join(str(d["line_number"]) for d in details)
        return f"{importer} -> {imported} (line {lines})"

    cycles = [" <-> ".join(group) + ": " + "; ".join(
        where(a, b) for a in group for b in sorted(imports[a] & set(group)))
        for group in strongly_connected(imports)]
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def python_files() -> list[Path]:
    """The project's Python files: git's tracked and new ones, else a walk of the tree."""
    try:
        listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard",
                                 "--", "*.py"], cwd=REPO, capture_output=True, text=True,
                                check=True, timeout=60).stdout.splitlines()
        files = [REPO / name for name in listed]
    except (OSError, subprocess.SubprocessError):  # not a git checkout
        files = []
        for folder, dirs, names in os.walk(REPO):  # symlinks (ros2_ws/src/*) not followed
            dirs[:] = [d for d in dirs if d not in NOT_SOURCE and not d.startswith(".")]
            files += [Path(folder) / n for n in names if n.endswith(".py")]
    return sorted(f for f in files if f.is_file() and not f.is_symlink()
                  and not NOT_SOURCE & set(f.relative_to(REPO).parts[:-1]))


def test_no_module_over_400_lines():
    files = python_files()
    assert len(files) > 100  # the listing found the tree
    long = {str(f.relative_to(REPO)): n for f in files
            if (n := len(f.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: " + ", ".join(
        f"{name} ({n})" for name, n in sorted(long.items()))
