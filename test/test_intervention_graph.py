"""The ``intervention:=`` launch argument: the corrector node and whom the selector obeys."""

from __future__ import annotations

import pytest

from vgps.graph.description import CORRECTOR, LAUNCH_ARGUMENTS, TELEOP_NODE, describe


def test_by_default_only_the_keyboard_teleop_may_take_over():
    graph = describe({})
    assert LAUNCH_ARGUMENTS["intervention"].default == "none"
    assert CORRECTOR.name not in [n.name for n in graph.nodes]
    assert graph.node("selector_node").parameters["intervention_publishers"] == [TELEOP_NODE]


def test_intervention_sim_adds_the_corrector_and_trusts_it():
    graph = describe({"intervention": "sim"})
    corrector = graph.node("sim_corrector")
    assert (corrector.package, corrector.executable, corrector.lifecycle) == (
        "vgps_widowx", "vgps-sim-corrector", False)
    assert graph.node("selector_node").parameters["intervention_publishers"] == [
        TELEOP_NODE, "sim_corrector"]
    assert graph.nodes[-1].name == "sim_corrector"  # after the steering nodes


def test_the_corrector_runs_in_its_enclave_with_security(tmp_path):
    graph = describe({"intervention": "sim", "security": str(tmp_path)})
    assert graph.node("sim_corrector").enclave == "/vgps/sim_corrector"


def test_intervention_sim_on_the_real_arm_is_a_clear_error():
    with pytest.raises(ValueError, match=r"intervention:=sim .* needs robot:=sim"):
        describe({"robot": "real", "policy": "random", "intervention": "sim"})


def test_an_unknown_intervention_mode_is_named():
    with pytest.raises(ValueError, match="intervention:='joystick': use none or sim"):
        describe({"intervention": "joystick"})
