"""Fake ``interbotix_xs_modules.xs_robot`` (tests only)."""
