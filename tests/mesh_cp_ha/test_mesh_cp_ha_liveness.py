"""The pure rules of replica liveness: who is online where, since when, and what a replica
may reap or forget (``liveness``)."""

from __future__ import annotations

from meshgate.controlplane.distribution.liveness import (
    Instance,
    SessionRecord,
    Verdict,
    default_dead_after,
    departed,
    judge,
    orphaned,
)

NOW = 1_000_000.0
DEAD_AFTER = 15.0
KEY = ("default", "web-1")


def instance(ident: str, last_seen: float) -> Instance:
    return Instance(ident, f"https://{ident}:5678", f"http://{ident}:5681", NOW - 3600, last_seen)


def verdict(session: SessionRecord | None, offline: float | None = None, **seen: float) -> Verdict:
    instances = {ident: instance(ident, at) for ident, at in seen.items()}
    return judge(session, instances, offline, now=NOW, dead_after=DEAD_AFTER, self_id="cp_a")


def test_a_session_of_a_live_replica_is_online_there() -> None:
    session = SessionRecord(KEY, "cp_b", NOW - 100)
    assert verdict(session, cp_b=NOW - 2) == Verdict(True, "cp_b", NOW - 100)
    assert verdict(session, cp_b=NOW - DEAD_AFTER) == Verdict(True, "cp_b", NOW - 100)
    # an offline record beside a live session is stale: the session wins
    assert verdict(session, NOW - 50, cp_b=NOW - 1).online


def test_a_session_of_a_dead_replica_is_offline_since_its_last_heartbeat() -> None:
    session = SessionRecord(KEY, "cp_b", NOW - 100)
    dead = verdict(session, cp_b=NOW - DEAD_AFTER - 0.5)
    assert dead == Verdict(False, "cp_b", NOW - DEAD_AFTER - 0.5)
    # a replica that died before the session's admission time (clock skew): not before it
    assert verdict(SessionRecord(KEY, "cp_b", NOW - 10), cp_b=NOW - 60).since == NOW - 10
    # its record gone: the offline record, if any, says since when
    assert verdict(session) == Verdict(False, "cp_b", None)
    assert verdict(session, NOW - 30) == Verdict(False, "cp_b", NOW - 30)


def test_without_a_session_the_offline_record_decides() -> None:
    assert verdict(None, NOW - 30, cp_b=NOW) == Verdict(False, None, NOW - 30)
    assert verdict(None) == Verdict(False, None, None)  # not judged yet
    # this replica's own record without a local session: about to be released
    assert verdict(SessionRecord(KEY, "cp_a", NOW - 5), NOW - 1, cp_a=NOW) == Verdict(
        False, None, NOW - 1
    )


def test_expiry_needs_a_known_offline_time_older_than_the_age() -> None:
    assert Verdict(False, None, NOW - 61).expired(NOW, 60)
    assert not Verdict(False, None, NOW - 60).expired(NOW, 60)
    assert not Verdict(False, None, None).expired(NOW, 60)
    assert not Verdict(True, "cp_b", NOW - 1000).expired(NOW, 60)


def test_orphans_are_the_sessions_of_dead_or_vanished_replicas() -> None:
    sessions = [
        SessionRecord(("default", "live"), "cp_b", NOW - 100),
        SessionRecord(("default", "dead"), "cp_c", NOW - 100),
        SessionRecord(("default", "mine"), "cp_a", NOW - 100),
        SessionRecord(("default", "unknown-old"), "cp_x", NOW - DEAD_AFTER - 1),
        SessionRecord(("default", "unknown-new"), "cp_y", NOW - 1),
    ]
    instances = {
        "cp_a": instance("cp_a", NOW - 100),  # this replica is never judged by itself
        "cp_b": instance("cp_b", NOW - 1),
        "cp_c": instance("cp_c", NOW - 40),
    }
    found = orphaned(sessions, instances, now=NOW, dead_after=DEAD_AFTER, self_id="cp_a")
    assert [(o.record.key[1], o.since) for o in found] == [
        ("dead", NOW - 40),
        ("unknown-old", NOW),
    ]


def test_departed_replicas_are_dead_and_hold_nothing() -> None:
    instances = {
        "cp_a": instance("cp_a", NOW - 100),
        "cp_b": instance("cp_b", NOW - 100),
        "cp_c": instance("cp_c", NOW - 100),
        "cp_d": instance("cp_d", NOW),
    }
    sessions = [SessionRecord(KEY, "cp_c", NOW - 200)]
    gone = departed(instances, sessions, now=NOW, dead_after=DEAD_AFTER, self_id="cp_a")
    assert gone == ["cp_b"]


def test_a_replica_is_dead_after_three_heartbeat_intervals() -> None:
    assert default_dead_after(5.0) == 15.0
    assert instance("x", NOW - 15).live(NOW, 15)
    assert not instance("x", NOW - 15.01).live(NOW, 15)
