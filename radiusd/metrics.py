"""radiusd's Prometheus metrics, declared once for the whole process."""

from prometheus_client import Counter, Gauge, Histogram

REQUESTS = Counter(
    "radbill_radiusd_requests",
    "RADIUS requests received from known routers, by code and NAS.",
    ["code", "nas"],
)
ACCEPTS = Counter(
    "radbill_radiusd_accepts",
    "Access-Accepts sent, by reason (ok, fup, expired_restricted).",
    ["reason", "nas"],
)
REJECTS = Counter("radbill_radiusd_rejects", "Access-Rejects sent, by reason.", ["reason", "nas"])
DROPS = Counter("radbill_radiusd_drops", "Datagrams dropped without an answer, by cause.", ["cause"])
DUPLICATES = Counter(
    "radbill_radiusd_duplicates", "Retransmissions answered from the duplicate cache (RFC 5080)."
)
LATENCY = Histogram(
    "radbill_radiusd_request_seconds",
    "Time from receiving a request to sending its answer.",
    ["code"],
    buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0),
)
VIEW_SUBSCRIBERS = Gauge("radbill_radiusd_view_subscribers", "Subscribers held in the in-memory view.")
VIEW_NAS = Gauge("radbill_radiusd_view_nas", "Routers held in the in-memory view.")
VIEW_STALENESS = Gauge(
    "radbill_radiusd_view_staleness_seconds",
    "Seconds since the view last caught up with the database's change log.",
)
DATABASE_UP = Gauge(
    "radbill_radiusd_database_up", "1 while the database answers radiusd's queries, 0 while it does not."
)
COUNTERS_CLAMPED = Counter(
    "radbill_radiusd_accounting_counters_clamped",
    "Accounting records whose byte counters were above 2^60 and were stored clamped, by NAS.",
    ["nas"],
)
TAKEOVERS = Counter(
    "radbill_radiusd_session_takeovers",
    "Stale sessions closed (Lost-Service) to let a new login in, by reason (same_station, nas_silent) and NAS.",
    ["reason", "nas"],
)
POSTAUTH_DROPPED = Counter(
    "radbill_radiusd_postauth_dropped", "radpostauth rows given up because the database could not take them."
)


class LabelCache:
    """Children of a labelled metric by label values, so the hot path does not
    pay prometheus_client's ``labels()`` lookup on every packet."""

    def __init__(self, metric):
        self._metric = metric
        self._children = {}

    def __call__(self, *values):
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self._metric.labels(*values)
        return child
