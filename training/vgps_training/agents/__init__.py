"""Critic-training agents: Cal-QL / CQL (the paper's) and IQL, on vgps_critic's Q-network."""

from vgps_training.agents.calql import CalQLAgent, CalQLConfig
from vgps_training.agents.common import TrainState
from vgps_training.agents.iql import IQLAgent, IQLConfig

AGENTS = {"calql": (CalQLAgent, CalQLConfig), "iql": (IQLAgent, IQLConfig)}

__all__ = ["AGENTS", "CalQLAgent", "CalQLConfig", "IQLAgent", "IQLConfig", "TrainState"]
