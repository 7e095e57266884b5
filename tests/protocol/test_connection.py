"""Tests of magpie.protocol.connection: the table of every (role, state, packet, direction)
and whole conversations between a server and a client Connection piping bytes."""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest

from magpie.errors import (
    FrameTooLarge,
    LocalProtocolError,
    MalformedPacket,
    RemoteProtocolError,
    UnexpectedPacket,
)
from magpie.protocol.codec import encode
from magpie.protocol.connection import (
    ALLOWED,
    INITIAL_VERSION,
    TRANSITIONS,
    Connection,
    Role,
    State,
)
from magpie.protocol.crypto import (
    KeyPair,
    SessionCipher,
    derive_aes_key,
    iv_from_salt,
    new_salt,
    open_recv,
    open_send,
    seal_recv,
    seal_send,
)
from magpie.protocol.limits import Limits
from magpie.protocol.packets import (
    LATEST_VERSION,
    Connack,
    Connect,
    Disconnect,
    Flags,
    Packet,
    PacketType,
    Ping,
    Pong,
    ReasonCode,
    Recv,
    Recvack,
    Send,
    Sendack,
    Setting,
    Sub,
    Suback,
)

SERVER, CLIENT = Role.SERVER, Role.CLIENT
T, S = PacketType, State

CONNECT = Connect(2, 1, "d" * 32 + "W", "u1", "token", 1_700_000_000_000, "k" * 44)
CONNACK = Connack(-5, ReasonCode.SUCCESS, "k" * 44, "abcdef1234567890")
SEND = Send(Setting.NONE, 1, "cmn-1", "u2", 1, "m" * 32, b"cGF5", flags=Flags.RED_DOT)
RECV = Recv(Setting.NONE, "m" * 32, "u2", "u1", 1, "cmn-2", 8, 8, 1_700_000_000, b"cGF5")
SAMPLES: dict[PacketType, Packet] = {
    T.CONNECT: CONNECT,
    T.CONNACK: CONNACK,
    T.SEND: SEND,
    T.SENDACK: Sendack(7, 1, 7, ReasonCode.SUCCESS),
    T.RECV: RECV,
    T.RECVACK: Recvack(8, 8),
    T.PING: Ping(),
    T.PONG: Pong(),
    T.DISCONNECT: Disconnect(ReasonCode.CONNECT_KICK, "login in other device"),
    T.SUB: Sub(Setting.NONE, "", "room1", 7, 0, ""),
    T.SUBACK: Suback("", "room1", 7, 0, ReasonCode.SUCCESS),
}

# Written out by hand (not derived from the module) so that the table in the module is
# checked, not restated: (sender, state, packet type) -> next state (spec §1.3, §3).
EXPECTED: dict[tuple[Role, State, PacketType], State] = {
    (CLIENT, S.AWAIT_CONNECT, T.CONNECT): S.AWAIT_CONNACK,
    (SERVER, S.AWAIT_CONNACK, T.CONNACK): S.ESTABLISHED,
    (CLIENT, S.ESTABLISHED, T.SEND): S.ESTABLISHED,
    (CLIENT, S.ESTABLISHED, T.RECVACK): S.ESTABLISHED,
    (CLIENT, S.ESTABLISHED, T.PING): S.ESTABLISHED,
    (CLIENT, S.ESTABLISHED, T.SUB): S.ESTABLISHED,
    (SERVER, S.ESTABLISHED, T.SENDACK): S.ESTABLISHED,
    (SERVER, S.ESTABLISHED, T.RECV): S.ESTABLISHED,
    (SERVER, S.ESTABLISHED, T.PONG): S.ESTABLISHED,
    (SERVER, S.ESTABLISHED, T.SUBACK): S.ESTABLISHED,
    (SERVER, S.ESTABLISHED, T.DISCONNECT): S.CLOSED,
}


def peer_of(role: Role) -> Role:
    return CLIENT if role is SERVER else SERVER


def connection_in(role: Role, state: State, limits: Limits | None = None) -> Connection:
    """A Connection brought to ``state`` through its public API only."""
    conn = Connection(role) if limits is None else Connection(role, limits)
    steps = [S.AWAIT_CONNACK, S.ESTABLISHED, S.CLOSED]
    packets: list[Packet] = [CONNECT, CONNACK, SAMPLES[T.DISCONNECT]]
    for step, packet in zip(steps, packets, strict=True):
        if conn.state is state:
            break
        if isinstance(packet, Connect) == (role is CLIENT):
            conn.send(packet)
        else:
            assert conn.receive_data(encode(packet, conn.version)) == [packet]
        assert conn.state is step
    assert conn.state is state
    return conn


COMBINATIONS = list(itertools.product(Role, State, PacketType, ["send", "receive"]))


@pytest.mark.parametrize(("role", "state", "kind", "direction"), COMBINATIONS)
def test_every_combination(role: Role, state: State, kind: PacketType, direction: str) -> None:
    conn = connection_in(role, state)
    packet = SAMPLES[kind]
    sender = role if direction == "send" else peer_of(role)
    expected = EXPECTED.get((sender, state, kind))
    act = conn.send if direction == "send" else conn.receive_data
    arg: Packet | bytes = packet if direction == "send" else encode(packet, 2)
    if state is S.CLOSED:
        with pytest.raises(LocalProtocolError):
            act(arg)  # type: ignore[arg-type]
    elif expected is not None:
        result = act(arg)  # type: ignore[arg-type]
        assert result == (encode(packet, 2) if direction == "send" else [packet])
        assert conn.state is expected
    elif direction == "send":
        with pytest.raises(LocalProtocolError):
            conn.send(packet)
        assert conn.state is state and not conn.failed
    else:
        with pytest.raises(UnexpectedPacket) as info:
            conn.receive_data(encode(packet, 2))
        unauthenticated = role is SERVER and state in (S.AWAIT_CONNECT, S.AWAIT_CONNACK)
        reason = ReasonCode.AUTH_FAIL if unauthenticated else ReasonCode.PAYLOAD_DECODE_ERROR
        assert info.value.reason == reason
        assert conn.state is state and conn.failed


def test_combinations_cover_the_whole_space() -> None:
    assert len(COMBINATIONS) == 2 * 4 * 11 * 2


def test_module_tables_match_the_spec() -> None:
    assert dict(TRANSITIONS) == EXPECTED
    assert ALLOWED[CLIENT] == {T.CONNECT, T.SEND, T.RECVACK, T.PING, T.SUB}
    assert ALLOWED[SERVER] == {T.CONNACK, T.SENDACK, T.RECV, T.PONG, T.DISCONNECT, T.SUBACK}
    assert not ALLOWED[CLIENT] & ALLOWED[SERVER]
    assert ALLOWED[CLIENT] | ALLOWED[SERVER] == set(PacketType)


def test_module_tables_are_immutable() -> None:
    with pytest.raises(TypeError):
        TRANSITIONS[CLIENT, S.CLOSED, T.PING] = S.ESTABLISHED  # type: ignore[index]
    with pytest.raises(TypeError):
        ALLOWED[SERVER] = frozenset()  # type: ignore[index]
    assert isinstance(ALLOWED[SERVER], frozenset)


# --- CONNACK failure, PING, version negotiation -----------------------------------------


@pytest.mark.parametrize("reason", [ReasonCode.AUTH_FAIL, ReasonCode.CLIENT_KEY_IS_EMPTY, 0])
def test_failing_connack_closes_both_ends(reason: int) -> None:
    server = connection_in(SERVER, S.AWAIT_CONNACK)
    client = connection_in(CLIENT, S.AWAIT_CONNACK)
    data = server.send(Connack(0, reason, "", ""))
    assert server.state is S.CLOSED
    assert client.receive_data(data) == [Connack(0, reason, "", "")]
    assert client.state is S.CLOSED


def test_connack_is_sent_once() -> None:
    server = connection_in(SERVER, S.ESTABLISHED)
    with pytest.raises(LocalProtocolError):
        server.send(CONNACK)


def test_server_never_sends_ping() -> None:
    server = connection_in(SERVER, S.ESTABLISHED)
    with pytest.raises(LocalProtocolError, match="§3"):
        server.send(Ping())


def test_second_connect_is_refused() -> None:
    server = connection_in(SERVER, S.ESTABLISHED)
    with pytest.raises(UnexpectedPacket) as info:
        server.receive_data(encode(CONNECT))
    assert info.value.reason == ReasonCode.PAYLOAD_DECODE_ERROR


@pytest.mark.parametrize(("sent", "adopted"), [(1, 1), (2, 2), (3, 3), (6, 6), (7, 6), (200, 6)])
def test_server_adopts_min_of_client_and_latest_version(sent: int, adopted: int) -> None:
    server = Connection(SERVER)
    assert server.version == INITIAL_VERSION == 2
    server.receive_data(encode(replace(CONNECT, version=sent)))
    assert server.version == adopted
    connack = replace(CONNACK, server_version=LATEST_VERSION)
    assert server.send(connack) == encode(connack, adopted)


def test_packets_after_connect_parse_at_the_clients_version() -> None:
    # A v3 SEND carries expire (spec §1.4); parsing it at v2 would misread the body.
    server = Connection(SERVER)
    send = replace(SEND, expire=60)
    assert server.receive_data(encode(replace(CONNECT, version=3))) == [replace(CONNECT, version=3)]
    server.send(CONNACK)
    assert server.receive_data(encode(send, 3)) == [send]


def test_send_before_connack_is_refused_even_in_the_connect_chunk() -> None:
    server = Connection(SERVER)
    with pytest.raises(UnexpectedPacket) as info:
        server.receive_data(encode(CONNECT) + encode(SAMPLES[T.SEND]))
    assert info.value.reason == ReasonCode.AUTH_FAIL


@pytest.mark.parametrize(("sent", "server_version", "used"), [(2, 0, 2), (6, 4, 4), (4, 6, 4)])
def test_client_uses_its_version_or_a_lower_server_version(
    sent: int, server_version: int, used: int
) -> None:
    client = Connection(CLIENT)
    client.send(replace(CONNECT, version=sent))
    assert client.version == sent
    connack = replace(CONNACK, server_version=server_version)
    client.receive_data(encode(connack, sent))
    assert client.version == used
    recv = replace(RECV, expire=5 if used >= 3 else 0)
    assert client.receive_data(encode(recv, used)) == [recv]
    assert client.send(SAMPLES[T.RECVACK]) == encode(SAMPLES[T.RECVACK], used)


@pytest.mark.parametrize("version", [0, -1, LATEST_VERSION + 1])
def test_client_cannot_offer_a_version_it_does_not_speak(version: int) -> None:
    client = Connection(CLIENT)
    with pytest.raises(LocalProtocolError):
        client.send(replace(CONNECT, version=version))
    assert client.state is S.AWAIT_CONNECT and client.version == INITIAL_VERSION


# --- the peer's faults, our faults ----------------------------------------------------------


def test_garbage_first_is_malformed_and_fails_the_connection() -> None:
    server = Connection(SERVER)
    with pytest.raises(MalformedPacket):
        server.receive_data(b"\xc0\x01\x00")  # type 12 (EVENT) is not a packet here
    assert server.failed
    with pytest.raises(MalformedPacket):
        server.receive_data(encode(CONNECT))


def test_frame_over_the_limit_is_refused() -> None:
    limits = Limits(max_remaining_length=150)
    server = connection_in(SERVER, S.ESTABLISHED, limits)
    ok = replace(SEND, payload=b"x" * 10)
    assert server.receive_data(encode(ok)) == [ok]
    big = replace(SEND, payload=b"x" * 150)
    with pytest.raises(FrameTooLarge):
        server.receive_data(encode(big))


def test_after_the_peers_error_only_a_closing_packet_may_be_sent() -> None:
    server = connection_in(SERVER, S.ESTABLISHED)
    with pytest.raises(UnexpectedPacket):
        server.receive_data(encode(CONNACK))
    with pytest.raises(UnexpectedPacket) as again:
        server.receive_data(encode(SAMPLES[T.PING]))
    assert again.value.reason == ReasonCode.PAYLOAD_DECODE_ERROR
    with pytest.raises(LocalProtocolError):
        server.send(SAMPLES[T.SENDACK])
    server.send(Disconnect(ReasonCode.PAYLOAD_DECODE_ERROR, "protocol error"))
    assert server.state is S.CLOSED


def test_unauthenticated_peer_error_can_be_answered_with_a_failing_connack() -> None:
    server = connection_in(SERVER, S.AWAIT_CONNACK)
    with pytest.raises(UnexpectedPacket) as info:
        server.receive_data(encode(SAMPLES[T.SEND]))
    assert info.value.reason == ReasonCode.AUTH_FAIL
    with pytest.raises(LocalProtocolError):
        server.send(CONNACK)
    server.send(Connack(0, info.value.reason, "", ""))
    assert server.state is S.CLOSED


def test_packets_after_disconnect_in_the_same_chunk_are_unexpected() -> None:
    client = connection_in(CLIENT, S.ESTABLISHED)
    with pytest.raises(UnexpectedPacket):
        client.receive_data(encode(SAMPLES[T.DISCONNECT]) + encode(SAMPLES[T.PONG]))
    assert client.state is S.CLOSED


def test_several_packets_in_one_chunk_and_one_packet_in_many() -> None:
    client = connection_in(CLIENT, S.ESTABLISHED)
    kinds = [T.RECV, T.PONG, T.SENDACK, T.SUBACK, T.RECV]
    data = b"".join(encode(SAMPLES[k]) for k in kinds)
    assert client.receive_data(data) == [SAMPLES[k] for k in kinds]
    server = Connection(SERVER)
    got = [p for byte in encode(CONNECT) for p in server.receive_data(bytes([byte]))]
    assert got == [CONNECT] and server.state is S.AWAIT_CONNACK


def test_a_refused_or_unencodable_send_changes_nothing() -> None:
    client = Connection(CLIENT)
    with pytest.raises(LocalProtocolError):
        client.send(replace(CONNECT, uid="u" * 40_000))  # over max_string
    assert client.state is S.AWAIT_CONNECT
    with pytest.raises(LocalProtocolError, match="not a packet"):
        client.send(object())  # type: ignore[arg-type]
    assert client.state is S.AWAIT_CONNECT


def test_errors_are_remote_or_local_as_documented() -> None:
    assert issubclass(UnexpectedPacket, RemoteProtocolError)
    assert not issubclass(LocalProtocolError, RemoteProtocolError)


# --- a whole conversation -------------------------------------------------------------------


def test_full_conversation_between_server_and_client() -> None:
    server, client = Connection(SERVER), Connection(CLIENT)
    client_pair, server_pair, salt = KeyPair.generate(), KeyPair.generate(), new_salt()

    def to_server(packet: Packet) -> list[Packet]:
        return server.receive_data(client.send(packet))

    def to_client(packet: Packet) -> list[Packet]:
        return client.receive_data(server.send(packet))

    # Handshake (spec §2.1).
    [connect] = to_server(replace(CONNECT, client_key=client_pair.public_b64))
    assert isinstance(connect, Connect)
    server_cipher = SessionCipher(derive_aes_key(server_pair, connect.client_key), salt.encode())
    [connack] = to_client(Connack(-5, ReasonCode.SUCCESS, server_pair.public_b64, salt))
    assert isinstance(connack, Connack)
    key = derive_aes_key(client_pair, connack.server_key)
    client_cipher = SessionCipher(key, iv_from_salt(connack.salt))
    assert server.state is client.state is S.ESTABLISHED

    # SEND -> SENDACK, RECV -> RECVACK, with real crypto (spec §2.2, §2.3).
    plain = '{"content":"你好","type":1}'.encode()
    [send] = to_server(seal_send(client_cipher, replace(SEND, payload=plain)))
    assert isinstance(send, Send) and open_send(server_cipher, send) == plain
    assert to_client(Sendack(1, send.client_seq, 1, ReasonCode.SUCCESS)) == [
        Sendack(1, 1, 1, ReasonCode.SUCCESS)
    ]
    [recv] = to_client(seal_recv(server_cipher, replace(RECV, payload=plain)))
    assert isinstance(recv, Recv) and open_recv(client_cipher, recv) == plain
    assert to_server(Recvack(recv.message_id, recv.message_seq)) == [Recvack(8, 8)]

    # Heartbeat, data-channel subscription, then a kick (spec §3).
    assert to_server(Ping()) == [Ping()]
    assert to_client(Pong()) == [Pong()]
    assert to_server(SAMPLES[T.SUB]) == [SAMPLES[T.SUB]]
    assert to_client(SAMPLES[T.SUBACK]) == [SAMPLES[T.SUBACK]]
    assert to_client(SAMPLES[T.DISCONNECT]) == [SAMPLES[T.DISCONNECT]]
    assert (server.state, client.state) == (S.CLOSED, S.CLOSED)
    for conn in (server, client):
        with pytest.raises(LocalProtocolError):
            conn.receive_data(b"\x70")
        with pytest.raises(LocalProtocolError):
            conn.send(Pong())


def test_golden_vectors_of_spec_1_7_through_both_ends() -> None:
    server, client = Connection(SERVER), Connection(CLIENT)
    server.receive_data(client.send(CONNECT))
    bob_public = "3p7bfXt9wbTTW2HC7OQ1Nz+DQ8hbeGdNrfx+FG+IK08="
    connack = server.send(Connack(-5, ReasonCode.SUCCESS, bob_public, "abcdef1234567890"))
    assert connack.hex() == (
        "2049fffffffffffffffb01002c33703762665874397762545457324843374f51314e7a2b44513868626547"
        "644e7266782b46472b494b30383d001061626364656631323334353637383930"
    )
    client.receive_data(connack)
    sub = client.send(Sub(Setting.NONE, "", "room1", 7, 0, '{"a":"1"}'))
    assert sub.hex() == "a0170000000005726f6f6d31070000097b2261223a2231227d"
    sendack = Sendack(1234567890123456789, 1, 7, ReasonCode.SUCCESS, flags=Flags.RED_DOT)
    assert server.send(sendack).hex() == "4211112210f47de98115000000010000000701"
    suback = server.send(Suback("", "room1", 7, 0, ReasonCode.SUCCESS))
    assert suback.hex() == "b00c00000005726f6f6d31070001"
    kick = server.send(Disconnect(ReasonCode.CONNECT_KICK, "login in other device"))
    assert kick.hex() == "90180c00156c6f67696e20696e206f7468657220646576696365"
    assert client.receive_data(bytes.fromhex("4211112210f47de98115000000010000000701")) == [sendack]
    client.receive_data(suback + kick)
    assert (server.state, client.state) == (S.CLOSED, S.CLOSED)
