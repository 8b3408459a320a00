"""Prometheus metrics of workers and gateways, each in its own registry (several may share a
process in tests), served as ``GET /metrics`` in the text exposition format."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["GatewayMetrics", "WorkerMetrics", "metrics_response"]

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_TURN_BUCKETS = (0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)


class WorkerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.sessions = Gauge("realtalk_worker_sessions_active", "Sessions running", registry=r)
        self.slots = Gauge("realtalk_worker_slots", "Session capacity", registry=r)
        self.draining = Gauge("realtalk_worker_draining", "1 while draining", registry=r)
        self.started = Counter(
            "realtalk_worker_sessions_started",
            "Sessions started, by kind (new or resumed)",
            ["kind"],
            registry=r,
        )
        self.ended = Counter("realtalk_worker_sessions_ended", "Sessions ended", registry=r)
        self.migrated = Counter(
            "realtalk_worker_sessions_migrated",
            "Sessions handed to another worker at the drain deadline",
            registry=r,
        )
        self.turn_latency = Histogram(
            "realtalk_worker_turn_latency_seconds",
            "End of user speech to first reply audio played",
            buckets=_TURN_BUCKETS,
            registry=r,
        )
        self.offer_latency = Histogram(
            "realtalk_worker_offer_seconds",
            "Offer received to answer sent, on the worker",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.stored = Counter(
            "realtalk_worker_conversations_stored", "Conversation snapshots stored", registry=r
        )
        self.errors = Counter("realtalk_worker_errors", "Errors, by kind", ["kind"], registry=r)


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.dispatch = Histogram(
            "realtalk_gateway_dispatch_seconds",
            "Offer in to answer out, through a worker",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.offers = Counter(
            "realtalk_gateway_offers",
            "Offers, by outcome (answered, resumed, rejected, no_worker, redis_down, failed)",
            ["outcome"],
            registry=r,
        )
        self.retries = Counter(
            "realtalk_gateway_retries",
            "Offers sent again to another worker (the first was unreachable or full)",
            registry=r,
        )
        self.workers = Gauge(
            "realtalk_gateway_workers_live", "Live workers at the last health check", registry=r
        )
        self.slots_free = Gauge(
            "realtalk_gateway_slots_free", "Free slots at the last health check", registry=r
        )
        self.errors = Counter("realtalk_gateway_errors", "Errors, by kind", ["kind"], registry=r)


def metrics_response(registry: CollectorRegistry) -> web.Response:
    response = web.Response(body=generate_latest(registry))
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response
