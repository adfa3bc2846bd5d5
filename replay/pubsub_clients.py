"""Pub/Sub clients, without Beam: the CLI's commands that only talk to Pub/Sub (the local
emulator, verify, the sinks' publishers) start without importing Beam."""

from __future__ import annotations

__all__ = ["emulator_clients", "pubsub_clients"]


def pubsub_clients(emulator_host: str | None):
    """(publisher, subscriber): plain gRPC to an emulator, or the default Google clients."""
    if emulator_host:
        return emulator_clients(emulator_host)
    from google.cloud import pubsub_v1

    return pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()


def emulator_clients(host: str):
    """(PublisherClient, SubscriberClient) talking plain gRPC to the emulator at ``host``."""
    import grpc
    from google.cloud import pubsub_v1
    from google.pubsub_v1.services.publisher.transports import PublisherGrpcTransport
    from google.pubsub_v1.services.subscriber.transports import SubscriberGrpcTransport

    publisher = pubsub_v1.PublisherClient(transport=PublisherGrpcTransport(channel=grpc.insecure_channel(host)))
    subscriber = pubsub_v1.SubscriberClient(transport=SubscriberGrpcTransport(channel=grpc.insecure_channel(host)))
    return publisher, subscriber
