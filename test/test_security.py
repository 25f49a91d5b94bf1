"""SROS2 for the graph (vgps.security): keystore, permissions from the graph, refusal.

The keystore is checked with the ``openssl`` CLI, independently of the generator: every
identity certificate chains to the keystore's CA, governance.p7s and every permissions.p7s are
valid S/MIME signatures of the XML beside them by the permissions CA. Each enclave's grants are
the table derived from the graph and nothing more; the table agrees with what the node sources
create. The ``ros`` part: ``vgps up security:=KEYSTORE`` on the PyPI wheels (Fast DDS without
security) exits non-zero naming the missing security support before any node starts.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import stat
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from vgps.cli.main import main
from vgps.graph.description import CORRECTOR, NODES, OVERLAY, RECORDER, TELEOP_NODE, describe
from vgps.security import MONITOR, enclave, missing_enclaves
from vgps.security.permissions import NODE_TOPICS, grants, publishers_of

ROOT = Path(__file__).resolve().parents[1]
ALL_NODES = [*(e.name for e in NODES), OVERLAY.name, RECORDER.name, MONITOR, CORRECTOR.name,
             TELEOP_NODE]
needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl CLI")


@pytest.fixture(scope="module")
def keystore(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("sec") / "keys"
    assert main(["security", "init", str(path), "--domain-range", "3-40"]) == 0
    return path


def _openssl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["openssl", *args], capture_output=True, text=True)


def test_keystore_has_sros2s_layout(keystore):
    for name in ("public/ca.cert.pem", "public/identity_ca.cert.pem",
                 "public/permissions_ca.cert.pem", "private/ca.key.pem",
                 "private/identity_ca.key.pem", "private/permissions_ca.key.pem",
                 "enclaves/governance.xml", "enclaves/governance.p7s"):
        assert (keystore / name).is_file(), name
    assert stat.S_IMODE((keystore / "private/ca.key.pem").stat().st_mode) == 0o600
    for node in ALL_NODES:
        directory = keystore / "enclaves" / enclave(node).lstrip("/")
        for name in ("cert.pem", "key.pem", "governance.p7s", "identity_ca.cert.pem",
                     "permissions_ca.cert.pem", "permissions.xml", "permissions.p7s"):
            assert (directory / name).is_file(), (node, name)
        assert stat.S_IMODE((directory / "key.pem").stat().st_mode) == 0o600
    assert missing_enclaves(keystore, ALL_NODES) == []
    assert missing_enclaves(keystore, ["nobody"]) == ["/vgps/nobody"]


@needs_openssl
def test_every_certificate_chains_to_the_ca_and_names_its_enclave(keystore):
    ca = str(keystore / "public" / "identity_ca.cert.pem")
    for node in ALL_NODES:
        cert = keystore / "enclaves" / enclave(node).lstrip("/") / "cert.pem"
        done = _openssl("verify", "-CAfile", ca, str(cert))
        assert done.returncode == 0 and ": OK" in done.stdout, done.stderr
        subject = _openssl("x509", "-in", str(cert), "-noout", "-subject").stdout
        assert subject.strip().replace(" ", "") == f"subject=CN={enclave(node)}"
        text = _openssl("x509", "-in", str(cert), "-noout", "-text").stdout
        assert "prime256v1" in text or "P-256" in text


@needs_openssl
def test_governance_and_permissions_are_signed_by_the_permissions_ca(keystore):
    ca = str(keystore / "public" / "permissions_ca.cert.pem")
    signed = [keystore / "enclaves" / "governance.p7s",
              *(keystore / "enclaves" / enclave(n).lstrip("/") / "permissions.p7s"
                for n in ALL_NODES)]
    for p7s in signed:
        done = _openssl("smime", "-verify", "-in", str(p7s), "-CAfile", ca, "-text")
        assert done.returncode == 0, (p7s, done.stderr)
        xml = p7s.with_suffix(".xml").read_text()
        assert done.stdout.replace("\r\n", "\n") == xml  # the file beside it, as signed
    tampered = keystore.parent / "tampered.p7s"
    tampered.write_text(signed[1].read_text().replace("rt/rosout", "rt/vgps/selectx", 1))
    assert _openssl("smime", "-verify", "-in", str(tampered), "-CAfile", ca).returncode != 0


def _xml_grants(keystore: Path, node: str) -> tuple[set[str], set[str], ET.Element]:
    root = ET.parse(keystore / "enclaves" / enclave(node).lstrip("/") / "permissions.xml")
    [grant] = root.getroot().iter("grant")
    [rule] = grant.findall("allow_rule")
    publish = {t.text for t in rule.findall("publish/topics/topic")}
    subscribe = {t.text for t in rule.findall("subscribe/topics/topic")}
    return publish, subscribe, grant


def test_each_enclave_is_granted_exactly_its_table_entry(keystore):
    table = grants(describe({}))
    assert sorted(table) == sorted(ALL_NODES)
    for node in ALL_NODES:
        publish, subscribe, grant = _xml_grants(keystore, node)
        assert (publish, subscribe) == (set(table[node].publish), set(table[node].subscribe))
        assert grant.get("name") == enclave(node)
        assert grant.findtext("subject_name") == f"CN={enclave(node)}"
        assert grant.findtext("default") == "DENY" and not grant.findall("deny_rule")
        assert grant.findtext("allow_rule/domains/id_range/min") == "3"
        assert grant.findtext("allow_rule/domains/id_range/max") == "40"
        base = {"ros_discovery_info", "rt/rosout", "rt/parameter_events", f"rr/{node}/*"}
        assert base <= publish and {"ros_discovery_info", f"rq/{node}/*"} <= subscribe
    gov = ET.parse(keystore / "enclaves" / "governance.xml").getroot()
    rule = gov.find("domain_access_rules/domain_rule")
    assert rule.findtext("allow_unauthenticated_participants") == "false"
    assert rule.findtext("enable_join_access_control") == "true"
    assert rule.findtext("topic_access_rules/topic_rule/enable_write_access_control") == "true"
    assert rule.findtext("domains/id_range/min") == "3"


def test_only_the_owner_may_publish_each_command_topic():
    table = grants(describe({}))
    owners = {"rt/vgps/selected": {"selector_node"}, "rt/vgps/scored": {"critic_node"},
              "rt/vgps/candidates": {"policy_node"}, "rt/vgps/episode": {"arm_driver"},
              "rt/vgps/instruction": {"arm_driver"}, "rt/camera/image_raw": {"arm_driver"},
              "rt/vgps/overlay": {"overlay_node"}}
    for topic, nodes in owners.items():
        assert publishers_of(table, topic) == nodes, topic
    assert publishers_of(table, "rr/vgps/estopReply") == {"selector_node"}
    for reader in ("recorder", MONITOR):  # read-only: nothing but the base grants
        extra = {t for t in table[reader].publish if t.startswith("rt/")}
        assert extra == {"rt/rosout", "rt/parameter_events"}, reader
    assert {t for t in table[MONITOR].publish if t.startswith("rq/")} == {
        f"rq/{n}/change_stateRequest" for n in ("critic_node", "policy_node", "arm_driver")}


def test_the_graph_arguments_shape_the_grants(tmp_path):
    real = grants(describe({"robot": "real", "policy": "random", "camera": "/cam/raw",
                            "record": str(tmp_path / "b")},
                           {"recorder": {"topics": ["vgps/selected"]}}))
    assert "rt/cam/raw" in real["arm_driver"].subscribe
    assert {t for t in real["recorder"].subscribe if t.startswith("rt/")} == {"rt/vgps/selected"}
    assert publishers_of(real, "rt/vgps/selected") == {"selector_node"}


def _qos_names() -> dict[str, str]:
    tree = ast.parse((ROOT / "src/vgps_ros/vgps_ros/qos.py").read_text())
    return {t.id: n.value.value for n in tree.body if isinstance(n, ast.Assign)
            for t in n.targets if isinstance(t, ast.Name) and isinstance(n.value, ast.Constant)
            and isinstance(n.value.value, str)}


SOURCES = {"critic_node": "src/vgps_critic/vgps_critic/critic_node.py",
           "policy_node": "src/vgps_policy_bridge/vgps_policy_bridge/policy_node.py",
           "selector_node": "src/vgps_widowx/vgps_widowx/selector_node.py",
           "arm_driver": "src/vgps_widowx/vgps_widowx/arm_driver_node.py",
           "overlay_node": "src/vgps_widowx/vgps_widowx/overlay_node.py",
           "sim_corrector": "src/vgps_widowx/vgps_widowx/sim_corrector_node.py",
           "teleop_keyboard": "src/vgps_widowx/vgps_widowx/teleop_keyboard_node.py",
           MONITOR: "vgps/graph/monitor.py"}


@pytest.mark.parametrize("node", sorted(SOURCES))
def test_the_table_agrees_with_what_the_node_sources_create(node):
    names = _qos_names()
    text = (ROOT / SOURCES[node]).read_text()
    found = {"publish": set(), "subscribe": set(), "serve": set()}
    calls = {"publish": r"(?:create_publisher|publisher|pub)\(\s*\w+,\s*qos\.(\w+)",
             "subscribe": r"(?:create_subscription|subscription|sub)\(\s*\w+,\s*qos\.(\w+)",
             "serve": r"(?:create_service|service)\(\s*\w+,\s*qos\.(\w+)"}
    for kind, pattern in calls.items():
        found[kind] = {"/" + names[m].lstrip("/") for m in re.findall(pattern, text)}
    entry = NODE_TOPICS[node]
    if entry.lifecycle:  # vgps_ros.lifecycle.ManagedNode publishes /diagnostics for them
        found["publish"].add("/diagnostics")
    found["subscribe"].discard("/camera/source")  # robot:=real only: its remapped camera
    assert set(entry.publish) == found["publish"]
    assert set(entry.subscribe) == found["subscribe"]
    assert set(entry.serve) == found["serve"]


def test_every_node_of_the_description_has_an_entry():
    for entry in (*NODES, OVERLAY, RECORDER, CORRECTOR):
        assert NODE_TOPICS[entry.name].lifecycle == entry.lifecycle, entry.name
    assert set(NODE_TOPICS[MONITOR].call) == {f"/{e.name}/change_state" for e in NODES
                                              if e.lifecycle}


def test_init_twice_into_one_directory_is_refused(keystore, capsys):
    before = sorted(p.relative_to(keystore) for p in keystore.rglob("*"))
    ca = (keystore / "public" / "ca.cert.pem").read_bytes()
    assert main(["security", "init", str(keystore)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert (keystore / "public" / "ca.cert.pem").read_bytes() == ca
    assert sorted(p.relative_to(keystore) for p in keystore.rglob("*")) == before
    assert main(["security", "init", str(keystore.parent / "x"), "--domain-range", "9-3"]) == 2


@pytest.mark.ros
def test_recorder_table_is_the_recorders_default_topics():
    from vgps.bags.recorder_node import DEFAULT_TOPICS
    from vgps.security.permissions import RECORDER_TOPICS

    assert sorted(RECORDER_TOPICS) == sorted("/" + t.lstrip("/") for t in DEFAULT_TOPICS)


@pytest.mark.ros
def test_up_with_security_refuses_on_an_rmw_without_it(keystore, tmp_path):
    out = tmp_path / "up"
    env = {**os.environ, "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST"}
    done = subprocess.run(
        [sys.executable, "-m", "vgps.cli.main", "up", f"security:={keystore}",
         "--episodes", "1", "--out", str(out)],
        capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)
    assert done.returncode != 0
    assert "doesn't have the security libraries" in done.stderr
    assert "refusing to run the graph in the clear" in done.stderr
    assert not (out / "processes.json").exists() and not (out / "logs").exists()
