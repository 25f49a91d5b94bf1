"""Fake ``interbotix_common_modules.common_robot`` (tests only)."""
