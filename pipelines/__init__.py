"""Pipelines: composite transforms from decoded events to result records,
independent of source, sink and runner. Each returns
``{"results": window_result records, "dead_letters": DeadLetter}``."""

from pipelines.base import result_id, result_record
from pipelines.fraud_alerts import FraudAlerts, to_fraud_alert
from pipelines.merchant_totals import MerchantTotals
from pipelines.turnstile_counts import TurnstileCounts
from pipelines.user_sessions import UserSessions
from transforms.config import ConfigError

__all__ = ["PIPELINES", "FraudAlerts", "MerchantTotals", "TurnstileCounts", "UserSessions", "get_pipeline",
           "result_id", "result_record", "to_fraud_alert"]

PIPELINES = {p.name: p for p in (MerchantTotals, FraudAlerts, TurnstileCounts, UserSessions)}


def get_pipeline(name: str):
    if name not in PIPELINES:
        raise ConfigError(f"--pipeline {name}: unknown pipeline (choose from {', '.join(sorted(PIPELINES))})")
    return PIPELINES[name]
