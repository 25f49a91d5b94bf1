"""Fake ``interbotix_common_modules.common_robot.exceptions``."""


class InterbotixException(Exception):
    """Raised by the API's global-node bookkeeping, as Interbotix's is."""
