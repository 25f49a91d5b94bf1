"""vgps_training: offline training of V-GPS critics; depends on vgps_critic for the model."""

__version__ = "0.1.0"
