"""One RECV sealed for many connections, and the native AES-CBC session beside its reference.

``RecvSealer.frame(cipher, version)`` must give exactly ``encode(seal_recv(cipher, recv),
version)``; the native ``_cbc.Cbc`` must give exactly what the pure-Python ``_CbcChain`` gives,
call after call (both rewind to the IV before every message). Every property runs with both
implementations where the native one was built.
"""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from magpie.errors import LocalProtocolError
from magpie.protocol import crypto
from magpie.protocol.codec import encode
from magpie.protocol.connection import Connection, Role
from magpie.protocol.crypto import RecvSealer, SessionCipher, open_recv, seal_recv
from magpie.protocol.limits import Limits
from magpie.protocol.packets import Connack, Connect, Flags, Recv, Setting
from tests.protocol.test_crypto import (
    IMPLEMENTATIONS,
    IV,
    KEY,
    PLAIN,
    RECV_HEX,
    NativeCbc,
    plain_recv,
    reference_encrypt,
    session,
)

PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
keys = st.binary(min_size=16, max_size=16)
text = st.text(max_size=40)


@pytest.fixture(params=sorted(IMPLEMENTATIONS))
def backend(request: pytest.FixtureRequest) -> Iterator[str]:
    """Every SessionCipher of the test uses this implementation."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(crypto, "_CBC", IMPLEMENTATIONS[request.param])
        yield request.param


def test_the_native_session_was_built() -> None:
    if NativeCbc is None:
        pytest.skip("magpie.protocol._cbc was not built (no C compiler or OpenSSL headers)")
    assert crypto.CBC_BACKEND == "native"
    assert crypto._CBC is NativeCbc


# --- RecvSealer ----------------------------------------------------------------------------


def test_sealer_gives_the_golden_recv_bytes(backend: str) -> None:
    cipher = SessionCipher(KEY, IV)
    assert RecvSealer(plain_recv()).frame(cipher, 2).hex() == RECV_HEX


@st.composite
def recvs(draw: st.DrawFn) -> Recv:
    setting = Setting(draw(st.integers(0, 0xFF)))  # stream and topic bits included
    return Recv(
        setting,
        "",
        draw(text),
        draw(text),
        draw(st.integers(0, 0xFF)),
        draw(text),
        draw(st.integers(-(2**63), 2**63 - 1)),
        draw(st.integers(0, 2**32 - 1)),
        draw(st.integers(-(2**31), 2**31 - 1)),
        draw(st.binary(max_size=200)),
        Flags(draw(st.integers(0, 15))),
        draw(st.integers(0, 2**32 - 1)),
        draw(text),
        draw(st.integers(0, 2**32 - 1)),
        draw(st.integers(0, 0xFF)),
        draw(text),
    )


@PROPERTY
@given(recv=recvs(), key=keys, iv=keys, versions=st.lists(st.integers(1, 7), min_size=1))
def test_sealer_equals_seal_then_encode(
    recv: Recv, key: bytes, iv: bytes, versions: list[int]
) -> None:
    sealer = RecvSealer(recv)
    for implementation in IMPLEMENTATIONS:
        cipher = session(key, iv, implementation)
        for version in versions:  # several versions share the sealer, interleaved
            frame = sealer.frame(cipher, version)
            assert frame == encode(seal_recv(cipher, recv), version)
            assert frame == sealer.frame(cipher, version)


def test_sealed_frame_opens_at_the_client(backend: str) -> None:
    server = Connection(Role.SERVER)
    client = Connection(Role.CLIENT)
    server.receive_data(client.send(Connect(4, 1, "d", "u", "t", 0, "k")))
    client.receive_data(server.send(Connack(0, 1, "k", "s" * 16, server_version=4)))
    cipher = SessionCipher(KEY, IV)
    sealer = RecvSealer(plain_recv(b"x" * 1000))
    (got,) = client.receive_data(server.send_sealed_recv(sealer, cipher))
    assert isinstance(got, Recv)
    assert open_recv(cipher, got) == b"x" * 1000


def test_send_sealed_recv_refuses_what_send_refuses() -> None:
    cipher = SessionCipher(KEY, IV)
    sealer = RecvSealer(plain_recv())
    with pytest.raises(LocalProtocolError):
        Connection(Role.SERVER).send_sealed_recv(sealer, cipher)  # before the handshake
    with pytest.raises(LocalProtocolError):
        Connection(Role.CLIENT).send_sealed_recv(sealer, cipher)  # a client sends no RECV


def test_sealer_refuses_fields_that_cannot_be_encoded() -> None:
    cipher = SessionCipher(KEY, IV)
    with pytest.raises(LocalProtocolError):
        RecvSealer(dataclasses.replace(plain_recv(), from_uid="\ud800"))
    sealer = RecvSealer(plain_recv(b"x" * 100), Limits(max_payload=100))
    with pytest.raises(LocalProtocolError):  # the wire payload is longer than the plaintext
        sealer.frame(cipher, 2)


# --- the native session beside the reference ----------------------------------------------


def _both(key: bytes, iv: bytes) -> list[crypto._Cbc]:
    return [make(key, iv) for make in IMPLEMENTATIONS.values()]


@PROPERTY
@given(key=keys, iv=keys, plains=st.lists(st.binary(max_size=100), min_size=1, max_size=5))
def test_implementations_agree_call_after_call(key: bytes, iv: bytes, plains: list[bytes]) -> None:
    sessions = _both(key, iv)
    for plain in plains:
        encrypted = {bytes(s.encrypt(plain)) for s in sessions}
        assert encrypted == {base64.b64decode(reference_encrypt(key, iv, plain))}
        (raw,) = encrypted
        padded = plain + crypto._PADS[len(plain) % 16]  # decrypt leaves the padding on
        assert {s.decrypt(raw) for s in sessions} == {padded}
        assert len({s.msg_key(plain) for s in sessions}) == 1


@PROPERTY
@given(
    key=keys,
    iv=keys,
    parts=st.tuples(st.binary(max_size=20), st.binary(max_size=20), st.binary(max_size=300)),
    head=st.binary(max_size=60),
)
def test_implementations_seal_the_same_frames(
    key: bytes, iv: bytes, parts: tuple[bytes, bytes, bytes], head: bytes
) -> None:
    before_key, before_payload, plain = parts
    padded = plain + crypto._PADS[len(plain) % 16]
    wire_size = (len(padded) + 2) // 3 * 4
    pad = crypto._PADS[(len(head) + wire_size) % 16]
    sessions = _both(key, iv)
    for _ in range(2):
        frames = {s.seal_frame(before_key, before_payload, padded, head, pad) for s in sessions}
        assert len(frames) == 1
        (frame,) = frames
        wire = base64.b64encode(base64.b64decode(reference_encrypt(key, iv, plain)))
        assert frame.startswith(before_key) and frame.endswith(wire)
        key_text = frame[len(before_key) : len(before_key) + 32]
        assert key_text.decode() == crypto._CbcChain(key, iv).msg_key(head + wire)


@pytest.mark.skipif(NativeCbc is None, reason="magpie.protocol._cbc was not built")
def test_native_session_refuses_bad_input() -> None:
    assert NativeCbc is not None
    with pytest.raises(ValueError, match="16 bytes"):
        NativeCbc(b"k" * 15, IV)
    with pytest.raises(ValueError, match="16 bytes"):
        NativeCbc(KEY, b"i" * 17)
    session = NativeCbc(KEY, IV)
    with pytest.raises(ValueError, match="whole AES blocks"):
        session.decrypt(b"x" * 17)
    with pytest.raises(ValueError, match="whole AES blocks"):
        session.seal_frame(b"", b"", b"x" * 15, b"", b"")
    with pytest.raises(TypeError):
        session.encrypt("text")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        session.seal_frame(b"", b"")  # type: ignore[call-arg]
    assert session.decrypt(b"") == b""
    assert base64.b64encode(session.encrypt(PLAIN)) == reference_encrypt(KEY, IV, PLAIN)
