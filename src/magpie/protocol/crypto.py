"""Session crypto of WuKongIM v2: X25519 key agreement, AES-128-CBC payloads, msgKey tags.

Reference: ``shared/spec/wukongim-v2.md`` §2 (handshake and encryption) with the vectors of
§2.4 and §1.7. Everything here is a pure function of its arguments; randomness comes only
from :mod:`secrets` (key pairs, salts).

The flow, server side::

    pair = KeyPair.generate()                            # one per connection (§2.1)
    key = derive_aes_key(pair, connect.client_key)       # CryptoError -> CONNACK failure
    salt = new_salt()                                    # CONNACK.salt, the IV (§2.1)
    cipher = SessionCipher(key, salt.encode("ascii"))
    plain = open_send(cipher, send)                      # SEND in: check msgKey, decrypt
    recv = seal_recv(cipher, recv_with_plain_payload)    # RECV out: encrypt, tag

The client role mirrors it with :func:`iv_from_salt`, :func:`seal_send` and :func:`open_recv`.

Choice of reason codes for a bad peer key (:func:`derive_aes_key`): an *empty* key answers
``CLIENT_KEY_IS_EMPTY`` (21), as the current server does; a key that is present but unusable
(not base64, not 32 bytes, a low-order point giving an all-zero secret) answers ``AUTH_FAIL``
(2), as v1.1.4 did for every key problem (§3). SDK 1.0.4 treats both alike: ConnectFail, no
reconnect.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import string
import threading
from binascii import b2a_base64
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from operator import attrgetter
from typing import Protocol, TypeVar

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from magpie.errors import CryptoError, LocalProtocolError
from magpie.protocol.codec import decode_varint, encode
from magpie.protocol.limits import DEFAULT_LIMITS, Limits
from magpie.protocol.packets import ReasonCode, Recv, Send

__all__ = [
    "CBC_BACKEND",
    "KEY_SIZE",
    "SALT_ALPHABET",
    "SALT_LENGTH",
    "KeyPair",
    "RecvSealer",
    "SessionCipher",
    "derive_aes_key",
    "iv_from_salt",
    "new_salt",
    "open_recv",
    "open_send",
    "recv_verify_string",
    "seal_recv",
    "seal_send",
    "send_verify_string",
]

#: Length in bytes of the AES-128 key and of the IV (§2.1: 16 ASCII characters each).
KEY_SIZE = 16
#: Length of the salt a server sends in CONNACK (§2.1, v1.1.4 ``GetRandomString(16)``).
SALT_LENGTH = 16
#: Alphabet of the salt (§2.1).
SALT_ALPHABET = string.digits + string.ascii_letters

_BLOCK = 16  # AES block size in bytes
_X25519_KEY_BYTES = 32
# Surrogate escapes let a str built from arbitrary payload bytes encode back to those bytes.
_TEXT_ERRORS = "surrogateescape"


def _md5_hex(data: bytes) -> str:
    """Lowercase hex MD5; an integrity tag of the protocol, not a security primitive."""
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


@dataclass(frozen=True, slots=True)
class KeyPair:
    """One X25519 key pair; the server makes a fresh one per connection (§2.1)."""

    private_key: X25519PrivateKey = field(repr=False)
    #: Standard padded base64 of the 32-byte raw public key (CONNECT.client_key /
    #: CONNACK.server_key, 44 characters).
    public_b64: str

    @classmethod
    def generate(cls) -> KeyPair:
        """A new random key pair (randomness from the OS via ``cryptography``)."""
        return cls._of(X25519PrivateKey.generate())

    @classmethod
    def from_private_bytes(cls, private: bytes) -> KeyPair:
        """The key pair of a known 32-byte private key (tests, vectors of §2.4)."""
        try:
            return cls._of(X25519PrivateKey.from_private_bytes(private))
        except ValueError as exc:
            raise LocalProtocolError("an X25519 private key is 32 bytes") from exc

    @classmethod
    def _of(cls, private_key: X25519PrivateKey) -> KeyPair:
        raw = private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return cls(private_key, base64.b64encode(raw).decode("ascii"))


def _peer_public_key(peer_public_b64: str) -> X25519PublicKey:
    """Parse the peer's base64 public key or raise :class:`CryptoError`."""
    if not peer_public_b64:
        raise CryptoError("the peer sent no public key", ReasonCode.CLIENT_KEY_IS_EMPTY)
    try:
        raw = base64.b64decode(peer_public_b64, validate=True)
    except ValueError as exc:  # binascii.Error and non-ASCII str are both ValueError
        raise CryptoError("the peer public key is not base64", ReasonCode.AUTH_FAIL) from exc
    if len(raw) != _X25519_KEY_BYTES:
        raise CryptoError("the peer public key is not 32 bytes", ReasonCode.AUTH_FAIL)
    return X25519PublicKey.from_public_bytes(raw)


def derive_aes_key(private: KeyPair, peer_public_b64: str) -> bytes:
    """The session AES key shared with the peer (§2.1).

    ``aesKey`` is the first 16 characters of ``md5_hex(base64(x25519(private, peer)))``, used
    as 16 ASCII bytes. Raises :class:`CryptoError`: ``CLIENT_KEY_IS_EMPTY`` for an empty key,
    ``AUTH_FAIL`` for one that is not base64 of 32 bytes or yields the all-zero secret.
    """
    peer = _peer_public_key(peer_public_b64)
    try:
        secret = private.private_key.exchange(peer)
    except ValueError as exc:  # cryptography refuses low-order points (all-zero secret)
        raise CryptoError("the peer public key is a low-order point", ReasonCode.AUTH_FAIL) from exc
    return _md5_hex(base64.b64encode(secret))[:KEY_SIZE].encode("ascii")


def new_salt() -> str:
    """A fresh CONNACK salt: 16 characters of ``[0-9a-zA-Z]`` from :mod:`secrets` (§2.1)."""
    return "".join(secrets.choice(SALT_ALPHABET) for _ in range(SALT_LENGTH))


def iv_from_salt(salt: str) -> bytes:
    """The AES IV a client takes from CONNACK.salt: its first 16 characters (§2.1).

    Raises :class:`CryptoError` (``AUTH_FAIL``) if the salt is shorter or not ASCII.
    """
    head = salt[:SALT_LENGTH]
    if len(head) != SALT_LENGTH or not head.isascii():
        raise CryptoError("the salt is not 16 ASCII characters", ReasonCode.AUTH_FAIL)
    return head.encode("ascii")


class _CbcChain:
    """Long-lived AES-CBC contexts of one session, rewound to the IV before each message.

    Why: taking a fresh context from ``Cipher`` per call costs ~1.4 µs, more than AES itself
    on a 1 KiB payload, and sealing a RECV needs two encryptions per receiving connection
    (§2.2 payload, §2.3 msgKey). A CBC context's only state is its chaining block, so one
    context can serve every message if that block is set back to the IV first:

    * encrypt: the chain is the last ciphertext block ``c``; feeding ``c ^ D_K(IV)`` outputs
      ``E_K(D_K(IV)) = IV``, which becomes the chain. That first output block is dropped.
    * decrypt: the chain is the last ciphertext block fed; feeding the IV itself makes it the
      chain. Its output block is dropped.

    Every update is whole blocks, so the contexts never buffer. The lock keeps the
    read-modify-write of the chain atomic if a cipher is ever shared between threads.
    """

    __slots__ = ("_chain", "_decryptor", "_encryptor", "_iv", "_lock", "_rewind")

    def __init__(self, key: bytes, iv: bytes) -> None:
        cipher = Cipher(algorithms.AES(key), modes.CBC(iv))
        self._encryptor = cipher.encryptor()
        self._decryptor = cipher.decryptor()
        # D_K(IV): one block decrypted under a zero IV (CBC of one block with IV 0 = ECB).
        single = Cipher(algorithms.AES(key), modes.CBC(bytes(_BLOCK))).decryptor()
        self._rewind = int.from_bytes(single.update(iv) + single.finalize())
        self._chain = int.from_bytes(iv)  # a new context starts chained on the IV
        self._iv = iv
        self._lock = threading.Lock()

    def encrypt(self, plain: bytes) -> memoryview:
        """AES-CBC-PKCS#7 ciphertext of ``plain`` under the session key and IV."""
        with self._lock:
            rewind = (self._chain ^ self._rewind).to_bytes(_BLOCK)
            out = self._encryptor.update(b"".join((rewind, plain, _PADS[len(plain) % _BLOCK])))
            self._chain = int.from_bytes(out[-_BLOCK:])
        return memoryview(out)[_BLOCK:]

    def decrypt(self, raw: bytes) -> bytes:
        """CBC decryption of whole blocks ``raw`` (padding left on)."""
        with self._lock:
            self._decryptor.update(self._iv)
            return self._decryptor.update(raw)

    def msg_key(self, verify: bytes) -> str:
        """``md5_hex(base64(AES(verify)))``: the msgKey of a verify string's bytes (§2.3)."""
        return _md5_hex(base64.b64encode(self.encrypt(verify)))

    def seal_frame(
        self, before_key: bytes, before_payload: bytes, padded: bytes, head: bytes, pad: bytes
    ) -> bytes:
        """A RECV frame sealed with this session (§2.2, §2.3): ``before_key`` + msgKey +
        ``before_payload`` + the wire payload (base64 of ``padded`` encrypted), the msgKey
        being that of ``head`` + the wire payload + ``pad`` (see :class:`RecvSealer`). Both
        encryptions run under one lock, with no padding or field formatting per call."""
        update = self._encryptor.update
        rewind = self._rewind
        with self._lock:
            out = update((self._chain ^ rewind).to_bytes(_BLOCK) + padded)
            wire = b2a_base64(memoryview(out)[_BLOCK:], newline=False)
            chain = int.from_bytes(out[-_BLOCK:])
            tag = update(b"".join(((chain ^ rewind).to_bytes(_BLOCK), head, wire, pad)))
            self._chain = int.from_bytes(tag[-_BLOCK:])
        text = b2a_base64(memoryview(tag)[_BLOCK:], newline=False)
        msg_key = hashlib.md5(text, usedforsecurity=False).hexdigest().encode()
        return b"".join((before_key, msg_key, before_payload, wire))


class _Cbc(Protocol):
    """One session's AES-CBC: :class:`_CbcChain`, or its native twin ``_cbc.Cbc``."""

    def encrypt(self, plain: bytes) -> bytes | memoryview: ...

    def decrypt(self, raw: bytes) -> bytes: ...

    def msg_key(self, verify: bytes) -> str: ...

    def seal_frame(
        self, before_key: bytes, before_payload: bytes, padded: bytes, head: bytes, pad: bytes
    ) -> bytes: ...


def _implementation() -> tuple[Callable[[bytes, bytes], _Cbc], str]:
    """The native twin, built from ``_cbc.c`` where a compiler and OpenSSL's headers were
    found, else the pure-Python reference."""
    try:
        from magpie.protocol._cbc import Cbc
    except ImportError:  # pragma: no cover - depends on the build
        return _CbcChain, "python"
    return Cbc, "native"


#: What every :class:`SessionCipher` uses: the native AES-CBC session when it was built
#: (the tests check it gives the bytes :class:`_CbcChain` gives), else that reference;
#: :data:`CBC_BACKEND` says which (``"native"`` or ``"python"``, for reports).
_CBC, CBC_BACKEND = _implementation()


# PKCS#7 padding (§2.2) by remainder; built here rather than with ``padding.PKCS7().padder()``
# because a padder object per call costs 0.3 µs, twice per RECV on the fan-out path.
_PADS = tuple(bytes((_BLOCK - r,)) * (_BLOCK - r) for r in range(_BLOCK))


@dataclass(frozen=True, slots=True)
class SessionCipher:
    """AES-128-CBC with PKCS#7 under one connection's key and fixed IV (§2.2, §2.3).

    The value is ``(key, iv)``; it owns long-lived cipher contexts (see :class:`_CbcChain`),
    so make one per connection and reuse it for every packet of that connection.
    """

    key: bytes = field(repr=False)
    iv: bytes
    _chain: _Cbc = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(self.key) != KEY_SIZE or len(self.iv) != KEY_SIZE:
            raise LocalProtocolError("the AES key and IV are 16 bytes each")
        object.__setattr__(self, "_chain", _CBC(self.key, self.iv))

    def encrypt(self, plain: bytes) -> bytes:
        """The wire form of ``plain``: ASCII base64 of its ciphertext (§2.2)."""
        return base64.b64encode(self._chain.encrypt(plain))

    def decrypt(self, wire: bytes) -> bytes:
        """The plaintext of a wire payload; :class:`CryptoError` (``PAYLOAD_DECODE_ERROR``)
        if it is not base64 of whole AES blocks with valid PKCS#7 padding (§2.2)."""
        try:
            raw = base64.b64decode(wire, validate=True)
        except binascii.Error as exc:
            raise _payload_error("the payload is not base64") from exc
        if not raw or len(raw) % _BLOCK:
            raise _payload_error("the payload is not whole AES blocks")
        unpadder = padding.PKCS7(_BLOCK * 8).unpadder()
        try:
            return unpadder.update(self._chain.decrypt(raw)) + unpadder.finalize()
        except ValueError as exc:
            raise _payload_error("the payload padding is invalid") from exc

    def msg_key(self, verify: str) -> str:
        """``md5_hex(base64(AES(utf8(verify))))``: the msgKey of a verify string (§2.3)."""
        return self._msg_key(_utf8(verify))

    def _msg_key(self, verify: bytes) -> str:
        return self._chain.msg_key(verify)


def _payload_error(message: str) -> CryptoError:
    return CryptoError(message, ReasonCode.PAYLOAD_DECODE_ERROR)


_P = TypeVar("_P", Recv, Send)


class _Resealer:
    """``dataclasses.replace(packet, payload=..., msg_key=...)`` at half the cost.

    ``replace`` walks ``fields()`` and builds keyword arguments on every call (2.7 µs for a
    RECV); this precomputes the field order once and calls the constructor positionally
    (1.4 µs). It stays correct when fields are added, as long as every field is an init field.
    """

    __slots__ = ("_cls", "_key_at", "_payload_at", "_values")

    def __init__(self, cls: type[Recv] | type[Send]) -> None:
        names = [f.name for f in fields(cls)]
        if not all(f.init for f in fields(cls)):  # pragma: no cover - guards future edits
            raise TypeError(f"{cls.__name__} has a non-init field")
        self._cls = cls
        self._values = attrgetter(*names)
        self._payload_at = names.index("payload")
        self._key_at = names.index("msg_key")

    def __call__(self, packet: _P, payload: bytes, msg_key: str) -> _P:
        values = list(self._values(packet))
        values[self._payload_at] = payload
        values[self._key_at] = msg_key
        return type(packet)(*values)


_RESEAL_RECV = _Resealer(Recv)
_RESEAL_SEND = _Resealer(Send)


def _utf8(text: str) -> bytes:
    try:
        return text.encode("utf-8", _TEXT_ERRORS)
    except UnicodeEncodeError as exc:  # a lone surrogate: only our own fields can hold one
        raise LocalProtocolError("a verify-string field is not encodable as UTF-8") from exc


def _send_verify_bytes(send: Send, payload: bytes) -> bytes:
    # §2.3: client_seq + client_msg_no + channel_id + channel_type + payload as sent.
    head = f"{send.client_seq}{send.client_msg_no}{send.channel_id}{send.channel_type}"
    return _utf8(head) + payload


def _recv_verify_bytes(recv: Recv, payload: bytes) -> bytes:
    # §2.3: message_id + message_seq + client_msg_no + timestamp + from_uid + channel_id +
    # channel_type + payload as sent.
    head = (
        f"{recv.message_id}{recv.message_seq}{recv.client_msg_no}{recv.timestamp}"
        f"{recv.from_uid}{recv.channel_id}{recv.channel_type}"
    )
    return _utf8(head) + payload


def send_verify_string(send: Send) -> str:
    """The msgKey verify string of a SEND whose payload is already encrypted (§2.3)."""
    return _send_verify_bytes(send, send.payload).decode("utf-8", _TEXT_ERRORS)


def recv_verify_string(recv: Recv) -> str:
    """The msgKey verify string of a RECV whose payload is already encrypted (§2.3)."""
    return _recv_verify_bytes(recv, recv.payload).decode("utf-8", _TEXT_ERRORS)


def _check_msg_key(expected: str, got: str) -> None:
    # Constant-time compare; compare_digest refuses non-ASCII str, so a peer's junk is
    # refused before it gets there.
    if not (got.isascii() and hmac.compare_digest(expected, got)):
        raise CryptoError("msgKey mismatch", ReasonCode.MSG_KEY_ERROR)


def seal_recv(cipher: SessionCipher, recv: Recv) -> Recv:
    """The RECV to put on the wire: payload encrypted, msg_key set (§2.2, §2.3).

    ``recv.payload`` is the plaintext; ``recv.msg_key`` is ignored. Called once per
    receiving connection, with that connection's cipher.
    """
    wire = cipher.encrypt(recv.payload)
    return _RESEAL_RECV(recv, wire, cipher._msg_key(_recv_verify_bytes(recv, wire)))


class RecvSealer:
    """One RECV prepared once to be sealed for many connections (fan-out, §2.2, §2.3).

    ``frame(cipher, version)`` equals ``encode(seal_recv(cipher, recv), version, limits)``
    byte for byte, at the cost of the two encryptions alone. What does not depend on the
    connection is done here once: the payload's padding, the verify string's fields, and the
    frame around the two parts that do (§1.6): the msgKey, always 32 hex characters, is the
    second body field; the wire payload, whose length follows from the plaintext's, is the
    last. The frame around them is laid out per protocol version on first use, by the codec
    itself (a probe frame with placeholders), so the layout is never restated here.

    Raises :class:`~magpie.errors.LocalProtocolError` where :func:`seal_recv` or
    :func:`~magpie.protocol.codec.encode` would (a field not encodable or over ``limits``).
    """

    __slots__ = ("_frames", "_limits", "_padded", "_probe", "_verify_head", "_verify_pad", "recv")

    def __init__(self, recv: Recv, limits: Limits = DEFAULT_LIMITS) -> None:
        #: The RECV as given (plaintext payload).
        self.recv = recv
        plain = recv.payload
        self._padded = plain + _PADS[len(plain) % _BLOCK]
        wire_size = (len(self._padded) + 2) // 3 * 4  # base64 of the ciphertext
        self._verify_head = _recv_verify_bytes(recv, b"")
        self._verify_pad = _PADS[(len(self._verify_head) + wire_size) % _BLOCK]
        self._probe = _RESEAL_RECV(recv, b"=" * wire_size, _MSG_KEY_PLACEHOLDER)
        self._limits = limits
        self._frames: dict[int, tuple[bytes, bytes]] = {}

    def frame(self, cipher: SessionCipher, version: int) -> bytes:
        """The RECV sealed with ``cipher``, encoded for protocol ``version``."""
        around = self._frames.get(version)
        if around is None:
            around = self._frames[version] = self._layout(version)
        return cipher._chain.seal_frame(
            around[0], around[1], self._padded, self._verify_head, self._verify_pad
        )

    def _layout(self, version: int) -> tuple[bytes, bytes]:
        """The frame's bytes before the msgKey and between it and the payload."""
        probe = encode(self._probe, version, self._limits)
        length = decode_varint(probe, 1)
        if length is None:  # pragma: no cover - encode wrote a whole frame
            raise LocalProtocolError("probe frame without a length")
        key_at = length[1] + 3  # setting byte, then the msgKey's uint16 length (§1.6)
        key_end = key_at + _MSG_KEY_SIZE
        payload_at = len(probe) - len(self._probe.payload)
        if probe[key_at:key_end] != _MSG_KEY_PLACEHOLDER.encode():  # pragma: no cover
            raise LocalProtocolError("the RECV layout has no msgKey in second place")
        return probe[:key_at], probe[key_end:payload_at]


#: The msgKey is an MD5 in lowercase hex (§2.3).
_MSG_KEY_SIZE = 32
_MSG_KEY_PLACEHOLDER = "0" * _MSG_KEY_SIZE


def open_send(cipher: SessionCipher, send: Send) -> bytes:
    """The plaintext payload of a SEND from the wire, after checking its msgKey (§2.3).

    Raises :class:`CryptoError`: ``MSG_KEY_ERROR`` on a msgKey mismatch, then
    ``PAYLOAD_DECODE_ERROR`` if the payload does not decrypt.
    """
    _check_msg_key(cipher._msg_key(_send_verify_bytes(send, send.payload)), send.msg_key)
    return cipher.decrypt(send.payload)


def seal_send(cipher: SessionCipher, send: Send) -> Send:
    """Client role: the SEND to put on the wire, payload encrypted and msg_key set (§2.3)."""
    wire = cipher.encrypt(send.payload)
    return _RESEAL_SEND(send, wire, cipher._msg_key(_send_verify_bytes(send, wire)))


def open_recv(cipher: SessionCipher, recv: Recv) -> bytes:
    """Client role: the plaintext payload of a RECV after checking its msgKey (§2.3).

    SDK 1.0.4 silently drops a RECV that fails here and sends no RECVACK.
    """
    _check_msg_key(cipher._msg_key(_recv_verify_bytes(recv, recv.payload)), recv.msg_key)
    return cipher.decrypt(recv.payload)
