"""Fake ``interbotix_common_modules`` (tests only)."""
