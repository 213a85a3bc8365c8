"""The wire codec: everything it encodes decodes back; nothing malformed gets through."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sync_server.core.protocol import (
    AwarenessEntry,
    AwarenessMessage,
    ProtocolError,
    QueryAwareness,
    SyncStep1,
    SyncStep2,
    SyncUpdate,
    TandemMessage,
    awareness_holds_only,
    decode_message,
    encode_awareness,
    encode_awareness_entry,
    encode_awareness_update,
    encode_query_awareness,
    encode_sync_step1,
    encode_sync_step2,
    encode_tandem,
    encode_update,
    varuint,
    varuint_at,
)

payloads = st.binary(max_size=300)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**31), 2**31) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=10,
)


@given(payloads)
def test_sync_messages_round_trip(data: bytes) -> None:
    assert decode_message(encode_sync_step1(data)) == SyncStep1(data)
    assert decode_message(encode_sync_step2(data)) == SyncStep2(data)
    assert decode_message(encode_update(data)) == SyncUpdate(data)


@given(
    st.lists(
        st.builds(
            AwarenessEntry,
            st.integers(0, 2**53 - 1),
            st.integers(0, 2**32),
            json_values,
        ),
        max_size=5,
    )
)
def test_awareness_round_trips(entries: list[AwarenessEntry]) -> None:
    update = encode_awareness_update(entries)
    msg = decode_message(encode_awareness(update))
    assert isinstance(msg, AwarenessMessage)
    assert list(msg.entries) == entries


def test_query_awareness_and_tandem_messages_decode() -> None:
    assert decode_message(encode_query_awareness()) == QueryAwareness()
    assert decode_message(encode_tandem({"type": "ack", "n": 3})) == TandemMessage(
        {"type": "ack", "n": 3}
    )


@given(payloads, st.data())
def test_any_truncation_of_a_valid_message_is_rejected(data: bytes, draw) -> None:
    frame = draw.draw(
        st.sampled_from([encode_sync_step1(data), encode_update(data), encode_sync_step2(data)])
    )
    cut = draw.draw(st.integers(0, len(frame) - 1))
    with pytest.raises(ProtocolError):
        decode_message(frame[:cut])


@given(st.binary(max_size=200))
def test_random_bytes_either_decode_or_raise_protocol_error(frame: bytes) -> None:
    with contextlib.suppress(ProtocolError):
        decode_message(frame)


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (b"", "truncated varint"),
        (b"\x00", "truncated varint"),
        (b"\x00\x02\x05ab", "runs past the end"),
        (b"\x00\x07\x00", "unknown sync message type 7"),
        (b"\x09", "unknown message type 9"),
        (b"\x02\x00\x00", "sent by the server only"),
        (encode_update(b"ab") + b"x", "unexpected bytes"),
        (b"\x00\x00" + b"\xff" * 12, "wider than 53 bits"),
        (bytes([1]) + varuint(3) + b"\x05\x01\x00", "claims 5 entries"),
        (b"\x64" + varuint(3) + b"[1]", "JSON object"),
    ],
)
def test_malformed_frames_name_what_is_wrong(frame: bytes, reason: str) -> None:
    with pytest.raises(ProtocolError, match=reason):
        decode_message(frame)


def test_text_frames_are_refused() -> None:
    with pytest.raises(ProtocolError, match="binary"):
        decode_message("hello")  # type: ignore[arg-type]


presence_states = st.one_of(
    st.none(),
    st.fixed_dictionaries({"viewing": st.text(max_size=300)}),  # some relays pass 127 bytes
)


@given(
    relay=st.lists(
        st.tuples(st.integers(0, 2**32), st.integers(0, 2**53 - 2), presence_states),
        min_size=2,
        max_size=40,
        unique_by=lambda e: e[0],
    )
)
def test_a_relay_is_known_in_every_senders_echo_and_in_nothing_else(relay) -> None:
    """Each client in a relay sends back the other entries (its own is no news to it): an
    echo made only of states the room holds is known without decoding, and no frame that
    differs from one, or is cut short, is."""
    entries = [AwarenessEntry(c, clock, state) for c, clock, state in relay]
    held = {e.client_id: encode_awareness_entry(e) for e in entries if e.state is not None}
    for i in range(len(entries)):
        others = entries[:i] + entries[i + 1 :]
        echo = encode_awareness(encode_awareness_update(others))
        assert awareness_holds_only(echo, held) == all(e.state is not None for e in others)
        newer = [AwarenessEntry(e.client_id, e.clock + 1, e.state) for e in others[:1]]
        changed = encode_awareness(encode_awareness_update(newer + others[1:]))
        assert not awareness_holds_only(changed, held)
        cut = encode_awareness(encode_awareness_update(others)[:-1])
        assert not awareness_holds_only(cut, held)


@given(st.binary(max_size=200))
def test_any_bytes_are_judged_without_raising(frame) -> None:
    held = {7: encode_awareness_entry(AwarenessEntry(7, 1, {"viewing": "t1"}))}
    assert isinstance(awareness_holds_only(frame, held), bool)  # and never raises


def _lib0_varuint(n: int) -> bytes:
    """lib0's writeVarUint, written out independently of the codec under test."""
    out = bytearray()
    while n > 0x7F:
        out.append(0x80 | (n & 0x7F))
        n >>= 7
    out.append(n)
    return bytes(out)


@given(
    st.integers(0, 2**53 - 1),
    st.binary(max_size=3),
    st.binary(max_size=3),
)
def test_a_varuint_of_any_width_is_read_back_wherever_it_sits(
    n: int, before: bytes, after: bytes
) -> None:
    """Every width (the 1- and 2-byte fast paths, and 3-8 bytes: clocks, client ids),
    at any offset, followed by anything; cut short anywhere, it is refused."""
    encoded = _lib0_varuint(n)
    buf = before + encoded + after
    assert varuint_at(buf, len(before)) == (n, len(before) + len(encoded))
    assert varuint_at(bytearray(buf), len(before)) == (n, len(before) + len(encoded))  # type: ignore[arg-type]
    for cut in range(len(encoded)):
        with pytest.raises(ProtocolError, match="truncated varint"):
            varuint_at(before + encoded[:cut], len(before))
    assert varuint(n) == encoded


def test_a_varuint_past_53_bits_or_padded_past_9_bytes_is_refused() -> None:
    with pytest.raises(ProtocolError, match="53 bits"):
        varuint_at(_lib0_varuint(2**53), 0)
    with pytest.raises(ProtocolError, match="53 bits"):
        varuint_at(b"\x80" * 9 + b"\x01", 0)
    with pytest.raises(ProtocolError, match="53 bits"):
        varuint_at(b"\x80" * 8_000_000, 0)
