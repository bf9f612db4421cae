"""The operator's own Prometheus metrics, served on `KUBETRIAGE_METRICS_PORT` at /metrics.

Names follow Prometheus conventions (`_total` counters, `_seconds` histograms); labels are
bounded sets (symptom, category, state, outcome, kind, type), never object names.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, start_http_server

DIAGNOSES = Counter(
    "kubetriage_diagnoses_total",
    "Diagnoses written to DiagnosisReports, by symptom and root-cause category.",
    ["symptom", "category"],
)
DIAGNOSIS_SECONDS = Histogram(
    "kubetriage_diagnosis_duration_seconds",
    "Time from the start of a diagnosis to its report written, reads and writes included.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
DIAGNOSIS_FAILURES = Counter(
    "kubetriage_diagnosis_failures_total",
    "Diagnoses that failed on the apiserver (unreachable, throttled) and will be retried.",
)
DIAGNOSIS_ERRORS = Counter(
    "kubetriage_diagnosis_errors_total",
    "Diagnoses whose playbook raised (a bug of kubetriage): failed once, not retried until "
    "the workload changes, and recorded as the report's condition DiagnosisFailed.",
    ["symptom"],
)
OPEN_REPORTS = Gauge("kubetriage_open_reports", "DiagnosisReports in phase Open.")
ESCALATIONS = Counter(
    "kubetriage_escalations_total",
    "Escalation states recorded in reports "
    "(NotRequired, NotSent, Pending, Opened, Failed, Declined).",
    ["state"],
)
LINEAR_REQUESTS = Counter(
    "kubetriage_linear_requests_total",
    "Requests to Linear by outcome (ok, rate_limited, transport, auth, request).",
    ["outcome"],
)
PROMETHEUS_REQUESTS = Counter(
    "kubetriage_prometheus_requests_total",
    "Queries of memory history by outcome (ok, empty, error, timeout).",
    ["outcome"],
)
WATCH_EVENTS = Counter(
    "kubetriage_watch_events_total",
    "Watch events processed, by kind and event type.",
    ["kind", "type"],
)

LEADER = Gauge(
    "kubetriage_leader",
    "1 while this instance diagnoses: it holds the Lease, or runs without leader election.",
)


def serve(port: int) -> None:
    """Serve /metrics on all interfaces (0: off)."""
    if port:
        start_http_server(port)
