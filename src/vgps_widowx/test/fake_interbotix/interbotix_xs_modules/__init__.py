"""Fake ``interbotix_xs_modules`` (tests only)."""
