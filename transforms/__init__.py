"""The event-time layer: durations and instants, windows, triggers, lateness."""
