"""Ending a connected client's session on our own mosquitto, at once.

mosquitto re-reads its password file on SIGHUP but leaves connected clients alone, and mosquitto
2.0 has no kick command outside its dynamic-security plugin. So a revoked login is given, for a
moment, a password only the daemon knows; the daemon logs in with it as that user (with
`use_username_as_clientid`, the same client id), clean start, no session expiry: the broker closes
the speaker's connection (session taken over) and discards its stored session. Then the login is
removed for good. Until then the speaker's own password no longer works, so it cannot come back in
between.
"""

from __future__ import annotations

import asyncio
import time

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from broadcastd.errors import LinkError

RETRY_S = 0.05  # the broker reloads its password file within milliseconds of the SIGHUP


async def take_over(host: str, port: int, user: str, password: str, *, within: float) -> None:
    """Log in as `user` once the broker accepts `password`, discarding its session; LinkError if
    it never does within `within` seconds."""
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = 0
    deadline = time.monotonic() + within
    while True:
        client = aiomqtt.Client(
            host,
            port,
            username=user,
            password=password,
            identifier=user,
            protocol=aiomqtt.ProtocolVersion.V5,
            clean_start=True,
            properties=props,
            timeout=max(0.5, deadline - time.monotonic()),
        )
        try:
            async with client:
                return  # leaving sends DISCONNECT: the taken-over session ends with us
        except aiomqtt.MqttError as exc:
            if time.monotonic() >= deadline:
                raise LinkError(f"could not end the session of {user!r}: {exc}") from None
        await asyncio.sleep(RETRY_S)
