"""``/message/send`` as a msgspec Struct with constraints like ``SendReq``'s, for
``bench/api.py`` (a module of its own: msgspec resolves the annotations at run time, so they
must not be postponed strings of local names)."""

from typing import Annotated

import msgspec

from magpie.domain.channels import CHANNEL_ID_PATTERN, UID_PATTERN

Flag = Annotated[int, msgspec.Meta(ge=0, le=1)]
Uid = Annotated[str, msgspec.Meta(pattern=UID_PATTERN)]
Sender = Annotated[str, msgspec.Meta(pattern="^$|" + UID_PATTERN)]


class Header(msgspec.Struct, frozen=True):
    """The header flags."""

    no_persist: Flag = 0
    red_dot: Flag = 0
    sync_once: Flag = 0


def send_decoder(max_payload: int) -> msgspec.json.Decoder:  # type: ignore[type-arg]
    """A JSON decoder straight into a validated send request."""

    class Send(msgspec.Struct, frozen=True):
        channel_id: Annotated[str, msgspec.Meta(pattern=CHANNEL_ID_PATTERN)]
        channel_type: Annotated[int, msgspec.Meta(ge=1, le=12)]
        payload: Annotated[bytes, msgspec.Meta(max_length=max_payload)]
        header: Header = Header()
        client_msg_no: Annotated[str, msgspec.Meta(max_length=128)] = ""
        from_uid: Sender = ""
        subscribers: Annotated[list[Uid], msgspec.Meta(max_length=1000)] | None = None
        setting: Annotated[int, msgspec.Meta(ge=0, le=255)] = 0
        expire: Annotated[int, msgspec.Meta(ge=0, le=2**32 - 1)] = 0
        topic: Annotated[str, msgspec.Meta(max_length=128)] = ""

    return msgspec.json.Decoder(Send)
