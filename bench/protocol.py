"""Protocol hot path: what one packet costs in codec + crypto, beside bare AES-CBC.

Fan-out (spec §2.2: every receiving connection gets its own ciphertext) costs one
``seal_recv`` + ``encode`` per receiving connection; the send path one ``Decoder.feed`` +
``open_send`` per SEND. Both are timed per packet for payloads of 64 B, 1 KiB and 16 KiB and
printed beside the *floor* measured in the same run: one bare AES-128-CBC call through
``cryptography`` on the same (padded) bytes — a fresh encryptor/decryptor from a prebuilt
``Cipher``, ``update`` + ``finalize``, the cheapest idiomatic call. The protocol itself needs
more than that (a second AES pass and an MD5 for the msgKey, two base64 passes, §2.3), so
the ratio can't reach 1: the row "§2.3 primitives, bare" times just those primitive calls
made the plain way (fresh AES context per call, no packet objects), the protocol's own floor.

Each figure is p50/p99 of single-call timings (``perf_counter_ns``, timer overhead
subtracted) after a warm-up, with the garbage collector off during each loop.
"""

from __future__ import annotations

import base64
import gc
import hashlib
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from magpie.protocol.codec import Decoder, encode
from magpie.protocol.crypto import SessionCipher, new_salt, open_send, seal_recv, seal_send
from magpie.protocol.packets import Flags, Recv, Send, Setting

SIZES = (64, 1024, 16384)
#: Timed calls per measurement by payload size (plus 10 % warm-up); ~10 s in all.
ITERATIONS = {64: 40_000, 1024: 30_000, 16384: 4_000}


@dataclass(frozen=True, slots=True)
class Timing:
    """Percentiles of one measured call, in microseconds."""

    p50: float
    p99: float


def _timer_overhead() -> int:
    samples = []
    for _ in range(10_000):
        t0 = time.perf_counter_ns()
        samples.append(time.perf_counter_ns() - t0)
    return int(statistics.median(samples))


def measure(call: Callable[[], object], iterations: int, overhead: int) -> Timing:
    """Time ``call`` once per iteration and return p50/p99 in µs."""
    for _ in range(iterations // 10):
        call()
    samples = [0] * iterations
    clock = time.perf_counter_ns
    gc.disable()
    try:
        for i in range(iterations):
            t0 = clock()
            call()
            samples[i] = clock() - t0
    finally:
        gc.enable()
    samples.sort()
    p50, p99 = samples[iterations // 2], samples[iterations * 99 // 100]
    return Timing(max(p50 - overhead, 0) / 1000, max(p99 - overhead, 0) / 1000)


def _payload(size: int) -> bytes:
    """``size`` bytes of JSON text, like a chat message body."""
    head, tail = b'{"type":1,"content":"', b'"}'
    return head + b"x" * (size - len(head) - len(tail)) + tail


def _pad(data: bytes) -> bytes:
    n = 16 - len(data) % 16
    return data + bytes((n,)) * n


def _cases(size: int, cipher: SessionCipher) -> list[tuple[str, Callable[[], object]]]:
    """The calls to time for one payload size, as (row label, call); indented rows are the
    parts of the row above them."""
    plain = _payload(size)
    recv = Recv(
        Setting.NONE, "", "u2", "u1", 1, "0123456789abcdef0123456789abcdef3",
        1234567890123456790, 8, 1_700_000_000, plain, flags=Flags.RED_DOT,
    )  # fmt: skip
    send = seal_send(cipher, Send(Setting.NONE, 1, "c" * 33, "u2", 1, "", plain))
    frame, sealed = encode(send), seal_recv(cipher, recv)
    decoder = Decoder()
    [decoded] = decoder.feed(frame)
    assert isinstance(decoded, Send) and open_send(cipher, decoded) == plain
    aes = Cipher(algorithms.AES(cipher.key), modes.CBC(cipher.iv))
    padded, ciphertext = _pad(plain), _aes_encrypt(aes, _pad(plain))

    def feed_open() -> bytes:
        [packet] = decoder.feed(frame)
        return open_send(cipher, packet)  # type: ignore[arg-type]

    return [
        ("floor: AES-CBC encrypt", lambda: _aes_encrypt(aes, padded)),
        ("RECV seal_recv + encode", lambda: encode(seal_recv(cipher, recv))),
        ("  seal_recv", lambda: seal_recv(cipher, recv)),
        ("  encode", lambda: encode(sealed)),
        ("§2.3 primitives, bare", lambda: _bare_seal(aes, plain, b"12345678901234567908cmn")),
        ("floor: AES-CBC decrypt", lambda: _aes_decrypt(aes, ciphertext)),
        ("SEND feed + open_send", feed_open),
        ("  Decoder.feed", lambda: decoder.feed(frame)),
        ("  open_send", lambda: open_send(cipher, decoded)),
        ("§2.3 primitives, bare", lambda: _bare_open(aes, send.payload, b"1cccu21")),
    ]


def _bare_msg_key(aes: Cipher[modes.CBC], verify: bytes) -> str:
    tag = base64.b64encode(_aes_encrypt(aes, _pad(verify)))
    return hashlib.md5(tag, usedforsecurity=False).hexdigest()


def _bare_seal(aes: Cipher[modes.CBC], plain: bytes, head: bytes) -> str:
    """RECV out, primitives only: AES + base64 of the payload, then the msgKey (§2.3)."""
    wire = base64.b64encode(_aes_encrypt(aes, _pad(plain)))
    return _bare_msg_key(aes, head + wire)


def _bare_open(aes: Cipher[modes.CBC], wire: bytes, head: bytes) -> bytes:
    """SEND in, primitives only: the msgKey, then base64-decode and AES-decrypt (§2.3)."""
    _bare_msg_key(aes, head + wire)
    return _aes_decrypt(aes, base64.b64decode(wire))


def _aes_encrypt(aes: Cipher[modes.CBC], padded: bytes) -> bytes:
    encryptor = aes.encryptor()
    return encryptor.update(padded) + encryptor.finalize()


def _aes_decrypt(aes: Cipher[modes.CBC], ciphertext: bytes) -> bytes:
    decryptor = aes.decryptor()
    return decryptor.update(ciphertext) + decryptor.finalize()


def _print_size(size: int, cipher: SessionCipher, overhead: int) -> None:
    floor = 0.0
    for label, call in _cases(size, cipher):
        timing = measure(call, ITERATIONS[size], overhead)
        if label.startswith("floor"):
            floor = timing.p50
        ratio = f"{timing.p50 / floor:6.1f}x" if not label.startswith(" ") else ""
        print(f"{size:>7} B  {label:<26}{timing.p50:>9.2f}{timing.p99:>9.2f}  {ratio}")


def run() -> None:
    """Print the table (µs per packet; ratio = p50 over the floor's p50)."""
    cipher = SessionCipher(os.urandom(8).hex().encode(), new_salt().encode())
    overhead = _timer_overhead()
    print(f"timer overhead {overhead} ns (subtracted); µs per packet")
    print(f"{'payload':>9}  {'path':<26}{'p50':>9}{'p99':>9}  vs floor")
    for size in SIZES:
        _print_size(size, cipher, overhead)
