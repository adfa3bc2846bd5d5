"""Pipelines: composite transforms from decoded events to result records,
independent of source, sink and runner. Each returns
``{"results": window_result records, "dead_letters": DeadLetter}``."""

from kappa.pipelines.base import result_id, result_record
from kappa.pipelines.fraud_alerts import FraudAlerts, to_fraud_alert
from kappa.pipelines.merchant_totals import MerchantTotals
from kappa.pipelines.turnstile_counts import TurnstileCounts
from kappa.pipelines.user_sessions import UserSessions
from kappa.transforms.config import ConfigError

__all__ = ["PIPELINES", "FraudAlerts", "MerchantTotals", "TurnstileCounts", "UserSessions", "get_pipeline",
           "result_id", "result_record", "to_fraud_alert"]

PIPELINES = {p.name: p for p in (MerchantTotals, FraudAlerts, TurnstileCounts, UserSessions)}


def get_pipeline(name: str):
    """A built-in pipeline by name, or your own: ``module:Class`` or ``file.py:Class`` (pipelines/plugins.py)."""
    if ":" in name:
        from kappa.pipelines.plugins import load_pipeline

        return load_pipeline(name)
    if name not in PIPELINES:
        raise ConfigError(f"--pipeline {name}: unknown pipeline (choose from {', '.join(sorted(PIPELINES))}, "
                          "or name your own: my_package.my_module:MyPipeline or path/to/file.py:MyPipeline)")
    return PIPELINES[name]
