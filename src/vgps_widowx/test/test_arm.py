"""Arm backends: the shared safety path on the simulator, named poses, the Interbotix driver."""

import ast
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from vgps_widowx.arms import ArmBackend, ArmUnavailableError, SimArm, make_arm
from vgps_widowx.arms.interbotix import INTERBOTIX_INSTALL_HINT
from vgps_widowx.robot import description as robot
from vgps_widowx.safety import SafetyConfig
from vgps_widowx.sim import SimEnvConfig

LIMIT = SafetyConfig().max_translation
BOX_LOW = np.array(SafetyConfig().workspace_low)
BOX_HIGH = np.array(SafetyConfig().workspace_high)
NEUTRAL_EE = np.array([0.120, -0.019, 0.247])  # facts sheet
IK_TOL = 2e-3  # m: the sim controller keeps what IK reached when it misses by less than this
TRACKING_TOL = 0.02  # m: the measured tool lags the command by up to ~2 cm while moving


@pytest.fixture(scope="module")
def arm():
    sim = SimArm(SimEnvConfig(image_size=(64, 64), n_distractors=0))
    with sim:
        yield sim


def _command(arm):
    return arm.privileged_state()["ee_command_pos"]


def test_dz_beyond_the_limit_moves_the_tool_at_most_the_limit(arm):
    arm.start_episode(seed=0)
    for dz in (-0.2, 0.2):  # down from neutral, then back up
        start, cmd0 = arm.ee_pose()[0], _command(arm)
        result = arm.apply(np.array([0, 0, dz, 0, 0, 0, 1.0]))
        assert result.ok and "translation_clamped" in result.verdict.codes
        assert result.action[2] == pytest.approx(np.sign(dz) * LIMIT)
        arm.apply(np.array([0, 0, 0, 0, 0, 0, 1.0]))  # let the servos settle
        assert abs(_command(arm)[2] - cmd0[2]) <= LIMIT + 1e-6
        moved = arm.ee_pose()[0] - start
        assert abs(moved[2]) <= LIMIT + 2e-3 and abs(moved[2]) > 0.04
        assert np.all(np.abs(moved[:2]) < 2e-3)


def test_nan_action_is_rejected_and_nothing_moves(arm):
    arm.start_episode(seed=1)
    arm.apply(np.array([0.02, 0, -0.02, 0, 0, 0, 1.0]))
    joints, time0 = arm.joints(), arm.env._data.time  # test-only peek at the physics clock
    result = arm.apply(np.array([0, 0, np.nan, 0, 0, 0, 1.0]))
    assert not result.ok and result.action is None
    assert result.verdict.codes == ("non_finite",)
    np.testing.assert_array_equal(arm.joints(), joints)
    assert arm.env._data.time == time0
    assert arm.faults() == []  # bad input is a diagnostic, not a backend fault


def test_reset_to_neutral_matches_the_facts(arm):
    arm.start_episode(seed=2)
    for _ in range(3):
        arm.apply(np.array([0.05, 0.04, -0.05, 0, 0, 0.2, 0.0]))
    assert np.linalg.norm(arm.ee_pose()[0] - NEUTRAL_EE) > 0.05
    arm.reset("neutral")
    assert np.linalg.norm(arm.ee_pose()[0] - NEUTRAL_EE) < 0.01
    np.testing.assert_allclose(arm.joints(), robot.NEUTRAL_POSE, atol=1e-5)
    assert arm.joints().dtype == np.float32 and arm.gripper() == pytest.approx(1.0)
    image = arm.camera_image()
    assert image.dtype == np.uint8 and image.shape == (64, 64, 3)
    with pytest.raises(ValueError, match="pose="):
        arm.reset("dance")


def test_sim_arm_exposes_the_environment(arm):
    obs = arm.start_episode(task="stack_blocks", seed=3)
    assert obs["state"].shape == (7,) and arm.privileged_state()["task"] == "stack_blocks"
    result = arm.apply(np.array([0, 0, 0, 0, 0, 0, 1.0]))
    assert result.info["step"] == 1 == arm.info["step"] and "success" in arm.info


def test_apply_needs_a_connection_and_never_raises():
    sim = SimArm(SimEnvConfig(image_size=(32, 32), n_distractors=0))
    result = sim.apply(np.zeros(7))
    assert not result.ok and result.reasons[0].startswith("not_connected:")
    with pytest.raises(RuntimeError, match="connect"):
        sim.reset()
    sim.env.close()


@pytest.mark.parametrize("method", ["apply", "_apply"])
def test_backends_cannot_override_apply(method):
    with pytest.raises(TypeError, match="safety filter"):
        type("Sneaky", (SimArm,), {method: lambda self, action: self._execute(action)})


class _Broken(ArmBackend):
    """Backend whose driver fails on every command."""

    def _connect(self):
        pass

    def _disconnect(self):
        pass

    def _reset(self, joints):
        pass

    def _execute(self, action):
        raise OSError("bus timeout")

    def joints(self):
        return np.zeros(6, np.float32)

    def gripper(self):
        return 1.0

    def ee_pose(self):
        return np.array([0.25, 0.0, 0.1]), np.zeros(3)


def test_a_second_motion_is_refused_not_queued():
    with _Broken() as broken:
        broken._motion.acquire()  # as if another thread were mid-action
        try:
            result = broken.apply(np.array([0, 0, 0.01, 0, 0, 0, 1.0]))
        finally:
            broken._motion.release()
        assert not result.ok and result.reasons == ("busy: another motion is running",)


def test_backend_errors_become_faults_not_exceptions():
    with _Broken() as broken:
        result = broken.apply(np.array([0, 0, 0.01, 0, 0, 0, 1.0]))
        assert not result.ok and result.reasons[-1] == "backend_error: OSError: bus timeout"
        assert broken.faults() == ["backend_error: OSError: bus timeout"]
        broken.clear_faults()
        assert broken.faults() == []


def test_backends_sit_side_by_side_and_interbotix_loads_only_when_built():
    arms = Path(sys.modules[ArmBackend.__module__].__file__).parent
    tree = ast.parse((arms / "base.py").read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not {m for m in imported if m.startswith(("vgps_widowx.arms", "vgps_widowx.sim"))}
    probe = (
        "import sys\n"
        "from vgps_widowx.arms import make_arm\n"
        "assert 'vgps_widowx.arms.interbotix' not in sys.modules\n"
        "make_arm('sim').env.close()\n"
        "assert 'vgps_widowx.arms.interbotix' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", probe], check=True, timeout=120)


# -------------------------------------------------------------------------------------------
# Interbotix


def test_interbotix_without_the_package_names_the_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "interbotix_xs_modules", None)  # makes the import fail
    with pytest.raises(ArmUnavailableError) as info:
        make_arm("interbotix")
    assert INTERBOTIX_INSTALL_HINT in str(info.value)
    assert "docs.trossenrobotics.com/interbotix_xsarms_docs" in str(info.value)
    with pytest.raises(ValueError, match="kind="):
        make_arm("ur5")


# The backend itself: test_interbotix.py, against a fake of Interbotix's API and driver.


# -------------------------------------------------------------------------------------------
# Fuzz


def _malformed(rng):
    kind = int(rng.integers(7))
    act = np.concatenate([rng.uniform(-0.05, 0.05, 6), [rng.uniform()]])
    if kind == 0:
        act[rng.integers(7, size=rng.integers(1, 4))] = np.nan
    elif kind == 1:
        act[rng.integers(7)] = rng.choice([np.inf, -np.inf])
    elif kind == 2:
        n = int(rng.choice([0, 1, 3, 6, 8, 14]))
        act = rng.normal(size=(n,)) if rng.uniform() < 0.5 else rng.normal(size=(n, 7))
    elif kind == 3:
        act[rng.integers(7)] = rng.choice([-1, 1]) * 10 ** rng.uniform(0.5, 30)
    elif kind == 4:
        act = [None, "up", {"dz": 0.1}, [0.1] * 6 + ["x"], np.zeros(7, complex), object()][
            int(rng.integers(6))
        ]
    elif kind == 5:  # in shape and finite but beyond the limits: clamped, executed
        act = rng.uniform(-1.9, 1.9, 7)
    return act


def test_fuzz_malformed_actions_never_escape_or_move_unsafely(arm):
    arm.start_episode(seed=4)
    rng = np.random.default_rng(0)
    escaped, executed = [], 0
    for i in range(1000):
        cmd_before, ee_before = _command(arm), arm.ee_pose()[0]
        joints_before = arm.joints()
        try:
            result = arm.apply(_malformed(rng))
        except Exception as exc:  # noqa: BLE001 - counting what escapes is the point
            escaped.append(f"{i}: {exc!r}")
            continue
        if not result.ok:
            assert result.action is None
            np.testing.assert_array_equal(arm.joints(), joints_before)
            continue
        executed += 1
        act = result.action
        assert np.all(np.abs(act[:3]) <= LIMIT + 1e-6) and np.all(np.abs(act[3:6]) <= 0.25 + 1e-6)
        assert 0.0 <= act[6] <= 1.0
        # The commanded tool pose moved by at most the limit and stayed in the box (up to what
        # IK reached); the measured tool follows it within the servos' tracking lag.
        start = ee_before if result.info["control"]["resynced"] else cmd_before
        command = _command(arm)
        assert np.all(np.abs(command - start) <= LIMIT + IK_TOL), (i, command - start)
        assert np.all(command >= BOX_LOW - IK_TOL) and np.all(command <= BOX_HIGH + IK_TOL), i
        ee = arm.ee_pose()[0]
        assert np.all(ee >= BOX_LOW - TRACKING_TOL) and np.all(ee <= BOX_HIGH + TRACKING_TOL), i
    assert escaped == []
    assert 150 < executed < 500
    assert arm.faults() == []
