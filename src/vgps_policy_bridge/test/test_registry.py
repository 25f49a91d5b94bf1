"""The one registry of policies: names, factories, lazy optional dependencies."""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")  # must precede the first mujoco import

import sys

import pytest

from vgps_policy_bridge import proposer, registry
from vgps_policy_bridge.policy import Policy, PolicyUnavailableError
from vgps_policy_bridge.registry import (
    FACTORIES,
    IN_PROCESS,
    NEEDS_PRIVILEGED_STATE,
    POLICIES,
    SIM_INSTALL,
    PolicySettings,
    make_policy,
)


def test_one_list_of_names_for_the_node_and_the_evaluation():
    assert POLICIES == tuple(FACTORIES) == ("sim", "octo", "remote", "random")
    assert proposer.POLICIES is POLICIES and proposer.make_policy is make_policy
    assert proposer.PolicySettings is PolicySettings
    assert set(IN_PROCESS) <= set(POLICIES)
    assert NEEDS_PRIVILEGED_STATE.issubset(POLICIES)


@pytest.mark.parametrize("how", ["name", "settings"])
def test_make_policy_by_name_or_settings(how):
    policy = make_policy("sim" if how == "name" else PolicySettings(policy="sim", horizon=3))
    assert isinstance(policy, Policy) and policy.name == "sim"
    assert policy.config.horizon == (1 if how == "name" else 3)


def test_remote_policy_is_built_without_a_server():
    policy = make_policy(PolicySettings(policy="remote", remote_url="http://127.0.0.1:9/act"))
    assert isinstance(policy, Policy)


def test_unknown_names_are_refused_with_the_choices():
    with pytest.raises(ValueError, match="choose from"):
        make_policy("gpt")


def test_the_sim_policy_without_the_simulator_names_the_install_command(monkeypatch):
    for name in [m for m in sys.modules if m.startswith("vgps_policy_bridge.sim_")]:
        monkeypatch.delitem(sys.modules, name)
    for name in [m for m in sys.modules if m.split(".")[0] == "vgps_widowx"] + ["vgps_widowx"]:
        monkeypatch.setitem(sys.modules, name, None)  # import vgps_widowx... -> ImportError
    with pytest.raises(PolicyUnavailableError) as info:
        registry.make_policy("sim")
    assert SIM_INSTALL in str(info.value)
