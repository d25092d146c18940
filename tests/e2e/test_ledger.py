"""Ledger arithmetic: every produced record is processed, dead-lettered, deliberately unmatched, or lost."""

from gitops.e2e.ledger import ScenarioLedger, summary

SRC = "/apis/v1/namespaces/notifications/kafkasources/kafka-source#notifications"


def keys(*offsets: int) -> set[tuple[str, str]]:
    return {(SRC, f"partition:0/offset:{o}") for o in offsets}


def test_an_event_neither_processed_nor_dead_lettered_is_lost():
    ledger = ScenarioLedger("s", produced=keys(0, 1, 2, 3))
    ledger.observe(processed=keys(0, 9), dead_lettered=keys(1))
    assert ledger.line() == "s: produced 4, processed 1, dead-lettered 1, lost 2"
    assert ledger.lost == keys(2, 3)
    last, lost = summary([ledger])
    assert last == "e2e: 1 scenarios, lost 2"
    assert lost == [f"s: {SRC} partition:0/offset:2", f"s: {SRC} partition:0/offset:3"]


def test_processed_after_a_dead_letter_counts_once_as_processed():
    # A replayed dead letter is processed: it must not be counted twice.
    ledger = ScenarioLedger("s", produced=keys(0))
    ledger.observe(processed=keys(0), dead_lettered=keys(0))
    assert (len(ledger.processed), len(ledger.dead_lettered), len(ledger.lost)) == (1, 0, 0)


def test_unmatched_records_are_not_lost_and_are_named():
    ledger = ScenarioLedger("s", produced=keys(0, 1), unmatched=keys(1))
    ledger.observe(processed=keys(0), dead_lettered=set())
    assert ledger.settled()
    assert ledger.line().endswith("lost 0 (1 matched no Trigger, as intended)")
    assert summary([ledger]) == ("e2e: 1 scenarios, lost 0", [])


def test_records_dropped_by_the_identity_gap_count_only_once_recovered():
    ledger = ScenarioLedger("s", produced=keys(0, 1))
    ledger.observe(processed=keys(0), dead_lettered=set())
    assert ledger.lost == keys(1)  # dropped, not yet re-produced
    copy = ("copy", "c")
    ledger.reproduce(next(iter(keys(1))), copy)
    assert not ledger.settled() and copy in ledger.lost  # the copy is a record of its own, until processed
    ledger.observe(processed=keys(0) | {copy}, dead_lettered=set())
    assert ledger.settled()
    assert ledger.line().endswith("lost 0 (1 dropped by the upstream identity gap, re-produced and processed)")
