"""vgps: the bringup and composition layer (CLI, launcher, evaluation, replay); no model code."""

__version__ = "0.1.0"
