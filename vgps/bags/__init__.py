"""rosbag2 bags (MCAP storage), written and read from pure Python: no rosbag2 install needed.

One public API for the rest of vgps and for users:

* writing - :class:`BagWriter` (:mod:`vgps.bags.writer`); the recorder node that writes the
  steering topics is :mod:`vgps.bags.recorder_node` (``vgps-recorder``);
* reading - :func:`read_bag`, :func:`iter_messages`, :class:`BagReader` (:mod:`vgps.bags.reader`),
  tolerant of cut or damaged files through the pure-Python scanner :mod:`vgps.bags.mcap_scan`;
* message definitions and type hashes as rosbag2 writes them (:mod:`vgps.bags.definitions`);
* publishing a recorded bag back onto live topics (:mod:`vgps.bags.publish`).

Nothing here imports rclpy at import time: turning CDR bytes into rclpy messages
(:func:`message_class`, :meth:`BagReader.messages`) imports it on first use.

Usage::

    from vgps.bags import read_bag, iter_messages
    bag = read_bag("out/bags/run1")
    bag.counts, bag.problems
    for item in iter_messages("out/bags/run1", topics=["/vgps/selected"]):
        item.log_time_ns, item.message
"""

from vgps.bags.reader import (
    METADATA_FILE,
    BagError,
    BagMessage,
    BagReader,
    BagReadResult,
    BagTopic,
    iter_messages,
    message_class,
    read_bag,
)
from vgps.bags.writer import COMPRESSIONS, RECORDER_PARAMETERS, BagWriter, qos_to_dict

__all__ = ["COMPRESSIONS", "METADATA_FILE", "RECORDER_PARAMETERS", "BagError", "BagMessage",
           "BagReadResult", "BagReader", "BagTopic", "BagWriter", "iter_messages", "message_class",
           "qos_to_dict", "read_bag"]
