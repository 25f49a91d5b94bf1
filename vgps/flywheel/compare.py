"""``vgps critic compare NEW OLD``: promote a retrained critic only with evidence.

Evidence comes from two places, either or both:

* **simulation** (``sim_tasks``): both critics steer the simulation policy on identical episode
  seeds (:mod:`vgps.flywheel.compare_sim`), greedy (beta 0), per task and K; each critic's
  success rate with its Wilson 95 % interval, and the paired difference ``new - old`` with a
  95 % paired bootstrap interval over episodes (:mod:`vgps.flywheel.compare_stats`);
* **held-out bags** (``bags``): both critics re-score the recorded episodes
  (:mod:`vgps.flywheel.compare_offline`): ranking AUC of successful vs failed episodes,
  agreement with interventions, and how many choices would change.

Decision (:func:`decide`), a non-inferiority rule with margin ``m`` (default 0.05):

* every (task, K) condition of the simulation on its own (not only the pooled one, which is
  reported too) needs the lower bound of its 95 % interval of ``new - old`` >= ``-m``: with
  ``m = 0`` the new critic must be shown not worse with 95 % confidence in each condition,
  which a paired interval clears only when the new critic wins at least as many paired
  episodes as it loses by a clear count; the default 0.05 asks for "not worse by more than 5
  points of success rate, with 95 % confidence"; and, unless that bound is above 0, at least
  ``3 / m`` pairs (:func:`min_pairs`, the rule of three): pairs that never disagree give the
  bootstrap interval [0, 0] however few they are, yet bound the disagreement only by 3 / n;
* offline, when the bags give the measure: the AUC difference and the intervention-agreement
  difference must not be below ``-m`` - as point estimates when the simulation is also run,
  and as the lower bounds of their 95 % intervals when the bags are the only evidence;
* without any evidence (no simulation, and bags that allow no check) it refuses.

``promote=True`` then moves the files (:func:`vgps.flywheel.compare_promote.promote`); otherwise
only the decision is reported. The report (``report.md`` + ``report.json``) goes to ``report``,
by default ``<NEW>.compare`` beside NEW.

Usage::

    config = CompareConfig(new=Path("out/critic_r5"), old=Path("models/sim_critic"),
                           sim_tasks=("carrot_on_plate",), episodes=50, ks=(10, 50))
    result = compare(config)
    result["decision"]["promote"]
"""

from __future__ import annotations

import dataclasses
import datetime
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vgps.flywheel.compare_stats import LEVEL, N_BOOT

__all__ = ["DEFAULT_SEED", "Check", "CompareConfig", "Decision", "compare", "decide"]

DEFAULT_SEED = 31_000  # no collection or screen of the shipped critic's rounds used it
_EPS = 1e-12  # float round-off in the bounds


@dataclasses.dataclass(frozen=True)
class CompareConfig:
    """What to compare and how."""

    new: Path  # the candidate critic's checkpoint directory
    old: Path  # the deployed critic's checkpoint directory
    bags: tuple[Path, ...] = ()  # held-out bags (offline measures); empty: none
    sim_tasks: tuple[str, ...] = ()  # simulated tasks; empty: no simulation
    episodes: int = 50  # simulated episodes (pairs) per task and K
    ks: tuple[int, ...] = (10,)  # candidates per step, one simulation condition each
    seed: int = DEFAULT_SEED  # master seed of the simulated episodes
    image_size: int = 256  # rendered camera size in the simulation
    policy: str = "sim"  # in-process policy or ws://host:port
    margin: float = 0.05  # non-inferiority margin on success rate / AUC / agreement
    promote: bool = False  # move the files when the decision is to promote
    report: Path | None = None  # report directory; None: <NEW>.compare beside NEW
    n_boot: int = N_BOOT  # bootstrap resamples

    def __post_init__(self) -> None:
        name = type(self).__name__
        for field in ("new", "old"):
            object.__setattr__(self, field, Path(getattr(self, field)))
        object.__setattr__(self, "bags", tuple(Path(b) for b in self.bags))
        object.__setattr__(self, "sim_tasks", tuple(self.sim_tasks))
        object.__setattr__(self, "ks", tuple(int(k) for k in self.ks))
        if self.report is not None:
            object.__setattr__(self, "report", Path(self.report))
        for field in ("new", "old"):
            if not getattr(self, field).is_dir():
                raise FileNotFoundError(f"{name}.{field}={str(getattr(self, field))!r}: no "
                                        "such critic checkpoint directory")
        if self.new.resolve() == self.old.resolve():
            raise ValueError(f"{name}: NEW and OLD are the same directory {self.old}")
        for bag in self.bags:
            if not bag.exists():
                raise FileNotFoundError(f"{name}.bags: {str(bag)!r} does not exist")
        if self.episodes < 1:
            raise ValueError(f"{name}.episodes={self.episodes!r}: must be >= 1")
        if not self.ks or any(k < 1 for k in self.ks):
            raise ValueError(f"{name}.ks={self.ks!r}: need one or more K >= 1")
        if not math.isfinite(self.margin) or not 0.0 <= self.margin < 1.0:
            raise ValueError(f"{name}.margin={self.margin!r}: must be in [0, 1)")

    @property
    def report_dir(self) -> Path:
        return self.report or self.new.with_name(f"{self.new.name}.compare")


@dataclasses.dataclass(frozen=True)
class Check:
    """One comparison that the decision requires."""

    name: str  # e.g. "sim carrot_on_plate K=10", "offline AUC"
    difference: float  # new - old (point estimate)
    low: float | None  # lower bound of its 95 % interval (None: not computed)
    tested: str  # "low" or "difference": what must be >= -margin
    passed: bool


@dataclasses.dataclass(frozen=True)
class Decision:
    """Promote or not, and why."""

    promote: bool
    reason: str
    checks: tuple[Check, ...]
    notes: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"promote": self.promote, "reason": self.reason, "notes": list(self.notes),
                "checks": [dataclasses.asdict(c) for c in self.checks]}


def _check(name: str, difference: float, low: float | None, tested: str, margin: float
           ) -> Check:
    value = low if tested == "low" else difference
    passed = value is not None and value >= -margin - _EPS
    return Check(name, difference, low, tested, bool(passed))


def min_pairs(margin: float) -> float:
    """The fewest paired episodes per condition that can show new - old >= -margin: 3 / margin
    (the rule of three; every episode when the margin is 0)."""
    return math.inf if margin <= 0 else math.ceil(3.0 / margin - 1e-9)


def decide(sim: Sequence[dict[str, Any]] | None, offline: dict[str, Any] | None,
           margin: float = 0.05) -> Decision:
    """The promotion rule (see the module docstring).

    Args:
        sim: per-condition summaries (:meth:`SimCondition.summary`), or None without simulation.
        offline: :func:`~vgps.flywheel.compare_offline.offline_comparison`'s result, or None.
        margin: non-inferiority margin (>= 0).

    Returns:
        The :class:`Decision`.
    """
    checks: list[Check] = []
    notes: list[str] = []
    few: dict[str, str] = {}  # checks refused for too few pairs -> why
    for cond in sim or ():
        lo = cond["difference_ci95"][0]
        check = _check(f"sim {cond['task']} K={cond['k']}", cond["difference"], lo, "low",
                       margin)
        # Rule of three: n pairs that never disagree bound the rate of disagreement only by
        # 3 / n (95 %), which the bootstrap's [0, 0] hides; fewer pairs cannot show -margin.
        # A lower bound above 0 (shown better) rests on the pairs that disagree instead.
        if check.passed and lo <= 0.0 and cond["episodes"] < min_pairs(margin):
            check = dataclasses.replace(check, passed=False)
            few[check.name] = (f"{check.name}: {cond['episodes']} pairs are too few to show a "
                               f"difference above {-margin:+.3f} (need >= "
                               f"{min_pairs(margin):g})")
        checks.append(check)
    if offline is not None:
        tested = "difference" if sim else "low"
        for key, label in (("auc", "offline AUC"), ("interventions",
                                                     "offline intervention agreement")):
            block = offline[key]
            if not block.get("available"):
                notes.append(f"{label}: not available ({block.get('why')})")
                continue
            checks.append(_check(label, block["difference"], block["difference_ci95"][0],
                                 tested, margin))
    if not checks:
        why = "no evidence: run a simulation (--sim-eval) and/or give held-out bags with " \
              "labelled outcomes or interventions (--bags)"
        return Decision(False, why, (), tuple(notes))
    failed = [c for c in checks if not c.passed]
    if failed:
        parts = [few.get(c.name) or
                 f"{c.name}: {'lower bound' if c.tested == 'low' else 'difference'} "
                 f"{(c.low if c.tested == 'low' else c.difference):+.3f} < {-margin:+.3f}"
                 for c in failed]
        return Decision(False, "refused, the new critic may be worse (or too few episodes "
                               "to tell): " + "; ".join(parts),
                        tuple(checks), tuple(notes))
    return Decision(True, f"not worse in all {len(checks)} checks (margin {margin:g}, "
                          f"{LEVEL:.0%} intervals)", tuple(checks), tuple(notes))


def _critic_info(path: Path) -> tuple[Any, dict[str, Any]]:
    import vgps_critic

    scorer = vgps_critic.load(path)
    return scorer, {"path": str(path), "id": scorer.critic_id}


def compare(config: CompareConfig, command: str | None = None,
            progress: bool = True) -> dict[str, Any]:
    """Runs the comparison, decides, promotes when asked and allowed, writes the report.

    Args:
        config: what to compare.
        command: the command line, recorded in the report.
        progress: show tqdm bars on stderr.

    Returns:
        Every number (what ``report.json`` holds): ``new``, ``old``, ``settings``, ``sim``
        (``conditions``, ``pooled``) or None, ``offline`` or None, ``decision``, ``promotion``
        (None unless files moved), ``report``.

    Raises:
        ValueError, FileNotFoundError: bad settings or unreadable critics/bags.
    """
    from vgps.flywheel.compare_report import write_report

    new_scorer, new_info = _critic_info(config.new)
    old_scorer, old_info = _critic_info(config.old)
    result: dict[str, Any] = {
        "format": "vgps-critic-compare/1",
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": command, "new": new_info, "old": old_info,
        "settings": {"margin": config.margin, "level": LEVEL, "n_boot": config.n_boot,
                     "sim_tasks": list(config.sim_tasks), "episodes": config.episodes,
                     "k": list(config.ks), "seed": config.seed, "beta": 0.0,
                     "image_size": config.image_size, "policy": config.policy,
                     "bags": [str(b) for b in config.bags], "promote": config.promote},
        "sim": None, "offline": None, "promotion": None}
    if config.bags:
        from vgps.flywheel.compare_offline import offline_comparison

        result["offline"] = offline_comparison(new_scorer, old_scorer, config.bags,
                                               LEVEL, config.n_boot, progress)
    del new_scorer, old_scorer
    if config.sim_tasks:
        from vgps.flywheel.compare_sim import pooled_summary, run_sim_comparison

        conditions = run_sim_comparison(config.new, config.old, config.sim_tasks,
                                        config.episodes, config.ks, config.seed,
                                        config.image_size, config.policy, progress)
        result["sim"] = {
            "interval": "paired percentile bootstrap over episodes",
            "conditions": [c.summary(LEVEL, config.n_boot) for c in conditions],
            "pooled": pooled_summary(conditions, LEVEL, config.n_boot),
            "seeds": {f"{c.task} K={c.k}": list(c.seeds) for c in conditions}}
    decision = decide(result["sim"]["conditions"] if result["sim"] else None,
                      result["offline"], config.margin)
    result["decision"] = decision.to_json()
    if decision.promote and config.promote:
        from vgps.flywheel.compare_promote import promote

        moved = promote(config.new, config.old)
        result["promotion"] = {"deployed": str(moved.deployed), "previous": str(moved.previous),
                               "new_id": moved.new_id, "old_id": moved.old_id}
    result["report"] = str(config.report_dir)
    write_report(result, config.report_dir)
    return result

