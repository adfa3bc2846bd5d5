"""Sources that read a log from a chosen point: Kafka, Pub/Sub and archive files."""
