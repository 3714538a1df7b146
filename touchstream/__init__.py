"""touchstream: event-driven customer interaction tracking on Kafka, Faust and ClickHouse."""

__version__ = "0.1.0"
