"""The compiled murmur2 gives kafka-python's values, so keys land where Kafka puts them."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from kafka.partitioner.default import murmur2 as kafka_murmur2

from touchstream.streams.partitioner import murmur2, partition_for


@given(st.binary(max_size=80))
def test_murmur2_is_kafka_pythons_for_any_bytes(data: bytes) -> None:
    assert murmur2(data) == kafka_murmur2(data)


@given(st.text(max_size=40), st.integers(min_value=1, max_value=1000))
def test_partition_for_is_the_default_partitioners(key: str, partitions: int) -> None:
    expected = (kafka_murmur2(key.encode()) & 0x7FFFFFFF) % partitions
    assert partition_for(key, partitions) == expected


def test_known_values_of_kafkas_java_client() -> None:
    # org.apache.kafka.common.utils.UtilsTest#testMurmur2 (as signed ints there)
    cases = {
        b"21": -973932308,
        b"foobar": -790332482,
        b"a-little-bit-long-string": -985981536,
        b"a-little-bit-longer-string": -1486304829,
        b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
        b"abc": 479470107,
    }
    for data, signed in cases.items():
        assert murmur2(data) == signed & 0xFFFFFFFF
