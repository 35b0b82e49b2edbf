"""``run_detectors`` skips sqlaudit's own detectors when a cheap test says they cannot find
anything in a unit (``detectors._facts.may_find``, issue 20): over every case of the rule
tables (``test_detector_rules``), each detector that finds something passes its test, and
every unit's findings are the same with the tests as with every detector run."""

from __future__ import annotations

import pytest
import test_detector_rules as rules

from sqlaudit import detectors
from sqlaudit.detectors import DEFAULT_DETECTORS, run_detectors
from sqlaudit.detectors._facts import OURS, Facts, may_find

#: Each rule table of ``test_detector_rules`` and the kind it is about.
TABLES = {
    "n_plus_one": rules.N_PLUS_ONE,
    "column_reload": rules.COLUMN_RELOAD,
    "repeated_query": rules.REPEATED,
    "write_loop": rules.WRITE_LOOP,
    "slow_query": rules.SLOW,
    "query_budget": rules.BUDGET,
    "autocommit_writes": rules.AUTOCOMMIT_WRITES,
    "ineffective_rollback": rules.INEFFECTIVE,
    "commit_in_loop": rules.COMMIT_IN_LOOP,
    "discarded_writes": rules.DISCARDED,
    "long_transaction": rules.LONG,
    "stale_identity_map": rules.STALE,
    "transaction_overhead": rules.OVERHEAD,
}
CASES = {
    f"{kind}-{name}": (kind, case) for kind, table in TABLES.items() for name, case in table.items()
}


def test_every_default_detector_has_a_test() -> None:
    assert {type(d) for d in DEFAULT_DETECTORS} == OURS


@pytest.mark.parametrize(("kind", "case"), CASES.values(), ids=CASES.keys())
def test_a_detector_that_finds_passes_its_test(kind: str, case: rules.Case) -> None:
    unit = case.build()
    records = unit.own_statements
    candidates = may_find(unit, Facts(unit, records))
    for detector in DEFAULT_DETECTORS:
        if list(detector.detect(unit, records)):
            assert type(detector) in candidates, detector.kind


@pytest.mark.parametrize(("kind", "case"), CASES.values(), ids=CASES.keys())
def test_findings_are_those_of_every_detector_run(
    kind: str, case: rules.Case, monkeypatch: pytest.MonkeyPatch
) -> None:
    unit = case.build()
    triaged = run_detectors(unit)
    monkeypatch.setattr(detectors, "may_find", lambda unit, facts: set(OURS))
    assert run_detectors(unit) == triaged
