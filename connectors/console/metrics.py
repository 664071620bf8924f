"""What the console exports to Prometheus: the audit log's verification and the lag it sees.

Only the console verifies the whole log continuously, so it is where an alert
on a failed verification comes from (`jcu_audit_verify_failed`).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Gauge, start_http_server

from broker.audit import VerificationReport
from connectors.console.health import Sample


class ConsoleMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.verify_failed = Gauge(
            "jcu_audit_verify_failed",
            "1 if the enforcement point's audit log does not verify, else 0",
            ["enforcement_point"],
            registry=r,
        )
        self.unsealed = Gauge(
            "jcu_audit_unsealed_records",
            "Audit leaves not yet covered by a signed checkpoint",
            ["enforcement_point"],
            registry=r,
        )
        self.lag_records = Gauge(
            "jcu_group_lag_records", "Records a consumer group is behind", ["group"], registry=r
        )
        self.lag_seconds = Gauge(
            "jcu_group_lag_seconds",
            "Age of the oldest record a consumer group has not consumed",
            ["group"],
            registry=r,
        )
        self.dead_letters = Gauge(
            "jcu_dead_letters", "Records on jcu.dlq, by reason", ["reason"], registry=r
        )

    def audited(self, report: VerificationReport) -> None:
        for r in report.reports:
            self.verify_failed.labels(r.enforcement_point).set(0 if r.ok else 1)
            self.unsealed.labels(r.enforcement_point).set(r.unsealed)

    def sampled(self, sample: Sample) -> None:
        for g in sample.groups.values():
            self.lag_records.labels(g.group).set(g.lag_records)
            self.lag_seconds.labels(g.group).set(g.lag_seconds)
        per: dict[str, int] = {}
        for (_, why), n in sample.dead_letters.items():
            per[why] = per.get(why, 0) + n
        for why, n in per.items():
            self.dead_letters.labels(why).set(n)

    def serve(self, port: int, addr: str | None = None) -> None:
        """/metrics on `addr:port` (default: JCU_METRICS_ADDR, else loopback)."""
        from broker.metrics import metrics_addr

        start_http_server(port, addr=addr or metrics_addr(), registry=self.registry)
