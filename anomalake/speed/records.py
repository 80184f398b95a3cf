"""What every use case's records share, engine-free: where a record came from."""

from __future__ import annotations

#: Where a record says it comes from: a live feed, or a replay of stored data (whose
#: alerts are recorded but never sent to people).
ORIGINS = ("live", "replay")
#: A record's key and Kafka coordinates, kept on every output row (bronze, quarantine).
KAFKA_COLUMNS = ("key", "topic", "partition", "offset", "kafka_timestamp")
