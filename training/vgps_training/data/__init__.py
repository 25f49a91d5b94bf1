"""RLDS data for critic training: reading, standardisation, labels, bounds, the tf.data pipeline.

Modules (import the one you need; all but ``labels``' numpy functions need TensorFlow, which
``vgps_critic`` never imports):

- ``rlds``: open TFDS directories, per-host sharding, episode reading.
- ``standardize``: per-dataset transforms to one trajectory format; ``STANDARDIZERS`` registry.
- ``labels``: rewards, terminal masks and Monte-Carlo returns.
- ``bounds``: cached per-dataset action statistics and the critic's normalisation bounds.
- ``augment``: image decoding, resizing and the paper's augmentations.
- ``pipeline``: ``DataConfig`` / ``DatasetSpec`` -> ``make_dataset`` -> batches of transitions.
- ``synthetic``: a tiny ``fractal20220817_data``-schema dataset for tests.
"""
