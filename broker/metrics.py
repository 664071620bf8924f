"""Counts and latencies of the enforcement points, for Prometheus and `jcu stats`.

Each enforcement point owns a `Metrics` object with its own registry (no
process-global collectors), optionally served over HTTP on a port.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.published = Counter(
            "jcu_published_total", "Envelopes produced, by community", ["community"], registry=r
        )
        self.delivered = Counter(
            "jcu_delivered_total",
            "Records handed to the sink, by payload type",
            ["type"],
            registry=r,
        )
        self.rejected = Counter(
            "jcu_rejected_total", "Records refused on receipt, by reason", ["reason"], registry=r
        )
        self.policy_violations = Counter(
            "jcu_policy_violations_total",
            "Records a sender encrypted for a receiver the policy does not allow, by sender",
            ["sender"],
            registry=r,
        )
        self.denied = Counter(
            "jcu_denied_total", "Policy denials at publish, by rule", ["rule"], registry=r
        )
        self.receipts_failed = Counter(
            "jcu_receipts_failed_total", "Receipts that could not be sent", registry=r
        )
        self.offsets_ahead = Counter(
            "jcu_committed_offset_ahead_total",
            "Partitions whose committed group offset was ahead of the ledger's settled position "
            "(the subscriber started from the ledger's: a skipped range refused)",
            ["topic"],
            registry=r,
        )
        self.sink_retries = Counter(
            "jcu_sink_retries_total",
            "Times a sink could not take a delivery and the batch was held for a retry",
            registry=r,
        )
        self.duplicates = Counter(
            "jcu_duplicates_total", "Redelivered records dropped by the dedup store", registry=r
        )
        self.publish_seconds = Histogram(
            "jcu_publish_seconds",
            "Publish latency (decide, seal, produce)",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.deliver_seconds = Histogram(
            "jcu_deliver_seconds",
            "Receive latency (verify, decrypt, decide, sink)",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.lag = Gauge(
            "jcu_consumer_lag",
            "Records behind the end of the topic",
            ["topic", "partition"],
            registry=r,
        )

    def serve(self, port: int, addr: str | None = None) -> None:
        """Expose /metrics on `addr:port` from a background thread (default: JCU_METRICS_ADDR,
        else loopback; a container sets 0.0.0.0 so that Prometheus can scrape it)."""
        start_http_server(port, addr=addr or metrics_addr(), registry=self.registry)

    def watch_audit_encoder(self, encoder: EncoderPath) -> None:
        """Export which path the audit leaf encoder of this process takes (see `EncoderPath`)."""
        self.registry.register(_AuditEncoderCollector(encoder))


@dataclass
class PlatformMetrics:
    """What `jcu stats --metrics-port` exports: the platform seen from Kafka (every topic,
    every consumer group, the dead letters), refreshed every few seconds."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.topic_records = Gauge(
            "jcu_topic_records",
            "Records on a topic (end minus start offsets)",
            ["topic"],
            registry=r,
        )
        self.topic_rate = Gauge(
            "jcu_topic_append_rate", "Records appended per second", ["topic"], registry=r
        )
        self.lag_records = Gauge(
            "jcu_group_lag_records",
            "Records a consumer group is behind (uncommitted partitions from their start)",
            ["group"],
            registry=r,
        )
        self.lag_seconds = Gauge(
            "jcu_group_lag_seconds",
            "Age of the oldest record a consumer group has not consumed",
            ["group"],
            registry=r,
        )
        self.consume_rate = Gauge(
            "jcu_group_consume_rate",
            "Records a group committed past per second",
            ["group"],
            registry=r,
        )
        self.dead_letters = Gauge(
            "jcu_dead_letters", "Records on jcu.dlq, by reason", ["reason"], registry=r
        )

    def serve(self, port: int, addr: str | None = None) -> None:
        start_http_server(port, addr=addr or metrics_addr(), registry=self.registry)

    def watch_audit_encoder(self, encoder: EncoderPath) -> None:
        """Export whether this installation's schemas keep the audit leaf encoder on its fast
        path (see `EncoderPath`)."""
        self.registry.register(_AuditEncoderCollector(encoder))


class EncoderPath(Protocol):
    """The audit leaf encoder's figures (`broker.audit.leaf_encoder`): it writes leaves by
    hand for the schema it was written for, and hands them to fastavro otherwise. A schema
    edit that drops it to fastavro's path costs every enforcement point throughput and
    shows nowhere else: exported, it is `jcu_audit_encoder_fast 0` and a growing
    `jcu_audit_encoder_fallbacks_total`."""

    @property
    def fast(self) -> bool: ...

    @property
    def fallbacks(self) -> int: ...


class _AuditEncoderCollector(Collector):
    """Reads the encoder's figures at each scrape (it keeps plain attributes, no metrics)."""

    def __init__(self, encoder: EncoderPath) -> None:
        self._encoder = encoder

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "jcu_audit_encoder_fast",
            "1 if audit leaves are encoded by the hand-written encoder, 0 if every leaf goes "
            "through fastavro (the schema is not the one the encoder was written for)",
            value=1.0 if self._encoder.fast else 0.0,
        )
        yield CounterMetricFamily(
            "jcu_audit_encoder_fallbacks",
            "Audit leaf contents encoded by fastavro instead of the hand-written encoder",
            value=float(self._encoder.fallbacks),
        )


def metrics_addr() -> str:
    """Where services serve /metrics: JCU_METRICS_ADDR, else loopback only."""
    return os.environ.get("JCU_METRICS_ADDR") or "127.0.0.1"
