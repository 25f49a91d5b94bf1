"""vgps_critic: the V-GPS Q-function (FiLM ResNet), encode-once scoring and selection.

Usage:
    import vgps_critic
    critic = vgps_critic.load("models/sim_critic")   # a Scorer: Critic or CriticEnsemble
    q = critic.score(image, "put carrot on plate", actions)   # (K,) for (K, 7) actions
    choice = vgps_critic.select(q, beta=0.0)
"""

from vgps_critic.checkpoint import CheckpointError, CriticCard, load_checkpoint, save_checkpoint
from vgps_critic.config import PRESETS, ActionSpace, CriticConfig
from vgps_critic.critic import Critic
from vgps_critic.ensemble import CriticEnsemble, save_ensemble
from vgps_critic.language import LanguageEncoder, LanguageEncoderError, get_encoder
from vgps_critic.loading import load
from vgps_critic.scorer import Scorer
from vgps_critic.selection import Selection, select, softmax_probabilities

__version__ = "0.1.0"

__all__ = [
    "PRESETS",
    "ActionSpace",
    "CheckpointError",
    "Critic",
    "CriticCard",
    "CriticConfig",
    "CriticEnsemble",
    "LanguageEncoder",
    "LanguageEncoderError",
    "Scorer",
    "Selection",
    "get_encoder",
    "load",
    "load_checkpoint",
    "save_checkpoint",
    "save_ensemble",
    "select",
    "softmax_probabilities",
]
