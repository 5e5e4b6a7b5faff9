"""The enforcement worker: carries out ``enforcement_jobs`` on the routers.

Every ``poll_interval`` seconds it claims due jobs (nas/outbox.py) and, for
each, acts on every open session of the customer, on that session's NAS:

- ``disconnect``: a Disconnect-Request (RFC 5176 §2.1). An ACK is not the
  end: the job waits ``stop_deadline`` seconds for the Accounting-Stop, and
  if the session is still open it asks the RouterOS API, which removes it
  from ``/ppp/active`` and ``/ip/hotspot/active`` (nothing there: it is
  gone); the API's word closes the session's row (Admin-Reset) as the Stop
  would have. On a NAK or a timeout the API is asked at once (FIELD-NOTES
  12); without an API user, a NAK saying Session-Context-Not-Found means
  the session is already gone, which is what was wanted.
- ``coa``: a CoA-Request with the new Mikrotik-Rate-Limit (and the
  package's Mikrotik-Address-List), so the speed changes without dropping
  PPPoE (FIELD-NOTES 13). The rate is ``payload["rate_limit"]`` (the
  fair-usage throttle) or else what the customer's package gives when the
  job runs: its rate, or its fair-usage rate over quota. A NAK turns into a
  Disconnect (the next login gets the right rate); a timeout sets the rate
  of the session's dynamic queue through the API.
- ``api_disable`` / ``api_enable`` (static-IP customers, who have no RADIUS
  session to drop): the customer's sessions are removed (their rows closed,
  Admin-Reset) and its static address is put on (or taken off) the
  firewall address list ``blocked_address_list``, and with ``block_queue``
  its ``/queue/simple`` is disabled (enabled), on the job's NAS, else the
  NASes of its open sessions, else every NAS with an API user.

A customer with nothing open is done at once: the next login meets the new
state in radiusd anyway. A job that fails is tried again after
``retry_delay`` seconds (doubling, at most ``retry_max``) and marked failed
with its last error after ``max_attempts``. Database work runs on the
daemon's :class:`schema.pool.Pool`, RouterOS API calls in the reactor's
thread pool; every timer runs on ``clock``.
"""

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import librouteros
from prometheus_client import Counter, Gauge, Histogram
from twisted.internet import defer, task, threads

from nas.coa import (
    SESSION_CONTEXT_NOT_FOUND,
    CoaTimeout,
    DynamicAuthorizationClient,
    coa_request,
    disconnect_request,
)
from nas.outbox import (
    Job,
    JobRow,
    Target,
    Work,
    backlog,
    claim_job,
    claim_jobs,
    close_gone_sessions,
    get_job,
    load_work,
    mark_awaiting_stop,
    mark_done,
    mark_failed,
    mark_retry,
)
from nas.registry import Nas
from nas.routeros import ApiEndpoint, RouterApi
from schema.pool import Pool
from schema.settings import NasSettings
from schema.tables import JOB_ACTIONS

log = logging.getLogger(__name__)

DEFAULT_SETTINGS = NasSettings()
UTC_ZONE = ZoneInfo("UTC")
# payload key: the sessions whose Disconnect was ACKed, waiting for their Stop.
DISCONNECTED = "disconnected"

JOBS = Counter(
    "radbill_nas_jobs_total",
    "Attempts at enforcement jobs, by action and result (done, retry, failed, awaiting_stop).",
    ["action", "result"],
)
ACTIONS = Counter(
    "radbill_nas_actions_total",
    "What the worker did on each router, by NAS, job action and result (ok, error).",
    ["nas", "action", "result"],
)
STOPS = Counter(
    "radbill_nas_disconnect_confirmations_total",
    "How a Disconnect was seen to be done: stop (Accounting-Stop), api (RouterOS API), not_found (NAK 503).",
    ["how"],
)
JOB_SECONDS = Histogram(
    "radbill_nas_job_seconds",
    "Time one attempt at an enforcement job took, routers included.",
    ["action"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
DELAY = Histogram(
    "radbill_nas_job_delay_seconds",
    "Time from queueing an enforcement job to its success: how long a change took to reach the routers.",
    ["action"],
    buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
)
BACKLOG = Gauge("radbill_nas_outbox_backlog", "Pending enforcement jobs, by action.", ["action"])
OLDEST = Gauge(
    "radbill_nas_outbox_oldest_pending_seconds",
    "Age of the oldest pending enforcement job, by action (0 when none waits).",
    ["action"],
)
API_CALLS = Counter(
    "radbill_nas_api_calls_total",
    "RouterOS API sessions opened by the worker, by purpose and result (ok, error).",
    ["purpose", "result"],
)


class PermanentFailure(Exception):
    """The job can never succeed as written (e.g. a coa job for a customer without a package)."""


@dataclass(frozen=True)
class AwaitingStop:
    """A step's outcome: the NAS ACKed the Disconnect of this session; its Stop is not in yet."""

    acct_session_id: str


@dataclass(frozen=True)
class Outcome:
    """How one attempt at a job ended: ``status`` done, retry, failed or awaiting_stop."""

    job_id: int
    status: str
    error: str | None = None


def _who(target: Target) -> str:
    return f"{target.session.user_name} session {target.session.acct_session_id} on {target.session.nas_ip_address}"


def _router_name(target: Target) -> str:
    return target.router.name if target.router else target.session.nas_ip_address


class EnforcementWorker:
    """Polls the outbox and acts on the routers; ``start()`` it on a running reactor."""

    def __init__(
        self,
        database: Pool,
        settings: NasSettings = DEFAULT_SETTINGS,
        *,
        zone: ZoneInfo = UTC_ZONE,
        reactor=None,
        clock=None,
        coa: DynamicAuthorizationClient | None = None,
        api_connect=librouteros.connect,
    ):
        if reactor is None:
            from twisted.internet import reactor
        self._database = database
        self.settings = settings
        self._zone = zone
        self._reactor = reactor
        self._clock = clock or reactor
        self._coa = coa or DynamicAuthorizationClient(
            reactor, self._clock, timeout=settings.coa_timeout, retries=settings.coa_retries
        )
        self._api_connect = api_connect
        self._timer = None
        self._pass = None
        self._stopped = True

    @property
    def poll_interval(self) -> float:
        return self.settings.poll_interval

    def retry_delay(self, attempts: int) -> float:
        """Seconds to wait after the ``attempts``-th failed attempt."""
        return min(self.settings.retry_delay * 2 ** (attempts - 1), self.settings.retry_max)

    # --- the loop -------------------------------------------------------------

    def start(self) -> None:
        """Open the CoA socket and start polling now."""
        self._stopped = False
        self._coa.start()
        self._timer = self._clock.callLater(0, self._tick)

    async def _stop(self) -> None:
        self._stopped = True
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        if self._pass is not None:
            await self._pass
        await self._coa.stop()

    def stop(self) -> defer.Deferred:
        """Stop polling; fires when the pass in progress has finished."""
        return defer.ensureDeferred(self._stop())

    def _tick(self) -> None:
        self._timer = None
        self._pass = self.run_once()
        self._pass.addCallbacks(self._schedule, self._pass_failed)

    def _schedule(self, handled: int) -> None:
        # A full batch means more are probably due: go on at once.
        self._next_pass(0 if handled == self.settings.batch_size else self.poll_interval)

    def _pass_failed(self, failure) -> None:
        log.error(
            "enforcement pass failed, trying again in %gs: %s", self.poll_interval, failure.getErrorMessage()
        )
        self._next_pass(self.poll_interval)

    def _next_pass(self, delay: float) -> None:
        self._pass = None
        if not self._stopped:
            self._timer = self._clock.callLater(delay, self._tick)

    def run_once(self) -> defer.Deferred:
        """Claim one batch of due jobs and carry them out; fires with how many there were."""
        return defer.ensureDeferred(self._run_once())

    async def _run_once(self) -> int:
        lease = timedelta(seconds=self.settings.lease)
        jobs = await self._in_transaction(claim_jobs, self._now(), self.settings.batch_size, lease)
        await defer.gatherResults(
            [defer.ensureDeferred(self._carry_out(job)) for job in jobs], consumeErrors=True
        )
        await self._measure_backlog()
        return len(jobs)

    async def _run_job(self, job_id: int) -> Outcome | None:
        """One attempt at one job now; None when another worker holds it or it is not due."""
        lease = timedelta(seconds=self.settings.lease)
        job = await self._in_transaction(claim_job, job_id, self._now(), lease)
        return None if job is None else await self._carry_out(job)

    def see_through(self, job_id: int, patience: float) -> defer.Deferred:
        """Carry one job out now and follow it for up to ``patience`` seconds:
        through the wait for its Accounting-Stop, until it is done or failed,
        or until an attempt fails (billingd retries it later). Fires with its JobRow."""
        return defer.ensureDeferred(self._see_through(job_id, patience))

    async def _see_through(self, job_id: int, patience: float) -> JobRow:
        deadline = self._clock.seconds() + patience
        self._coa.start()
        try:
            while True:
                outcome = await self._run_job(job_id)
                row = await self._in_transaction(get_job, job_id)
                left = deadline - self._clock.seconds()
                if row.status != "pending" or left <= 0 or (outcome and outcome.status == "retry"):
                    return row
                due = (row.not_before - self._now()).total_seconds() if row.not_before else 0.0
                await task.deferLater(self._clock, min(left, max(0.2, due)), lambda: None)
        finally:
            await self._coa.stop()

    async def _measure_backlog(self) -> None:
        pending = await self._database.run("nas.backlog", backlog)
        now = self._now()
        for action in JOB_ACTIONS:
            count, oldest = pending.get(action, (0, None))
            BACKLOG.labels(action).set(count)
            OLDEST.labels(action).set((now - oldest).total_seconds() if oldest else 0)

    # --- one job ----------------------------------------------------------------

    async def _carry_out(self, job: Job) -> Outcome:
        started = self._clock.seconds()
        permanent = False
        subscriber = f"customer {job.customer_id}"
        awaiting: list[str] = []
        still_open: set[str] | None = None  # the open sessions, once read
        try:
            work = await self._in_transaction(load_work, job, self._now(), self._zone)
            subscriber = work.username or subscriber
            still_open = {target.session.acct_session_id for target in work.targets}
            results = await self._act(work)
            errors = [result for result in results if isinstance(result, str)]
            awaiting = [result.acct_session_id for result in results if isinstance(result, AwaitingStop)]
        except PermanentFailure as error:
            errors, permanent = [str(error)], True
        except Exception as error:  # a bug or the database: keep the job, say why
            log.exception("enforcement job %d (%s) raised", job.id, job.action)
            errors = [f"{type(error).__name__}: {error}"]
        JOB_SECONDS.labels(job.action).observe(self._clock.seconds() - started)
        now = self._now()
        subject = f"enforcement job {job.id}: {job.action} {subscriber} ({job.reason})"
        payload = job.payload
        if still_open is not None:  # sessions waited for and now closed: their Stop arrived
            waited = set(job.payload.get(DISCONNECTED, []))
            STOPS.labels("stop").inc(len(waited - still_open))
            payload = {**payload, DISCONNECTED: sorted((waited & still_open) | set(awaiting))}
        if not errors and awaiting:
            deadline = now + timedelta(seconds=self.settings.stop_deadline)
            await self._in_transaction(mark_awaiting_stop, job.id, payload, deadline)
            JOBS.labels(job.action, "awaiting_stop").inc()
            log.info(
                "%s: Disconnect ACKed, waiting for the Accounting-Stop of %s", subject, ", ".join(awaiting)
            )
            return Outcome(job.id, "awaiting_stop")
        if not errors:
            await self._in_transaction(mark_done, job.id, now)
            JOBS.labels(job.action, "done").inc()
            DELAY.labels(job.action).observe(max(0.0, (now - job.created_at).total_seconds()))
            log.info("%s: done", subject)
            return Outcome(job.id, "done")
        error = "; ".join(errors)
        if permanent or job.attempts >= self.settings.max_attempts:
            await self._in_transaction(mark_failed, job.id, error, now)
            JOBS.labels(job.action, "failed").inc()
            log.error("%s: failed after %d attempts: %s", subject, job.attempts, error)
            return Outcome(job.id, "failed", error)
        delay = self.retry_delay(job.attempts)
        await self._in_transaction(mark_retry, job.id, error, now + timedelta(seconds=delay), payload)
        JOBS.labels(job.action, "retry").inc()
        log.warning("%s: attempt %d failed, retrying in %gs: %s", subject, job.attempts, delay, error)
        return Outcome(job.id, "retry", error)

    async def _act(self, work: Work) -> list:
        """Carry out one job; return each step's outcome (None: done, a string: what went wrong)."""
        action = work.job.action
        if action in ("disconnect", "coa"):
            if not work.targets:
                log.info(
                    "enforcement job %d: customer %s has no open session: nothing to do",
                    work.job.id,
                    work.username,
                )
            disconnected = set(work.job.payload.get(DISCONNECTED, []))
            steps = []
            for target in work.targets:
                if target.session.acct_session_id in disconnected:
                    step = self._confirm_gone(work.job, target)
                elif action == "coa":
                    step = self._change_rate(work, target)
                else:
                    step = self._disconnect(work.job, target)
                steps.append((target, step))
            return await defer.gatherResults(
                [defer.ensureDeferred(self._reported(work.job, target, step)) for target, step in steps]
            )
        if not work.routers:
            log.info("enforcement job %d: no NAS has a RouterOS API user: nothing to do", work.job.id)
        return await defer.gatherResults(
            [defer.ensureDeferred(self._api_job(work, router)) for router in work.routers]
        )

    async def _reported(self, job: Job, target: Target, step) -> str | AwaitingStop | None:
        """Run one step; count it per NAS; an unexpected exception becomes its error,
        so the other steps still finish and the job is retried."""
        try:
            result = await step
        except Exception as error:
            log.exception("enforcement step for %s raised", _who(target))
            result = f"{_who(target)}: {type(error).__name__}: {error}"
        ACTIONS.labels(_router_name(target), job.action, "error" if isinstance(result, str) else "ok").inc()
        return result

    async def _change_rate(self, work: Work, target: Target) -> str | AwaitingStop | None:
        job, router = work.job, target.router
        if router is None:
            return f"{_who(target)}: that NAS is not registered (radbill nas add)"
        rate, address_list = job.payload.get("rate_limit"), None
        if rate is None:
            if work.service is None:
                raise PermanentFailure(f"customer {work.username} has no package to take a rate from")
            rate, address_list = work.service.rate_limit, work.service.address_list
        request = coa_request(target.session, router.secret.encode(), rate, address_list)
        try:
            reply = await self._coa.send(router.ip_address, router.coa_port, request)
        except CoaTimeout as timeout:
            return await self._rate_by_api(target, rate, str(timeout))
        if reply.acked:
            return None
        if reply.error_cause == SESSION_CONTEXT_NOT_FOUND:
            log.info("%s: %s, so it is already gone", _who(target), reply.describe())
            return None
        log.warning("%s: %s to the rate %s: disconnecting it instead", _who(target), reply.describe(), rate)
        return await self._disconnect(job, target)

    async def _rate_by_api(self, target: Target, rate: str, refusal: str) -> str | None:
        endpoint = ApiEndpoint.of(target.router)
        if endpoint is None:
            return f"{_who(target)}: {refusal}"
        user = target.session.user_name
        try:
            count = await self._api(endpoint, "set_rate", lambda api: api.set_queue_rate(user, rate))
        except Exception as error:
            return f"{_who(target)}: {refusal}; RouterOS API {endpoint.host}:{endpoint.port}: {error}"
        log.info("%s: %s; RouterOS API set the rate of %d queues", _who(target), refusal, count)
        return None

    async def _disconnect(self, job: Job, target: Target) -> str | AwaitingStop | None:
        router = target.router
        if router is None:
            return f"{_who(target)}: that NAS is not registered (radbill nas add)"
        request = disconnect_request(target.session, router.secret.encode())
        try:
            reply = await self._coa.send(router.ip_address, router.coa_port, request)
        except CoaTimeout as timeout:
            refusal, gone = str(timeout), False
        else:
            if reply.acked:
                return AwaitingStop(target.session.acct_session_id)
            refusal, gone = reply.describe(), reply.error_cause == SESSION_CONTEXT_NOT_FOUND
        if ApiEndpoint.of(router) is None and gone:
            log.info("%s: %s, so it is already gone", _who(target), refusal)
            STOPS.labels("not_found").inc()
            return None
        return await self._remove_by_api(target, refusal)

    async def _confirm_gone(self, job: Job, target: Target) -> str | None:
        """The Disconnect was ACKed ``stop_deadline`` ago and the session is still
        open (no Accounting-Stop): the RouterOS API shows whether it is gone."""
        reason = f"Disconnect-ACK but no Accounting-Stop within {self.settings.stop_deadline:g}s"
        if ApiEndpoint.of(target.router) is None:
            # Ask the NAS again: a NAK Session-Context-Not-Found then says it is gone.
            log.warning("%s: %s and no RouterOS API to check: asking the NAS again", _who(target), reason)
            return await self._disconnect_again(job, target, reason)
        return await self._remove_by_api(target, reason)

    async def _disconnect_again(self, job: Job, target: Target, reason: str) -> str | None:
        result = await self._disconnect(job, target)
        if isinstance(result, AwaitingStop):
            return f"{_who(target)}: {reason}; the NAS ACKed a second Disconnect, still no Stop"
        return result

    async def _remove_by_api(self, target: Target, why: str) -> str | None:
        endpoint = ApiEndpoint.of(target.router)
        if endpoint is None:
            return f"{_who(target)}: {why}"
        user = target.session.user_name
        try:
            count = await self._api(endpoint, "remove_active", lambda api: api.remove_active(user))
        except Exception as error:
            return f"{_who(target)}: {why}; RouterOS API {endpoint.host}:{endpoint.port}: {error}"
        STOPS.labels("api").inc()
        shown = f"removed {count} active entries" if count else "shows no active session"
        log.info("%s: %s; RouterOS API %s: closing its session (Admin-Reset)", _who(target), why, shown)
        await self._in_transaction(close_gone_sessions, [target.acct_unique_id], self._now(), count > 0)
        return None

    async def _api_job(self, work: Work, router: Nas) -> str | None:
        endpoint = ApiEndpoint.of(router)
        if endpoint is None:
            error = f"NAS {router.name}: {work.job.action} needs its RouterOS API (radbill nas set {router.name} --api-user ...)"
            ACTIONS.labels(router.name, work.job.action, "error").inc()
            return error
        settings = self.settings
        comment = f"radbill: {work.username} ({work.job.reason})"
        users = {work.username} | {t.session.user_name for t in work.targets if t.router == router}
        users.discard(None)

        def operation(api: RouterApi) -> int:
            """Block or unblock; returns how many active sessions it removed."""
            removed = 0
            if work.job.action == "api_disable":
                removed = sum(api.remove_active(user) for user in sorted(users))
                if work.static_ip:
                    api.block_address(work.static_ip, settings.blocked_address_list, comment)
            elif work.static_ip:
                api.unblock_address(work.static_ip, settings.blocked_address_list)
            if work.static_ip and settings.block_queue:
                api.set_static_queue_disabled(work.static_ip, work.job.action == "api_disable")
            return removed

        try:
            removed = await self._api(endpoint, work.job.action, operation)
        except Exception as error:
            ACTIONS.labels(router.name, work.job.action, "error").inc()
            return f"NAS {router.name}: RouterOS API {endpoint.host}:{endpoint.port}: {error}"
        ACTIONS.labels(router.name, work.job.action, "ok").inc()
        if work.job.action == "api_disable":
            # The API took its sessions on this router off: their rows close as a Stop would.
            gone = [target.acct_unique_id for target in work.targets if target.router == router]
            if gone:
                await self._in_transaction(close_gone_sessions, gone, self._now(), removed > 0)
        return None

    # --- I/O off the reactor --------------------------------------------------------

    def _api(self, endpoint: ApiEndpoint, purpose: str, operation) -> defer.Deferred:
        def call():
            with RouterApi(endpoint, timeout=self.settings.api_timeout, connect=self._api_connect) as api:
                return operation(api)

        result = threads.deferToThreadPool(self._reactor, self._reactor.getThreadPool(), call)

        def count(outcome, label):
            API_CALLS.labels(purpose, label).inc()
            return outcome

        return result.addCallbacks(count, count, callbackArgs=("ok",), errbackArgs=("error",))

    def _in_transaction(self, unit_of_work, *args) -> defer.Deferred:
        return self._database.run(f"nas.{unit_of_work.__name__}", unit_of_work, *args, write=True)

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock.seconds(), UTC)
