"""vgps_policy_server: serve a generalist policy over the ``vgps-policy/1`` protocol.

The policy runs in its own environment (its own Python, numpy and framework pins) behind a
WebSocket server; the robot side talks to it with :class:`~vgps_policy_server.client.
PolicyClient`. The package depends only on numpy, msgpack and websockets. The protocol:
docs/policy_protocol.md.

Usage::

    vgps-policy-server --policy random --port 8000          # or --policy octo, sim, ...

    from vgps_policy_server.client import PolicyClient
    client = PolicyClient("ws://127.0.0.1:8000")
    actions, timing = client.sample(observation, "put carrot on plate", k=50, seed=0,
                                    episode_id="ep-0", step=0)
"""

__version__ = "0.1.0"
