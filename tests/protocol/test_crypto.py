"""Tests of magpie.protocol.crypto against the vectors of spec §2.4 and §1.7."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import sys
import threading
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from hypothesis import given, settings
from hypothesis import strategies as st

from magpie.errors import CryptoError, LocalProtocolError, RemoteProtocolError
from magpie.protocol import crypto
from magpie.protocol.codec import decode, encode
from magpie.protocol.crypto import (
    SALT_ALPHABET,
    KeyPair,
    SessionCipher,
    derive_aes_key,
    iv_from_salt,
    new_salt,
    open_recv,
    open_send,
    recv_verify_string,
    seal_recv,
    seal_send,
    send_verify_string,
)
from magpie.protocol.packets import Flags, ReasonCode, Recv, Send, Setting

# --- spec §2.4 -------------------------------------------------------------------------

ALICE_PRIVATE = bytes.fromhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
BOB_PRIVATE = bytes.fromhex("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb")
ALICE_PUBLIC_B64 = "hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo="
BOB_PUBLIC_B64 = "3p7bfXt9wbTTW2HC7OQ1Nz+DQ8hbeGdNrfx+FG+IK08="
SHARED_HEX = "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"
SHARED_B64 = "Sl2dW6TOLeFyjjv0gDUPJeB+IclH0Z4zdvCbPB4WF0I="
SHARED_MD5 = "0c15fdbf4d09bc6c861ee10c50569438"
AES_KEY = b"0c15fdbf4d09bc6c"

# --- spec §1.7 -------------------------------------------------------------------------

KEY = b"1234567890abcdef"
IV = b"abcdef1234567890"
PLAIN = b'{"content":"hello","type":1}'
WIRE = b"aK13BUGJKW08BDUNpShD+bOn0weyKBBxm1XIylajT0Q="
SEND_MSG_KEY = "1bd68ae6176df23bf304adac5344c373"
RECV_MSG_KEY = "9526787a80b5e8c565cadd2bd896c830"
SEND_HEX = (
    "325f00000000010005636d6e2d31000275320100203162643638616536313736646632336266333034616461"
    "633533343463333733614b31334255474a4b5730384244554e705368442b624f6e307765794b4242786d3158"
    "49796c616a5430513d"
)
RECV_HEX = (
    "526f00002039353236373837613830623565386335363563616464326264383936633833300002753200027531"
    "010005636d6e2d32112210f47de98116000000086553f100614b31334255474a4b5730384244554e705368442b"
    "624f6e307765794b4242786d315849796c616a5430513d"
)


def plain_send(payload: bytes = PLAIN) -> Send:
    """The §1.7 SEND before sealing (SDK 1.0.4 always sets RedDot)."""
    return Send(Setting.NONE, 1, "cmn-1", "u2", 1, "", payload, flags=Flags.RED_DOT)


def plain_recv(payload: bytes = PLAIN) -> Recv:
    """The §1.7 RECV before sealing."""
    return Recv(
        Setting.NONE, "", "u2", "u1", 1, "cmn-2", 1234567890123456790, 8, 1700000000, payload,
        flags=Flags.RED_DOT,
    )  # fmt: skip


try:
    from magpie.protocol._cbc import Cbc as NativeCbc
except ImportError:  # not built here (no compiler or OpenSSL headers): the reference only
    NativeCbc = None  # type: ignore[assignment,misc]

#: The AES-CBC session implementations: the pure-Python reference, and the native twin
#: where it was built (``magpie.protocol._cbc``).
IMPLEMENTATIONS: dict[str, Callable[[bytes, bytes], crypto._Cbc]] = {"python": crypto._CbcChain}
if NativeCbc is not None:
    IMPLEMENTATIONS["native"] = NativeCbc


def session(key: bytes, iv: bytes, implementation: str) -> SessionCipher:
    """A SessionCipher on the named implementation."""
    cipher = SessionCipher(key, iv)
    object.__setattr__(cipher, "_chain", IMPLEMENTATIONS[implementation](key, iv))
    return cipher


@pytest.fixture(params=sorted(IMPLEMENTATIONS))
def cipher(request: pytest.FixtureRequest) -> SessionCipher:
    """The §1.7 session, once per implementation."""
    return session(KEY, IV, request.param)


def reference_encrypt(key: bytes, iv: bytes, plain: bytes) -> bytes:
    """AES-128-CBC-PKCS#7 the textbook way, to check the optimised path against."""
    padder = padding.PKCS7(128).padder()
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    padded = padder.update(plain) + padder.finalize()
    return base64.b64encode(encryptor.update(padded) + encryptor.finalize())


# --- key agreement (§2.1, §2.4) ----------------------------------------------------------


def test_public_keys_are_the_rfc7748_ones_in_base64() -> None:
    assert KeyPair.from_private_bytes(ALICE_PRIVATE).public_b64 == ALICE_PUBLIC_B64
    assert KeyPair.from_private_bytes(BOB_PRIVATE).public_b64 == BOB_PUBLIC_B64


def test_shared_secret_chain_of_spec_2_4() -> None:
    alice = KeyPair.from_private_bytes(ALICE_PRIVATE)
    bob_public = crypto._peer_public_key(BOB_PUBLIC_B64)
    shared = alice.private_key.exchange(bob_public)
    assert shared.hex() == SHARED_HEX
    assert base64.b64encode(shared).decode() == SHARED_B64
    assert hashlib.md5(SHARED_B64.encode(), usedforsecurity=False).hexdigest() == SHARED_MD5


def test_derive_aes_key_vector() -> None:
    alice = KeyPair.from_private_bytes(ALICE_PRIVATE)
    assert derive_aes_key(alice, BOB_PUBLIC_B64) == AES_KEY


def test_both_ends_derive_the_same_key() -> None:
    bob = KeyPair.from_private_bytes(BOB_PRIVATE)
    assert derive_aes_key(bob, ALICE_PUBLIC_B64) == AES_KEY
    server, client = KeyPair.generate(), KeyPair.generate()
    assert server.public_b64 != client.public_b64
    key = derive_aes_key(server, client.public_b64)
    assert key == derive_aes_key(client, server.public_b64)
    assert len(key) == 16 and key.isascii()


def test_generated_public_key_is_44_chars_of_padded_base64() -> None:
    public = KeyPair.generate().public_b64
    assert len(public) == 44 and public.endswith("=")
    assert len(base64.b64decode(public, validate=True)) == 32


def test_key_pair_does_not_show_its_private_key() -> None:
    assert "private_key" not in repr(KeyPair.from_private_bytes(ALICE_PRIVATE))


def test_private_key_of_wrong_length_is_our_error() -> None:
    with pytest.raises(LocalProtocolError):
        KeyPair.from_private_bytes(b"\x01" * 31)


def test_empty_peer_key_answers_client_key_is_empty() -> None:
    with pytest.raises(CryptoError) as info:
        derive_aes_key(KeyPair.generate(), "")
    assert info.value.reason == ReasonCode.CLIENT_KEY_IS_EMPTY


@pytest.mark.parametrize(
    "peer",
    [
        "not base64!",
        "hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTm",  # bad padding
        base64.b64encode(b"\x09" * 31).decode(),  # 31 bytes
        base64.b64encode(b"\x09" * 33).decode(),  # 33 bytes
        "ÄSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo=",  # not ASCII
        base64.b64encode(bytes(32)).decode(),  # low-order point: all-zero secret
        base64.b64encode(b"\x01" + bytes(31)).decode(),  # low-order point (u = 1)
    ],
)
def test_bad_peer_key_answers_auth_fail(peer: str) -> None:
    with pytest.raises(CryptoError) as info:
        derive_aes_key(KeyPair.generate(), peer)
    assert info.value.reason == ReasonCode.AUTH_FAIL
    assert isinstance(info.value, RemoteProtocolError)


# --- salt (§2.1) -------------------------------------------------------------------------


def test_new_salt_is_16_alphanumerics_and_random() -> None:
    salts = {new_salt() for _ in range(50)}
    assert len(salts) == 50
    for salt in salts:
        assert len(salt) == 16 and set(salt) <= set(SALT_ALPHABET)


def test_alphabet_is_0_9_a_z_A_Z() -> None:
    assert len(SALT_ALPHABET) == 62 and SALT_ALPHABET.isalnum() and SALT_ALPHABET.isascii()


def test_client_keeps_the_first_16_chars_of_the_salt() -> None:
    assert iv_from_salt("abcdef1234567890") == IV
    assert iv_from_salt("abcdef1234567890EXTRA") == IV


@pytest.mark.parametrize("salt", ["", "short", "abcdef123456789é"])
def test_short_or_non_ascii_salt_is_refused(salt: str) -> None:
    with pytest.raises(CryptoError):
        iv_from_salt(salt)


# --- payload cipher (§2.2) -----------------------------------------------------------------


def test_aes_vector(cipher: SessionCipher) -> None:
    assert cipher.encrypt(PLAIN) == WIRE
    assert cipher.decrypt(WIRE) == PLAIN


def test_repeated_calls_give_the_same_bytes(cipher: SessionCipher) -> None:
    # The contexts are reused across messages (crypto._CbcChain): each must start at the IV.
    for _ in range(3):
        assert cipher.encrypt(PLAIN) == WIRE
        assert cipher.encrypt(b"x" * 33) == reference_encrypt(KEY, IV, b"x" * 33)
        assert cipher.decrypt(WIRE) == PLAIN
    assert cipher.msg_key("abc") == cipher.msg_key("abc")


def test_interleaved_ciphers_do_not_share_state() -> None:
    a, b = SessionCipher(KEY, IV), SessionCipher(AES_KEY, IV)
    assert a.encrypt(PLAIN) == WIRE
    assert b.encrypt(PLAIN) == reference_encrypt(AES_KEY, IV, PLAIN)
    assert a.encrypt(PLAIN) == WIRE


def test_cipher_is_immutable_and_compares_by_key_and_iv(cipher: SessionCipher) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        cipher.iv = b"0" * 16  # type: ignore[misc]
    assert cipher == SessionCipher(KEY, IV)
    assert "1234567890abcdef" not in repr(cipher)


@pytest.mark.parametrize(("key", "iv"), [(b"k" * 15, IV), (KEY, b"i" * 17), (b"", b"")])
def test_key_and_iv_must_be_16_bytes(key: bytes, iv: bytes) -> None:
    with pytest.raises(LocalProtocolError):
        SessionCipher(key, iv)


@pytest.mark.parametrize(
    "wire",
    [
        b"",  # nothing
        b"!!!!",  # not base64
        b"aK13BUGJKW08BDUNpShD+bOn0weyKBBxm1XIylajT0Q",  # bad base64 padding
        base64.b64encode(b"\x00" * 15),  # not whole blocks
        base64.b64encode(b"\x00" * 33),  # not whole blocks
        WIRE[:-24] + b"=",  # truncated
        base64.b64encode(b"\x00" * 16),  # decrypts to a block with bad PKCS#7 padding
    ],
)
def test_undecryptable_payload_answers_payload_decode_error(
    cipher: SessionCipher, wire: bytes
) -> None:
    with pytest.raises(CryptoError) as info:
        cipher.decrypt(wire)
    assert info.value.reason == ReasonCode.PAYLOAD_DECODE_ERROR


@pytest.mark.parametrize("size", [1, 15, 16, 17, 33])
def test_a_failed_decrypt_leaves_the_cipher_usable(cipher: SessionCipher, size: int) -> None:
    # A partial block fed to the long-lived decryptor would be buffered and shift every
    # later message: it must be refused before it gets there.
    with pytest.raises(CryptoError):
        cipher.decrypt(base64.b64encode(b"\x00" * size))
    assert cipher.decrypt(WIRE) == PLAIN
    assert cipher.encrypt(PLAIN) == WIRE


def test_wrong_key_fails_to_decrypt() -> None:
    with pytest.raises(CryptoError) as info:  # deterministic: this key gives bad padding
        SessionCipher(AES_KEY, IV).decrypt(WIRE)
    assert info.value.reason == ReasonCode.PAYLOAD_DECODE_ERROR


@settings(max_examples=200, deadline=None)
@given(plain=st.binary(max_size=600))
def test_encrypt_decrypt_round_trip(plain: bytes) -> None:
    cipher = SessionCipher(KEY, IV)
    wire = cipher.encrypt(plain)
    assert wire == reference_encrypt(KEY, IV, plain)
    assert len(base64.b64decode(wire)) == (len(plain) // 16 + 1) * 16
    assert cipher.decrypt(wire) == plain


@settings(max_examples=50, deadline=None)
@given(key=st.binary(min_size=16, max_size=16), iv=st.binary(min_size=16, max_size=16))
def test_any_key_and_iv_match_the_reference(key: bytes, iv: bytes) -> None:
    cipher = SessionCipher(key, iv)
    for plain in (b"", PLAIN, b"z" * 100):
        assert cipher.encrypt(plain) == reference_encrypt(key, iv, plain)
        assert cipher.decrypt(cipher.encrypt(plain)) == plain


def test_threads_sharing_a_cipher_get_correct_bytes(cipher: SessionCipher) -> None:
    # The chaining block is read, used and written back per call: without the lock, threads
    # switching every microsecond interleave there and produce wrong ciphertext.
    bad: list[int] = []
    barrier = threading.Barrier(4)

    def work() -> None:
        barrier.wait()
        for i in range(1000):
            if cipher.encrypt(PLAIN) != WIRE or cipher.decrypt(WIRE) != PLAIN:
                bad.append(i)

    threads = [threading.Thread(target=work) for _ in range(4)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert bad == []


# --- msgKey (§2.3, §1.7) ------------------------------------------------------------------


def test_send_verify_string_and_msg_key_vector(cipher: SessionCipher) -> None:
    wire = dataclasses.replace(plain_send(), payload=WIRE)
    assert send_verify_string(wire) == "1cmn-1u21" + WIRE.decode()
    assert cipher.msg_key(send_verify_string(wire)) == SEND_MSG_KEY


def test_recv_verify_string_and_msg_key_vector(cipher: SessionCipher) -> None:
    wire = dataclasses.replace(plain_recv(), payload=WIRE)
    assert recv_verify_string(wire) == "12345678901234567908cmn-21700000000u2u11" + WIRE.decode()
    assert cipher.msg_key(recv_verify_string(wire)) == RECV_MSG_KEY


def test_msg_key_is_md5_of_base64_of_aes(cipher: SessionCipher) -> None:
    verify = "héllo wörld"
    expected = hashlib.md5(
        reference_encrypt(KEY, IV, verify.encode()), usedforsecurity=False
    ).hexdigest()
    assert cipher.msg_key(verify) == expected


def test_verify_string_keeps_non_utf8_payload_bytes() -> None:
    send = dataclasses.replace(plain_send(), payload=b"\xff\xfe")
    assert send_verify_string(send).encode("utf-8", "surrogateescape").endswith(b"\xff\xfe")


# --- seal/open with the §1.7 packet bytes --------------------------------------------------


def test_seal_send_gives_the_golden_send_bytes(cipher: SessionCipher) -> None:
    sealed = seal_send(cipher, plain_send())
    assert sealed.payload == WIRE and sealed.msg_key == SEND_MSG_KEY
    assert encode(sealed, 2).hex() == SEND_HEX


def test_open_send_of_the_golden_send_bytes(cipher: SessionCipher) -> None:
    send = decode(bytes.fromhex(SEND_HEX), 2)
    assert isinstance(send, Send)
    assert open_send(cipher, send) == PLAIN


def test_seal_recv_gives_the_golden_recv_bytes(cipher: SessionCipher) -> None:
    sealed = seal_recv(cipher, plain_recv())
    assert sealed.payload == WIRE and sealed.msg_key == RECV_MSG_KEY
    assert encode(sealed, 2).hex() == RECV_HEX


def test_open_recv_of_the_golden_recv_bytes(cipher: SessionCipher) -> None:
    recv = decode(bytes.fromhex(RECV_HEX), 2)
    assert isinstance(recv, Recv)
    assert open_recv(cipher, recv) == PLAIN


def test_seal_keeps_every_other_field(cipher: SessionCipher) -> None:
    recv = dataclasses.replace(
        plain_recv(), flags=Flags.NO_PERSIST | Flags.SYNC_ONCE, expire=9, topic="t",
        setting=Setting.TOPIC, msg_key="ignored",
    )  # fmt: skip
    sealed = seal_recv(cipher, recv)
    assert dataclasses.replace(sealed, payload=recv.payload, msg_key="ignored") == recv
    send = dataclasses.replace(plain_send(), expire=3, topic="t", setting=Setting.TOPIC)
    sealed_send = seal_send(cipher, send)
    assert dataclasses.replace(sealed_send, payload=send.payload, msg_key="") == send


def test_server_and_client_negotiate_and_round_trip() -> None:
    server_pair, client_pair, salt = KeyPair.generate(), KeyPair.generate(), new_salt()
    server = SessionCipher(derive_aes_key(server_pair, client_pair.public_b64), salt.encode())
    client = SessionCipher(derive_aes_key(client_pair, server_pair.public_b64), iv_from_salt(salt))
    for payload in (b"", PLAIN, "中文测试".encode(), b"\x00" * 5000):
        assert open_send(server, seal_send(client, plain_send(payload))) == payload
        assert open_recv(client, seal_recv(server, plain_recv(payload))) == payload


def test_another_connection_cannot_open_the_packet(cipher: SessionCipher) -> None:
    other = SessionCipher(AES_KEY, IV)
    with pytest.raises(CryptoError) as info:
        open_recv(other, seal_recv(cipher, plain_recv()))
    assert info.value.reason == ReasonCode.MSG_KEY_ERROR


@pytest.mark.parametrize(
    "msg_key",
    [
        "",
        SEND_MSG_KEY.upper(),
        SEND_MSG_KEY[:-1] + "4",
        SEND_MSG_KEY + "0",
        "ä" * 32,  # not ASCII: compare_digest would raise TypeError
    ],
)
def test_tampered_send_msg_key_answers_msg_key_error(cipher: SessionCipher, msg_key: str) -> None:
    send = dataclasses.replace(seal_send(cipher, plain_send()), msg_key=msg_key)
    with pytest.raises(CryptoError) as info:
        open_send(cipher, send)
    assert info.value.reason == ReasonCode.MSG_KEY_ERROR


@pytest.mark.parametrize("field", ["client_seq", "client_msg_no", "channel_id", "channel_type"])
def test_changing_a_verified_send_field_breaks_the_msg_key(
    cipher: SessionCipher, field: str
) -> None:
    sealed = seal_send(cipher, plain_send())
    changed: Any = 2 if field in ("client_seq", "channel_type") else "other"
    with pytest.raises(CryptoError) as info:
        open_send(cipher, dataclasses.replace(sealed, **{field: changed}))
    assert info.value.reason == ReasonCode.MSG_KEY_ERROR


@pytest.mark.parametrize(
    "field",
    ["message_id", "message_seq", "client_msg_no", "timestamp", "from_uid", "channel_id",
     "channel_type"],
)  # fmt: skip
def test_changing_a_verified_recv_field_breaks_the_msg_key(
    cipher: SessionCipher, field: str
) -> None:
    sealed = seal_recv(cipher, plain_recv())
    changed: Any = "other" if isinstance(getattr(sealed, field), str) else 2
    with pytest.raises(CryptoError) as info:
        open_recv(cipher, dataclasses.replace(sealed, **{field: changed}))
    assert info.value.reason == ReasonCode.MSG_KEY_ERROR


def test_tampered_payload_answers_msg_key_error(cipher: SessionCipher) -> None:
    sealed = seal_send(cipher, plain_send())
    tampered = dataclasses.replace(sealed, payload=b"b" + sealed.payload[1:])
    with pytest.raises(CryptoError) as info:
        open_send(cipher, tampered)
    assert info.value.reason == ReasonCode.MSG_KEY_ERROR


@pytest.mark.parametrize("payload", [b"not base64 at all", base64.b64encode(b"\x00" * 16)])
def test_valid_msg_key_over_bad_payload_answers_payload_decode_error(
    cipher: SessionCipher, payload: bytes
) -> None:
    # A peer holding the key tags garbage: msgKey passes, decryption must not.
    send = dataclasses.replace(plain_send(), payload=payload)
    send = dataclasses.replace(send, msg_key=cipher.msg_key(send_verify_string(send)))
    with pytest.raises(CryptoError) as info:
        open_send(cipher, send)
    assert info.value.reason == ReasonCode.PAYLOAD_DECODE_ERROR
    recv = dataclasses.replace(plain_recv(), payload=payload)
    recv = dataclasses.replace(recv, msg_key=cipher.msg_key(recv_verify_string(recv)))
    with pytest.raises(CryptoError) as info:
        open_recv(cipher, recv)
    assert info.value.reason == ReasonCode.PAYLOAD_DECODE_ERROR


@settings(max_examples=100, deadline=None)
@given(
    payload=st.binary(max_size=300),
    client_msg_no=st.text(max_size=20),
    channel_id=st.text(max_size=20),
    seq=st.integers(0, 2**32 - 1),
)
def test_seal_open_round_trip(
    payload: bytes, client_msg_no: str, channel_id: str, seq: int
) -> None:
    cipher = SessionCipher(KEY, IV)
    send = Send(Setting.NONE, seq, client_msg_no, channel_id, 2, "", payload)
    assert open_send(cipher, seal_send(cipher, send)) == payload
    recv = Recv(Setting.NONE, "", "u", channel_id, 2, client_msg_no, seq, seq, 1, payload)
    assert open_recv(cipher, seal_recv(cipher, recv)) == payload


def test_unencodable_field_of_ours_is_a_local_error(cipher: SessionCipher) -> None:
    with pytest.raises(LocalProtocolError):
        seal_recv(cipher, dataclasses.replace(plain_recv(), from_uid="\ud800"))
    with pytest.raises(LocalProtocolError):
        cipher.msg_key("\ud800")
