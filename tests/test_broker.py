from __future__ import annotations

import pytest
from kafka import KafkaAdminClient

from touchstream.broker import BrokerError, EmbeddedBroker, wait_until_ready


def test_embedded_broker_starts_answers_and_stops() -> None:
    broker = EmbeddedBroker().start()
    try:
        assert broker.running()
        admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
        assert isinstance(admin.list_topics(), list)
        admin.close()
    finally:
        broker.stop()
    assert not broker.running()
    with pytest.raises(BrokerError):
        wait_until_ready(broker.bootstrap, timeout=1)
