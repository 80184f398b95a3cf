"""Online anomaly detectors: one pass, bounded memory per key, deterministic.

Each detector takes one observation at a time (``update``) and returns an anomaly score
in [0, 1]; its whole state is a JSON-able dict (``state`` / ``from_state``), so the same
object runs per key in Spark's state store, in batch jobs and in offline replay.
"""
