"""What every use case's records share, engine-free: where a record came from."""

from __future__ import annotations

#: A record's key and Kafka coordinates, kept on every output row (bronze, quarantine).
KAFKA_COLUMNS = ("key", "topic", "partition", "offset", "kafka_timestamp")
