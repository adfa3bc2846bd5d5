"""Pipelines: composite transforms from decoded events to result records,
independent of source, sink and runner."""
