"""Replay a recorded run: re-score every step with a critic, compare the choices, report.

Usage::

    from vgps.replay import replay
    result = replay("out/bags/run1", out="out/replay")     # ReplayResult; OUT/replay.json
    result.agreement, result.max_abs_q_diff, result.changed_steps
"""

from vgps.replay.rescore import REPLAY_JSON, replay
from vgps.replay.result import (
    ChangedStep,
    CriticInfo,
    EpisodeSummary,
    ReplayResult,
    SkippedStep,
    StepFrame,
    StepRecord,
)

__all__ = ["REPLAY_JSON", "ChangedStep", "CriticInfo", "EpisodeSummary", "ReplayResult",
           "SkippedStep", "StepFrame", "StepRecord", "replay"]
