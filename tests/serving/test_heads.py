"""The pending-head bookkeeping: completion, deadlines, and who is dropped past the caps."""

from __future__ import annotations

import pytest

from snekbox.serving.heads import PendingHead, PendingHeads, head_length


def test_a_blank_line_completes_the_head() -> None:
    head = PendingHead("conn", "1.2.3.4", deadline=10.0)
    assert not head.feed(b"GET / HTTP/1.1\r\nHost: x\r")
    assert head.feed(b"\n\r\n{body")
    assert head_length(head.data) == len(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")


def test_a_blank_line_split_over_chunks_is_found() -> None:
    head = PendingHead("conn", "c", deadline=1.0)
    for byte in b"GET / HTTP/1.1\r\n\r":
        assert not head.feed(bytes([byte]))
    assert head.feed(b"\n")


def test_bare_line_feeds_end_the_head_so_the_parser_answers_them() -> None:
    assert PendingHead("conn", "c", 1.0).feed(b"GET / HTTP/1.1\nHost: x\n\n")


def test_empty_lines_before_the_request_line_are_dropped() -> None:
    head = PendingHead("conn", "c", 1.0)
    assert not head.feed(b"\r\n\r\n")
    assert head.data == b""
    assert head.feed(b"GET / HTTP/1.1\r\n\r\n")
    assert head.data.startswith(b"GET ")


def test_expired_heads_come_out_in_deadline_order() -> None:
    heads: PendingHeads[str] = PendingHeads(max_total=10, max_per_client=10)
    for i, name in enumerate("abc"):
        heads.add(name, "client", deadline=float(i))
    assert heads.next_deadline() == 0.0
    assert [h.conn for h in heads.pop_expired(1.0)] == ["a", "b"]
    assert len(heads) == 1 and heads.next_deadline() == 2.0


def test_a_client_past_its_cap_loses_its_oldest_head() -> None:
    heads: PendingHeads[str] = PendingHeads(max_total=10, max_per_client=2)
    heads.add("other", "10.0.0.2", 0.0)
    heads.add("a1", "10.0.0.1", 1.0)
    heads.add("a2", "10.0.0.1", 2.0)
    _, dropped = heads.add("a3", "10.0.0.1", 3.0)
    assert [h.conn for h in dropped] == ["a1"]
    assert heads.get("other") is not None and heads.get("a1") is None and len(heads) == 3


def test_past_the_total_cap_the_oldest_head_of_anyone_is_dropped() -> None:
    heads: PendingHeads[str] = PendingHeads(max_total=2, max_per_client=5)
    heads.add("x", "1", 0.0)
    heads.add("y", "2", 1.0)
    _, dropped = heads.add("z", "3", 2.0)
    assert [h.conn for h in dropped] == ["x"]
    assert len(heads) == 2


def test_removing_a_head_frees_its_client_share() -> None:
    heads: PendingHeads[str] = PendingHeads(max_total=5, max_per_client=1)
    heads.add("a", "c", 0.0)
    assert heads.remove("a") is not None
    assert heads.remove("a") is None
    _, dropped = heads.add("b", "c", 1.0)
    assert dropped == []


def test_a_stopping_worker_caps_every_deadline() -> None:
    heads: PendingHeads[str] = PendingHeads(max_total=5, max_per_client=5)
    heads.add("a", "c", 5.0)
    heads.add("b", "c", 9.0)
    heads.cap_deadlines(6.0)
    assert [h.conn for h in heads.pop_expired(6.0)] == ["a", "b"]


def test_caps_below_one_are_refused() -> None:
    with pytest.raises(ValueError):
        PendingHeads(max_total=0, max_per_client=1)
