"""A broker that says "retry" (its group coordinator moving or still loading, as on a
broker just started or restarted) is asked again within the timeout; any other error,
or one that lasts past the timeout, is one ReplayError naming the broker's reason."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError, KafkaException

from kappa.replay.errors import ReplayError
from kappa.replay.kafka_log import retrying


class _Broker:
    """Answers ``failures`` errors with ``code``, then ``answer``."""

    def __init__(self, code: int, failures: int, answer="offsets"):
        self.code, self.failures, self.answer, self.calls = code, failures, answer, 0

    def __call__(self):
        self.calls += 1
        if self.calls <= self.failures:
            raise KafkaException(KafkaError(self.code))
        return self.answer


@pytest.mark.parametrize("code", [KafkaError.NOT_COORDINATOR, KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
                                  KafkaError.COORDINATOR_NOT_AVAILABLE])
def test_a_moving_coordinator_is_asked_again_until_it_answers(code):
    broker = _Broker(code, failures=3)
    assert retrying(broker, timeout_s=10, failed="reading commits") == "offsets"
    assert broker.calls == 4


def test_any_other_error_is_one_line_at_once():
    broker = _Broker(KafkaError.GROUP_AUTHORIZATION_FAILED, failures=1)
    with pytest.raises(ReplayError, match="^reading commits: .*"):
        retrying(broker, timeout_s=10, failed="reading commits")
    assert broker.calls == 1


def test_a_coordinator_that_never_answers_fails_within_the_timeout():
    broker = _Broker(KafkaError.NOT_COORDINATOR, failures=10**6)
    with pytest.raises(ReplayError, match="^reading commits: "):
        retrying(broker, timeout_s=1.0, failed="reading commits")
    assert 2 <= broker.calls <= 5  # pauses of 0.2, 0.4, ... s
