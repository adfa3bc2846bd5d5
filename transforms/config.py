"""One windowing configuration per pipeline run: defaults per pipeline, overridden by
flags (``--window 1m --allowed-lateness 5m --early-firing 10s``), validated once.

Every setting is text as a user types it; a bad one raises :class:`ConfigError`
naming the flag, e.g. ``--allowed-lateness soon: 'soon' is not a duration``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kappa.transforms.durations import format_duration_ms, parse_duration_ms
from kappa.transforms.triggers import ACCUMULATION_MODES, TriggerPolicy, parse_late_firing, parse_trigger
from kappa.transforms.windows import WindowSpec, parse_window

__all__ = ["SETTINGS", "ConfigError", "WindowingConfig", "windowing_config"]

#: Setting names; the flag of each is ``--`` + the name with dashes.
SETTINGS = ("window", "allowed_lateness", "trigger", "early_firing", "late_firing", "accumulation",
            "max_out_of_orderness")


class ConfigError(ValueError):
    """A setting that cannot be used; the message starts with its flag."""


@dataclass(frozen=True)
class WindowingConfig:
    window: WindowSpec
    allowed_lateness_ms: int = 0
    trigger: TriggerPolicy = field(default_factory=TriggerPolicy)
    accumulating: bool = True
    max_out_of_orderness_ms: int = 0  #: the sources' watermark bound
    #: A bounded replay (set by the run, not a flag): a batch, one pane per window when it
    #: closes, no clock; so a replay is a pure function of its manifest and settings.
    bounded: bool = False

    def describe(self) -> str:
        return (f"window {self.window}, allowed lateness {format_duration_ms(self.allowed_lateness_ms)}, "
                f"trigger {self.trigger}, {'accumulating' if self.accumulating else 'discarding'} panes, "
                f"watermark bound {format_duration_ms(self.max_out_of_orderness_ms)}"
                + ("; bounded replay: one final pane per window" if self.bounded else ""))


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def windowing_config(defaults: dict[str, str], overrides: dict[str, str | None] | None = None) -> WindowingConfig:
    """Merge a pipeline's defaults with the flags given (None: not given) and validate."""
    settings = {**defaults, **{k: v for k, v in (overrides or {}).items() if v is not None}}
    unknown = sorted(set(settings) - set(SETTINGS))
    if unknown:
        raise ConfigError(f"{_flag(unknown[0])}: not a windowing setting (known: "
                          f"{', '.join(_flag(s) for s in SETTINGS)})")
    if "window" not in settings:
        raise ConfigError("--window: no window given and the pipeline has no default")

    def parse(name, parser, default=None):
        if name not in settings:
            return default
        try:
            return parser(settings[name])
        except ValueError as err:
            raise ConfigError(f"{_flag(name)} {settings[name]}: {err}") from None

    window = parse("window", parse_window)
    lateness = parse("allowed_lateness", parse_duration_ms, 0)
    bound = parse("max_out_of_orderness", parse_duration_ms, 0)
    accumulation = settings.get("accumulation", "accumulating")
    if accumulation not in ACCUMULATION_MODES:
        raise ConfigError(f"--accumulation {accumulation}: choose {' or '.join(ACCUMULATION_MODES)}")
    parse("early_firing", parse_duration_ms)  # each named by its own flag when wrong
    parse("late_firing", parse_late_firing)
    trigger_text = settings.get("trigger", "watermark")
    if trigger_text != "watermark" and ("early_firing" in settings or "late_firing" in settings):
        given = _flag("early_firing" if "early_firing" in settings else "late_firing")
        raise ConfigError(f"{given}: goes with --trigger watermark, not --trigger {trigger_text}")
    try:
        trigger = parse_trigger(trigger_text, settings.get("early_firing"), settings.get("late_firing"))
    except ValueError as err:
        raise ConfigError(f"--trigger {trigger_text}: {err}") from None
    return WindowingConfig(window, lateness, trigger, accumulation == "accumulating", bound)
