"""Prometheus metrics of one app (its own registry, so several apps can live in one process)."""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class ServiceMetrics:
    def __init__(self):
        r = self.registry = CollectorRegistry()
        self.requests = Counter("vidfm_requests", "HTTP requests", ["method", "route", "status"], registry=r)
        self.errors = Counter("vidfm_request_errors", "HTTP requests answered with a 4xx or 5xx status", ["route", "status"], registry=r)
        self.latency = Histogram("vidfm_request_seconds", "time to answer a request", ["route"], buckets=LATENCY_BUCKETS, registry=r)
        self.queue_depth = Gauge("vidfm_job_queue_depth", "jobs waiting for a worker", registry=r)
        self.jobs = Counter("vidfm_jobs", "finished jobs", ["kind", "status"], registry=r)
        self.job_seconds = Histogram("vidfm_job_seconds", "time a job ran", ["kind"], buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800), registry=r)
        self.model_load = Gauge("vidfm_model_load_seconds", "time to load each model at start", ["model"], registry=r)

    def request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(route).observe(seconds)
        if status >= 400:
            self.errors.labels(route, str(status)).inc()

    def job_finished(self, kind: str, status: str, seconds: float) -> None:
        self.jobs.labels(kind, status).inc()
        self.job_seconds.labels(kind).observe(seconds)

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
