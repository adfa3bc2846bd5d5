"""argparse value types: each rejects a bad value with a message argparse prints
beside the flag's name (``argument --count: ...``)."""

from __future__ import annotations

import argparse
import time

from kappa.runners.errors import UsageError
from kappa.transforms.durations import parse_duration_ms, parse_instant_ms

__all__ = ["add_kafka_flags", "add_registry_flags", "apply_kafka_flags", "apply_registry_flags", "duration_ms", "key_values", "fraction", "instant_ms", "non_negative_int", "positive_float", "positive_int", "port"]


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {value}")
    return value


def port(text: str) -> int:
    value = positive_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"must be a TCP port (1-65535), got {value}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a fraction between 0 and 1, got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def duration_ms(text: str) -> int:
    try:
        return parse_duration_ms(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def instant_ms(text: str) -> int:
    try:
        return parse_instant_ms(text, now_ms=int(time.time() * 1000))
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def add_kafka_flags(parser: argparse.ArgumentParser) -> None:
    """``--kafka-config`` and ``--kafka-option``: librdkafka settings for every Kafka client
    of the command (TLS, SASL); see ``replay.kafka_client``."""
    group = parser.add_argument_group("Kafka client (secured clusters)")
    group.add_argument("--kafka-config", metavar="FILE",
                       help="librdkafka properties (key=value lines), e.g. security.protocol=SASL_SSL, "
                            "sasl.mechanism=SCRAM-SHA-512, sasl.username, sasl.password, ssl.ca.location; "
                            "default $KAPPA_KAFKA_CONFIG. Never written to manifests or run directories")
    group.add_argument("--kafka-option", action="append", default=None, metavar="KEY=VALUE",
                       help="one librdkafka setting, repeatable, over --kafka-config's "
                            "(e.g. --kafka-option ssl.endpoint.identification.algorithm=none)")


def key_values(options: list[str] | None, flag: str, example: str) -> dict[str, str]:
    """Repeated ``flag key=value`` values, in order (a later key wins)."""
    settings = {}
    for option in options or []:
        key, sep, value = option.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"{flag} {option.split('=')[0]!r}: write key=value, e.g. {example}")
        settings[key.strip()] = value.strip()
    return settings


def apply_kafka_flags(args: argparse.Namespace) -> None:
    """Make the command's Kafka clients use the settings its flags give."""
    from kappa.replay.kafka_client import configure, read_properties, refuse_reserved

    if getattr(args, "kafka_config", None) is None and not getattr(args, "kafka_option", None):
        return
    settings = read_properties(args.kafka_config) if args.kafka_config else {}
    options = key_values(args.kafka_option, "--kafka-option", "security.protocol=SASL_SSL")
    configure({**settings, **refuse_reserved(options, "--kafka-option")})


def add_registry_flags(group, default_path) -> None:
    """``--registry`` (a file, or a Confluent-API registry's URL) and ``--registry-option``."""
    group.add_argument("--registry", metavar="FILE|URL",
                       help=f"schema registry: a JSON file (default {default_path}) or the URL of a Confluent-API "
                            "registry, e.g. https://psrc-xxxx.europe-west3.gcp.confluent.cloud")
    group.add_argument("--registry-option", action="append", default=None, metavar="KEY=VALUE",
                       help="a setting of the HTTP registry client, repeatable, e.g. "
                            "basic.auth.user.info=KEY:SECRET or ssl.ca.location=ca.pem; never written down")


def apply_registry_flags(args: argparse.Namespace) -> None:
    """Credentials of an HTTP registry (``--registry-option``, or ``user:password@`` in its
    URL) stay in this process; the URL kappa writes down has none."""
    from kappa.schemas.registry import configure_http_registry

    options = key_values(getattr(args, "registry_option", None), "--registry-option", "basic.auth.user.info=KEY:SECRET")
    configure_http_registry(options, getattr(args, "registry", None))
