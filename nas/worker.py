"""The enforcement worker: carries out ``enforcement_jobs`` on the routers.

Every ``poll_interval`` seconds it claims due jobs (nas/outbox.py) and, for
each, acts on every open session of the customer, on that session's NAS:

- ``disconnect``: a Disconnect-Request (RFC 5176 §2.1);
- ``coa``: a CoA-Request with ``payload["rate_limit"]`` as the new
  Mikrotik-Rate-Limit, so the speed changes without dropping PPPoE
  (FIELD-NOTES 13);
- on a NAK or a timeout, the RouterOS API of that NAS, when it has an API
  user: the session is removed from ``/ppp/active`` and
  ``/ip/hotspot/active``, or its dynamic queue gets the new rate
  (FIELD-NOTES 12). Without an API user, a NAK saying
  Session-Context-Not-Found means the session is already gone, which is
  what was wanted;
- ``api_disable`` / ``api_enable`` (static-IP subscribers, who have no
  RADIUS session to drop): on the job's NAS (or the NASes of the open
  sessions) the subscriber's sessions are removed and its static address is
  put on (or taken off) the firewall address list
  ``payload["address_list"]`` (default ``radbill-disabled``).

A customer with nothing open is done at once: the next login meets the new
state in radiusd anyway. A job that fails is tried again after
``retry_delay`` (10 s, doubling, at most 15 min) and marked failed with its
last error after ``max_attempts``. Database work runs on the daemon's
:class:`schema.pool.Pool`, RouterOS API calls in the reactor's thread pool;
every timer runs on ``clock``.
"""

import logging
from datetime import UTC, datetime, timedelta

import librouteros
from prometheus_client import Counter, Histogram
from twisted.internet import defer, threads

from nas.coa import (
    SESSION_CONTEXT_NOT_FOUND,
    CoaTimeout,
    DynamicAuthorizationClient,
    coa_request,
    disconnect_request,
)
from nas.outbox import Job, Target, Work, claim_jobs, load_work, mark_done, mark_failed, mark_retry
from nas.registry import Nas
from nas.routeros import ApiEndpoint, RouterApi
from schema.pool import Pool

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 6
RETRY_BASE_SECONDS = 10.0
RETRY_CAP_SECONDS = 900.0
# Longer than any one attempt (CoA retransmissions plus API timeouts), so a
# job is never carried out by two workers at once.
LEASE = timedelta(minutes=2)
DEFAULT_ADDRESS_LIST = "radbill-disabled"

JOBS = Counter(
    "radbill_enforcement_jobs_total",
    "Attempts at enforcement jobs, by action and result (done, retry, failed).",
    ["action", "result"],
)
JOB_SECONDS = Histogram(
    "radbill_enforcement_job_seconds",
    "Time one attempt at an enforcement job took, routers included.",
    ["action"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
DELAY = Histogram(
    "radbill_enforcement_delay_seconds",
    "Time from queueing an enforcement job to its success: how long a change took to reach the routers.",
    ["action"],
    buckets=(0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
)
API_CALLS = Counter(
    "radbill_routeros_api_calls_total",
    "RouterOS API sessions opened by the worker, by purpose and result (ok, error).",
    ["purpose", "result"],
)


class PermanentFailure(Exception):
    """The job can never succeed as written (e.g. a coa job without a rate)."""


def retry_delay(attempts: int) -> float:
    """Seconds to wait after the ``attempts``-th failed attempt."""
    return min(RETRY_BASE_SECONDS * 2 ** (attempts - 1), RETRY_CAP_SECONDS)


def _who(target: Target) -> str:
    return f"{target.session.user_name} session {target.session.acct_session_id} on {target.session.nas_ip_address}"


class EnforcementWorker:
    """Polls the outbox and acts on the routers; ``start()`` it on a running reactor."""

    def __init__(
        self,
        database: Pool,
        *,
        reactor=None,
        clock=None,
        coa: DynamicAuthorizationClient | None = None,
        poll_interval: float = 1.0,
        batch_size: int = 20,
        max_attempts: int = MAX_ATTEMPTS,
        lease: timedelta = LEASE,
        api_timeout: float = 10.0,
        api_connect=librouteros.connect,
    ):
        if reactor is None:
            from twisted.internet import reactor
        self._database = database
        self._reactor = reactor
        self._clock = clock or reactor
        self._coa = coa or DynamicAuthorizationClient(reactor, self._clock)
        self.poll_interval = poll_interval
        self.batch_size = batch_size
        self.max_attempts = max_attempts
        self.lease = lease
        self._api_timeout = api_timeout
        self._api_connect = api_connect
        self._timer = None
        self._pass = None
        self._stopped = True

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
        self._next_pass(0 if handled == self.batch_size else self.poll_interval)

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
        jobs = await self._in_transaction(claim_jobs, self._now(), self.batch_size, self.lease)
        await defer.gatherResults(
            [defer.ensureDeferred(self._carry_out(job)) for job in jobs], consumeErrors=True
        )
        return len(jobs)

    # --- one job ----------------------------------------------------------------

    async def _carry_out(self, job: Job) -> None:
        started = self._clock.seconds()
        permanent = False
        subscriber = f"customer {job.customer_id}"
        try:
            work = await self._in_transaction(load_work, job)
            subscriber = work.username or subscriber
            errors = await self._act(work)
        except PermanentFailure as error:
            errors, permanent = [str(error)], True
        except Exception as error:  # a bug or the database: keep the job, say why
            log.exception("enforcement job %d (%s) raised", job.id, job.action)
            errors = [f"{type(error).__name__}: {error}"]
        JOB_SECONDS.labels(job.action).observe(self._clock.seconds() - started)
        now = self._now()
        subject = f"enforcement job {job.id}: {job.action} {subscriber} ({job.reason})"
        if not errors:
            await self._in_transaction(mark_done, job.id, now)
            JOBS.labels(job.action, "done").inc()
            DELAY.labels(job.action).observe(max(0.0, (now - job.created_at).total_seconds()))
            log.info("%s: done", subject)
            return
        error = "; ".join(errors)
        if permanent or job.attempts >= self.max_attempts:
            await self._in_transaction(mark_failed, job.id, error, now)
            JOBS.labels(job.action, "failed").inc()
            log.error("%s: failed after %d attempts: %s", subject, job.attempts, error)
            return
        delay = retry_delay(job.attempts)
        await self._in_transaction(mark_retry, job.id, error, now + timedelta(seconds=delay))
        JOBS.labels(job.action, "retry").inc()
        log.warning("%s: attempt %d failed, retrying in %gs: %s", subject, job.attempts, delay, error)

    async def _act(self, work: Work) -> list[str]:
        """Carry out one job; return what went wrong (nothing: done)."""
        action = work.job.action
        if action == "coa" and not work.job.payload.get("rate_limit"):
            raise PermanentFailure('a coa job needs payload {"rate_limit": "..."}')
        if action in ("disconnect", "coa"):
            if not work.targets:
                log.info(
                    "enforcement job %d: customer %s has no open session: nothing to do",
                    work.job.id,
                    work.username,
                )
            steps = [(_who(target), self._radius_then_api(work.job, target)) for target in work.targets]
        else:
            steps = [
                (f"NAS {router.name}", self._api_job(work, router, users))
                for router, users in _routers_of(work).items()
            ]
        results = await defer.gatherResults(
            [defer.ensureDeferred(_reported(what, step)) for what, step in steps]
        )
        return [error for error in results if error]

    async def _radius_then_api(self, job: Job, target: Target) -> str | None:
        router = target.router
        if router is None:
            return f"{_who(target)}: that NAS is not registered (radbill nas add)"
        secret = router.secret.encode()
        if job.action == "coa":
            request = coa_request(target.session, secret, job.payload["rate_limit"])
        else:
            request = disconnect_request(target.session, secret)
        try:
            reply = await self._coa.send(router.ip_address, router.coa_port, request)
        except CoaTimeout as timeout:
            refusal, gone = str(timeout), False
        else:
            if reply.acked:
                return None
            refusal, gone = reply.describe(), reply.error_cause == SESSION_CONTEXT_NOT_FOUND
        endpoint = ApiEndpoint.of(router)
        if endpoint is None:
            if gone:
                log.info("%s: %s, so it is already gone", _who(target), refusal)
                return None
            return f"{_who(target)}: {refusal}"
        user = target.session.user_name
        if job.action == "coa":
            purpose, operation = "set_rate", lambda api: api.set_queue_rate(user, job.payload["rate_limit"])
        else:
            purpose, operation = "remove_active", lambda api: api.remove_active(user)
        try:
            count = await self._api(endpoint, purpose, operation)
        except Exception as error:
            return f"{_who(target)}: {refusal}; RouterOS API {endpoint.host}:{endpoint.port}: {error}"
        log.info("%s: %s; RouterOS API %s changed %d entries", _who(target), refusal, purpose, count)
        return None

    async def _api_job(self, work: Work, router: Nas, users: set[str]) -> str | None:
        endpoint = ApiEndpoint.of(router)
        if endpoint is None:
            return f"NAS {router.name}: {work.job.action} needs its RouterOS API (radbill nas set {router.name} --api-user ...)"
        if work.job.action == "api_enable" and not work.static_ip:
            return None
        address_list = work.job.payload.get("address_list", DEFAULT_ADDRESS_LIST)
        comment = f"radbill: {work.username} ({work.job.reason})"

        def operation(api: RouterApi) -> int:
            if work.job.action == "api_enable":
                return api.unblock_address(work.static_ip, address_list)
            removed = sum(api.remove_active(user) for user in sorted(users))
            if work.static_ip:
                api.block_address(work.static_ip, address_list, comment)
            return removed

        try:
            await self._api(endpoint, work.job.action, operation)
        except Exception as error:
            return f"NAS {router.name}: RouterOS API {endpoint.host}:{endpoint.port}: {error}"
        return None

    # --- I/O off the reactor --------------------------------------------------------

    def _api(self, endpoint: ApiEndpoint, purpose: str, operation) -> defer.Deferred:
        def call():
            with RouterApi(endpoint, timeout=self._api_timeout, connect=self._api_connect) as api:
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


async def _reported(what: str, step) -> str | None:
    """Run one step of a job; an unexpected exception becomes its error, so
    the other steps still finish and the job is retried."""
    try:
        return await step
    except Exception as error:
        log.exception("enforcement step for %s raised", what)
        return f"{what}: {type(error).__name__}: {error}"


def _routers_of(work: Work) -> dict[Nas, set[str]]:
    """For api_* jobs: the job's NAS, else the NASes of the open sessions,
    each with the user names to drop there."""
    users = {work.username} if work.username else set()
    if work.job_router is not None:
        return {work.job_router: users | {t.session.user_name for t in work.targets}}
    routers: dict[Nas, set[str]] = {}
    for target in work.targets:
        if target.router is not None:
            routers.setdefault(target.router, set(users)).add(target.session.user_name)
    if not routers:
        log.info(
            "enforcement job %d names no NAS and customer %s has no open session: nothing to do",
            work.job.id,
            work.username,
        )
    return routers
