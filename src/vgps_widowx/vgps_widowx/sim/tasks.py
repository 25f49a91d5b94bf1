"""The four tabletop tasks: instructions, seeded layouts and physical success checks.

Each task moves one prop (``object``) onto or into another (``target``). At reset the object and
target are placed at seeded random poses inside the reachable region (x 0.20-0.38 m,
y -0.10..0.12 m in the base frame), a few other props are scattered around them as distractors,
and the rest are parked out of view under the table.

Success is judged on the physics, never on the commands sent: the object must be touching the
target and not the table, its centre must lie over the target's support region (inside the basket
for ``eggplant_in_basket``), it must be nearly at rest, and no robot geom may touch it (released).
"""

from __future__ import annotations

import dataclasses

import mujoco
import numpy as np

from vgps_widowx.robot import description as robot
from vgps_widowx.sim import scene

REACH_LOW = (0.20, -0.10)  # (x, y) corner of the region where task props are placed (m)
REACH_HIGH = (0.38, 0.12)
TABLE_LOW = (0.10, -0.26)  # region where distractors may be scattered (m)
TABLE_HIGH = (0.46, 0.30)
BASE_CLEARANCE = 0.16  # distractors keep this far from the arm's base axis (m)
REST_SPEED = 0.05  # an object moving faster than this (m/s) is not resting


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """One task.

    Attributes:
        name: registry key.
        instruction: canonical language instruction.
        paraphrases: alternative phrasings of the same instruction.
        object: prop to move (key of :data:`scene.PROPS`).
        target: prop to put it on or in.
        max_steps: episode step limit (5 Hz steps).
        object_yaw: half range (rad) of the object's random yaw.
        target_yaw: half range (rad) of the target's random yaw.
        grasp_symmetry: the object looks the same after a yaw of this many radians (pi for
            elongated props, pi/2 for cubes); planners pick the nearest grasp yaw.
        inside: success needs the object inside the target's walls (basket) rather than on top.
    """

    name: str
    instruction: str
    paraphrases: tuple[str, ...]
    object: str
    target: str
    max_steps: int = 60
    object_yaw: float = np.pi / 2
    target_yaw: float = 0.4
    grasp_symmetry: float = np.pi
    inside: bool = False

    def __post_init__(self) -> None:
        for field in ("object", "target"):
            if getattr(self, field) not in scene.PROPS:
                raise ValueError(
                    f"TaskSpec.{field}={getattr(self, field)!r}: unknown prop; "
                    f"choose from {sorted(scene.PROPS)}"
                )
        if self.object == self.target:
            raise ValueError(f"TaskSpec.target={self.target!r}: must differ from object")
        if self.max_steps < 1:
            raise ValueError(f"TaskSpec.max_steps={self.max_steps!r}: must be >= 1")
        if len(self.paraphrases) < 3:
            raise ValueError(f"TaskSpec.paraphrases: need at least 3, got {len(self.paraphrases)}")

    @property
    def instructions(self) -> tuple[str, ...]:
        """Canonical instruction followed by its paraphrases."""
        return (self.instruction, *self.paraphrases)


TASKS: dict[str, TaskSpec] = {
    t.name: t
    for t in (
        TaskSpec(
            "spoon_on_towel",
            "put the spoon on the towel",
            (
                "place the spoon on top of the towel",
                "move the spoon onto the cloth",
                "pick up the spoon and put it on the towel",
            ),
            object="spoon",
            target="towel",
            target_yaw=0.5,
        ),
        TaskSpec(
            "carrot_on_plate",
            "put carrot on plate",
            (
                "place the carrot on the plate",
                "move the carrot onto the plate",
                "pick up the carrot and put it on the plate",
            ),
            object="carrot",
            target="plate",
            target_yaw=np.pi,
        ),
        TaskSpec(
            "stack_blocks",
            "stack the green block on the yellow block",
            (
                "put the green block on top of the yellow block",
                "place the green cube on the yellow cube",
                "pick up the green block and stack it on the yellow one",
            ),
            object="green_block",
            target="yellow_block",
            object_yaw=np.pi / 4,
            target_yaw=np.pi / 4,
            grasp_symmetry=np.pi / 2,
        ),
        TaskSpec(
            "eggplant_in_basket",
            "put eggplant into yellow basket",
            (
                "place the eggplant in the yellow basket",
                "put the eggplant inside the basket",
                "pick up the eggplant and drop it into the yellow basket",
            ),
            object="eggplant",
            target="basket",
            target_yaw=0.4,
            inside=True,
        ),
    )
}


def get_task(name: str) -> TaskSpec:
    """Looks a task up by name, with an error that lists the known ones."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; choose from {sorted(TASKS)}")
    return TASKS[name]


def _sample_xy(rng: np.random.Generator, low, high, placed, footprint, attempts=400):
    for _ in range(attempts):
        xy = rng.uniform(low, high)
        if all(np.linalg.norm(xy - p) >= footprint + f + 0.01 for p, f in placed):
            return xy
    return None


def sample_layout(
    task: TaskSpec, rng: np.random.Generator, n_distractors: int = 2
) -> dict[str, tuple[np.ndarray, float]]:
    """Seeded poses for every prop.

    Args:
        task: the task whose object and target go into the reachable region.
        rng: random generator (the only source of randomness).
        n_distractors: how many other props to scatter on the table (at most 6).

    Returns:
        ``{prop: (xy (2,), yaw)}`` for the props on the table; props not listed are parked
        out of view.
    """
    if not 0 <= n_distractors <= len(scene.PROPS) - 2:
        raise ValueError(f"n_distractors={n_distractors!r}: need 0..{len(scene.PROPS) - 2}")
    props = scene.PROPS
    for _ in range(100):
        target_xy = rng.uniform(REACH_LOW, REACH_HIGH)
        placed = [(target_xy, props[task.target].footprint)]
        obj_xy = _sample_xy(rng, REACH_LOW, REACH_HIGH, placed, props[task.object].footprint)
        if obj_xy is not None:
            break
    else:
        raise RuntimeError(f"could not fit {task.object} beside {task.target} in the region")
    layout = {
        task.target: (target_xy, float(rng.uniform(-task.target_yaw, task.target_yaw))),
        task.object: (obj_xy, float(rng.uniform(-task.object_yaw, task.object_yaw))),
    }
    placed.append((obj_xy, props[task.object].footprint))
    others = [p for p in props if p not in layout]
    for name in rng.permutation(others)[:n_distractors]:
        for _ in range(50):
            xy = _sample_xy(rng, TABLE_LOW, TABLE_HIGH, placed, props[name].footprint)
            if xy is not None and np.linalg.norm(xy) - props[name].footprint > BASE_CLEARANCE:
                break
        else:
            continue
        layout[str(name)] = (xy, float(rng.uniform(-np.pi, np.pi)))
        placed.append((xy, props[name].footprint))
    return layout


def yaw_quat(yaw: float) -> np.ndarray:
    """(4,) unit quaternion (w, x, y, z) of a rotation by ``yaw`` about +z."""
    return np.array([np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)])


def quat_yaw(quat: np.ndarray) -> float:
    """Heading (rad) of the x axis of a (4,) (w, x, y, z) quaternion, projected on the table."""
    w, x, y, z = (float(v) for v in quat)
    return float(np.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z)))


class SceneIndex:
    """Name-to-index lookups into a compiled scene, computed once per model.

    Args:
        model: the compiled scene (see :func:`scene.build_scene_xml`).
    """

    def __init__(self, model: mujoco.MjModel):
        self.body = {p: model.body(p).id for p in scene.PROPS}
        joints = {p: model.joint(f"{p}_joint").id for p in scene.PROPS}
        self.qpos = {p: int(model.jnt_qposadr[j]) for p, j in joints.items()}
        self.qvel = {p: int(model.jnt_dofadr[j]) for p, j in joints.items()}
        self.geoms = {
            p: frozenset(np.flatnonzero(model.geom_bodyid == b).tolist())
            for p, b in self.body.items()
        }
        self.table = model.geom(scene.TABLE_GEOM).id
        base = model.body(robot.BASE_BODY).id
        robot_bodies = [b for b in range(model.nbody) if _has_ancestor(model, b, base)]
        self.robot_geoms = frozenset(np.flatnonzero(np.isin(model.geom_bodyid, robot_bodies)))
        self.pads = frozenset(model.geom(name).id for name in robot.PAD_GEOMS)

    def place(self, data: mujoco.MjData, layout: dict[str, tuple[np.ndarray, float]]) -> None:
        """Writes prop poses (resting on the table, or parked under it) into ``data.qpos``."""
        for i, (name, spec) in enumerate(scene.PROPS.items()):
            adr = self.qpos[name]
            if name in layout:
                xy, yaw = layout[name]
                data.qpos[adr : adr + 3] = (xy[0], xy[1], spec.rest_z + 0.001)
            else:  # parked on the floor under the table, out of the camera's view
                yaw = 0.0
                park = (-0.1 + 0.18 * (i % 4), -0.25 + 0.25 * (i // 4), -0.748 + spec.rest_z)
                data.qpos[adr : adr + 3] = park
            data.qpos[adr + 3 : adr + 7] = yaw_quat(yaw)
            data.qvel[self.qvel[name] : self.qvel[name] + 6] = 0.0

    def pose(self, data: mujoco.MjData, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(3,) position and (4,) (w, x, y, z) quaternion of a prop in the base frame."""
        adr = self.qpos[name]
        return data.qpos[adr : adr + 3].copy(), data.qpos[adr + 3 : adr + 7].copy()

    def touching(self, data: mujoco.MjData, a: frozenset, b: frozenset) -> bool:
        """Whether any geom in ``a`` is in contact with any geom in ``b``."""
        n = data.ncon
        g1, g2 = data.contact.geom1[:n], data.contact.geom2[:n]
        for x, y in zip(g1.tolist(), g2.tolist(), strict=True):
            if (x in a and y in b) or (x in b and y in a):
                return True
        return False

    def grasped(self, data: mujoco.MjData, name: str) -> bool:
        """Whether both finger pads touch prop ``name``."""
        geoms = self.geoms[name]
        return all(self.touching(data, frozenset((pad,)), geoms) for pad in self.pads)


def _has_ancestor(model: mujoco.MjModel, body: int, ancestor: int) -> bool:
    while body != 0:
        if body == ancestor:
            return True
        body = int(model.body_parentid[body])
    return ancestor == 0


def success_report(task: TaskSpec, index: SceneIndex, data: mujoco.MjData) -> dict[str, bool]:
    """Each physical condition of success, by name; success is all of them.

    Args:
        task: the task being judged.
        index: lookups for the scene ``data`` belongs to.
        data: simulation state after ``mj_forward`` (contacts up to date).

    Returns:
        ``{"on_target", "over_target", "off_table", "released", "resting"}`` (plus ``"below_rim"``
        for tasks with ``inside=True``), each a bool.
    """
    obj, tgt = task.object, task.target
    obj_pos, _ = index.pose(data, obj)
    tgt_pos, tgt_quat = index.pose(data, tgt)
    local = np.empty(3)
    neg = np.empty(4)
    mujoco.mju_negQuat(neg, tgt_quat)
    mujoco.mju_rotVecQuat(local, obj_pos - tgt_pos, neg)
    spec = scene.PROPS[tgt]
    hx, hy = spec.inner_half
    if spec.round:
        over = float(np.hypot(local[0], local[1])) <= hx
    else:
        over = abs(local[0]) <= hx and abs(local[1]) <= hy
    vel = data.qvel[index.qvel[obj] : index.qvel[obj] + 3]
    report = {
        "on_target": index.touching(data, index.geoms[obj], index.geoms[tgt]),
        "over_target": bool(over and local[2] > 0.0),
        "off_table": not index.touching(data, index.geoms[obj], frozenset((index.table,))),
        "released": not index.touching(data, index.geoms[obj], index.robot_geoms),
        "resting": bool(np.linalg.norm(vel) < REST_SPEED),
    }
    if task.inside:
        report["below_rim"] = bool(local[2] < scene.BASKET_WALL_TOP)
    return report


def is_success(task: TaskSpec, index: SceneIndex, data: mujoco.MjData) -> bool:
    """True when every condition of :func:`success_report` holds."""
    return all(success_report(task, index, data).values())
