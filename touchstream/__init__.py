"""touchstream: event-driven customer interaction tracking on Kafka, Faust and ClickHouse."""

from touchstream import native

__version__ = "0.1.0"

native.select_engine()  # the compiled engine when it is current and loads, else the sources
