"""The EventLog contract tests of tests/events, run through the bridge (``backend`` fixture)."""

from __future__ import annotations

from test_eventlog_contract import (
    test_auto_create_topics_on_produce,
    test_fetch_from_offset_earliest_and_latest,
    test_fetch_respects_max_bytes_but_returns_at_least_one_record,
    test_group_members_share_partitions_without_duplicates,
    test_group_offsets_commit_and_read_back,
    test_keyless_records_stick_to_one_partition_per_call,
    test_keys_headers_and_timestamps_round_trip,
    test_long_poll_fetch_wakes_on_produce,
    test_offsets_for_time,
    test_offsets_for_time_with_out_of_order_timestamps,
    test_produce_assigns_increasing_offsets_per_partition,
    test_same_key_lands_in_the_murmur2_partition,
    test_too_large_record_is_refused_whole,
    test_topic_admin,
    test_unknown_topic_and_partition,
    test_weaker_acks_still_store_in_order,
)

__all__ = [
    "test_auto_create_topics_on_produce",
    "test_fetch_from_offset_earliest_and_latest",
    "test_fetch_respects_max_bytes_but_returns_at_least_one_record",
    "test_group_members_share_partitions_without_duplicates",
    "test_group_offsets_commit_and_read_back",
    "test_keyless_records_stick_to_one_partition_per_call",
    "test_keys_headers_and_timestamps_round_trip",
    "test_long_poll_fetch_wakes_on_produce",
    "test_offsets_for_time",
    "test_offsets_for_time_with_out_of_order_timestamps",
    "test_produce_assigns_increasing_offsets_per_partition",
    "test_same_key_lands_in_the_murmur2_partition",
    "test_too_large_record_is_refused_whole",
    "test_topic_admin",
    "test_unknown_topic_and_partition",
    "test_weaker_acks_still_store_in_order",
]
