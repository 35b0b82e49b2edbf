"""Background jobs: one unit of work per job run, as the middlewares make one per request.

The integrations (imported by path; each imports its queue library, and only itself):

* :mod:`sqlaudit.jobs.celery`: ``connect()`` hooks Celery's ``task_prerun``/``task_postrun``
  signals, so each task run is a unit, reported onto the Celery instrumentation's CONSUMER
  span (``run/<task name>``);
* :mod:`sqlaudit.jobs.rq`: ``audited_job_class()`` makes an RQ ``Job`` class whose ``perform``
  runs inside the job's unit.

Each unit is named after the job (the Celery task name, the RQ function path) and takes these
options, validated when the integration is set up (:class:`JobOptions`). A job run inside an
open unit (an eager task inside a request) is a nested unit, like an audit in an audit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from fnmatch import fnmatchcase
from random import random
from typing import TYPE_CHECKING, Any, TypedDict, TypeVar

from sqlaudit._audit import audit
from sqlaudit._internal import contain
from sqlaudit._validate import check_budgets, check_patterns, check_rate
from sqlaudit.capture.scope import CURRENT, current
from sqlaudit.errors import AuditFailed, ConfigError
from sqlaudit.model.config import AuditConfig
from sqlaudit.report import AuditReport, scope_of
from sqlaudit.report.entry import mark

if TYPE_CHECKING:
    from sqlaudit.detectors import Detector
    from sqlaudit.model.config import OnFinding
    from sqlaudit.reporters import Reporter

__all__ = ["JobAuditor", "JobOptions"]

T = TypeVar("T")
#: Longest job name kept: names become span names and metric attributes.
_MAX_NAME = 200


class JobOptions(TypedDict, total=False):
    """The keyword options of the job integrations (all optional).

    * ``budgets``: ``max_queries`` per job name, ``{"reports.nightly": 500, "mail.*": 5}``;
      exact names first, then globs (``fnmatch``) in order.
    * ``sample_rate``: fraction of job runs audited (0 to 1; default 1).
    * ``exclude``: job names or globs never audited (``"celery.*"``).
    * ``on_finding``: ``"log"``, ``"raise"`` or ``"ignore"``; default: the config's.
    * ``reporters`` (default: log findings), ``detectors`` (default: all).
    """

    budgets: Mapping[str, int] | None
    sample_rate: float
    exclude: Iterable[str]
    on_finding: OnFinding | None
    reporters: Iterable[Reporter] | None
    detectors: Sequence[Detector] | None


class JobAuditor:
    """The validated options of one job integration; opens and closes each job's unit.

    ``config`` defaults to ``AuditConfig.for_production()``; a bad value or an unknown keyword
    raises :class:`~sqlaudit.ConfigError` here, never when a job runs.
    """

    def __init__(self, config: AuditConfig | None = None, **options: Any) -> None:
        unknown = sorted(set(options) - JobOptions.__optional_keys__)
        if unknown:
            raise ConfigError(
                f"unknown job option(s) {', '.join(map(repr, unknown))}; "
                f"known: config, {', '.join(sorted(JobOptions.__optional_keys__))}"
            )
        if config is None:
            config = AuditConfig.for_production()
        elif not isinstance(config, AuditConfig):
            raise ConfigError(f"config must be an AuditConfig, got {type(config).__name__}")
        on_finding = options.get("on_finding")
        if on_finding is not None:
            config = config.replace(on_finding=on_finding)
        self.config = config
        self.exact_budgets, self.pattern_budgets = check_budgets(
            "budgets", options.get("budgets"), jobs=True
        )
        self.sample_rate = check_rate("sample_rate", options.get("sample_rate", 1.0))
        self.exclude = check_patterns("exclude", options.get("exclude", ()), jobs=True)
        # One closer for every job: audit.close() reads only its reporters, detectors and
        # policy, never per-job state (as the middlewares' RequestAuditor does).
        self._closer = audit(
            "job", config, reporters=options.get("reporters"), detectors=options.get("detectors")
        )
        self._budget_configs: dict[int, AuditConfig] = {}

    def begin(self, name: str) -> AuditReport | None:
        """The unit to audit the job ``name`` in, or None (excluded, not sampled, or an
        internal error, logged once)."""
        try:
            name = name[:_MAX_NAME] or "job"
            if any(fnmatchcase(name, pattern) for pattern in self.exclude):
                return None
            rate = self.sample_rate
            if rate < 1.0 and not (rate > 0.0 and random() < rate):
                return None
            scope = current()
            parent = None if scope is None else scope.owner
            report = AuditReport(name, self._config_for(name), parent)
            mark(report, "job")
            return report
        except Exception as exc:
            contain("jobs: opening the job's audit", exc)
            return None

    def finish(self, report: AuditReport, failing: bool) -> None:
        """Detect, report, apply the policy: raises ``AuditFailed`` when it says so and the
        job did not fail; never anything else outside strict mode."""
        try:
            self._closer.close(report, failing)
        except AuditFailed:
            raise
        except Exception as exc:
            contain("jobs: closing the job's audit", exc, report, failing=failing)

    def run(self, name: str, job: Callable[[], T]) -> T:
        """Call ``job()`` as the unit of work ``name``; its exception always wins."""
        report = self.begin(name)
        if report is None:
            return job()
        token = CURRENT.set(scope_of(report))
        try:
            result = job()
        except BaseException:
            CURRENT.reset(token)
            self.finish(report, failing=True)
            raise
        CURRENT.reset(token)
        self.finish(report, failing=False)
        return result

    def budget_for(self, name: str) -> int | None:
        """The ``max_queries`` budget of the job ``name``: exact name, else first glob."""
        budget = self.exact_budgets.get(name)
        if budget is not None:
            return budget
        for pattern, value in self.pattern_budgets:
            if fnmatchcase(name, pattern):
                return value
        return None

    def _config_for(self, name: str) -> AuditConfig:
        budget = self.budget_for(name)
        if budget is None:
            return self.config
        config = self._budget_configs.get(budget)
        if config is None:
            config = self._budget_configs[budget] = self.config.replace(max_queries=budget)
        return config
