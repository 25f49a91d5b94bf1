"""The experience flywheel: recorded bags -> episodes -> labels -> a deployment dataset.

* :mod:`vgps.flywheel.episodes` - the episodes of a ``vgps up --record`` bag, decision by
  decision (camera frame, executed action, candidates and their Q, intervention flag);
* :mod:`vgps.flywheel.labels` - a person's outcome labels, in a sidecar file beside each bag;
* :mod:`vgps.flywheel.dataset` - the episode store and the RLDS/TFDS deployment dataset
  (``vgps dataset build``).

Usage::

    from vgps.flywheel.episodes import read_episodes
    from vgps.flywheel.labels import episode_outcome, load_labels
    bag = read_episodes("out/bags/run1")
    labels = load_labels("out/bags/run1")
    [episode_outcome(ep, labels) for ep in bag.episodes]
"""
