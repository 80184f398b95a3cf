"""The engine-free half of the speed layer.

Parsing and validation of records and the per-entity steps that the stream (from Spark's
state store), the backfill, offline replay and evaluation all call: no pyspark here, so
each step runs and is tested without a JVM.
"""
