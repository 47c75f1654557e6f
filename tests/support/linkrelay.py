"""The link lab's TCP relay: latency, jitter, stalls and drops for one emulated speaker link.

netem (the kernel's delay qdisc) is not available on every kernel, this one included, so delay
is added here, in user space: every segment read in one direction is held for the link's one-way
delay (plus jitter, never reordering bytes) before it is written on. Bandwidth is not shaped
here but by `tc` on the link's veth pair (support.linklab), which the relay's far side crosses:
the relay listens on the host's loopback and opens each upstream connection from a socket made
inside the speaker's namespace, so every byte between a speaker and the broker passes both the
shaper and the delay.

A stall stops both directions (nothing read, nothing written: TCP's own flow control then backs
up to the broker); a drop aborts every connection of the link at once, as a 3G modem losing its
bearer does, and the speaker must reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from support.netns import socket_in

if TYPE_CHECKING:
    from collections.abc import Callable

log = logging.getLogger(__name__)

READ_SIZE = 64 * 1024
QUEUE_ITEMS = 32  # segments held per direction before the relay stops reading (backpressure)
CONNECT_TIMEOUT_S = 10.0
RCVBUF = 32 * 1024  # the kernel doubles it: 64 KB, 2 s at 256 kbit/s, 0.5 s at 1 Mbit/s


@dataclass
class LinkControl:
    """What all connections of one link share: the delay, the outage state, the byte counts."""

    one_way_s: float
    jitter_s: float = 0.0
    rng: random.Random = field(default_factory=random.Random)
    flowing: asyncio.Event = field(default_factory=asyncio.Event)
    bytes_down: int = 0  # towards the speaker
    bytes_up: int = 0
    stalls: int = 0
    drops: int = 0
    pipes: set[_Pipe] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.flowing.set()

    def delay(self) -> float:
        return self.one_way_s + (self.rng.uniform(0, self.jitter_s) if self.jitter_s else 0.0)

    async def stall(self, seconds: float) -> None:
        """Nothing moves in either direction for `seconds` (connections stay open)."""
        self.stalls += 1
        self.flowing.clear()
        try:
            await asyncio.sleep(seconds)
        finally:
            self.flowing.set()

    def drop(self) -> None:
        """Abort every open connection of the link; new ones are accepted at once."""
        self.drops += 1
        for pipe in list(self.pipes):
            pipe.abort()


class _Pipe:
    """One relayed connection: two directions, each a reader task and a delayed writer task."""

    def __init__(
        self,
        control: LinkControl,
        near: tuple[asyncio.StreamReader, asyncio.StreamWriter],
        far: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    ) -> None:
        self.control = control
        self.near, self.far = near, far

    def abort(self) -> None:
        for _, writer in (self.near, self.far):
            writer.transport.abort()

    async def run(self) -> None:
        self.control.pipes.add(self)
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._direction(self.near[0], self.far[1], up=True))
                tg.create_task(self._direction(self.far[0], self.near[1], up=False))
        except* (ConnectionError, OSError):
            pass  # a drop, or either end went away: the other end is closed below
        finally:
            self.control.pipes.discard(self)
            self.abort()

    async def _direction(
        self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, *, up: bool
    ) -> None:
        held: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue(QUEUE_ITEMS)
        writer = asyncio.create_task(self._release(held, dst, up=up))
        loop = asyncio.get_running_loop()
        last = 0.0
        try:
            while True:
                await self.control.flowing.wait()
                data = await src.read(READ_SIZE)
                if not data:
                    break
                last = max(last, loop.time() + self.control.delay())  # jitter never reorders
                await held.put((last, data))
            await held.join()
            if dst.can_write_eof():
                dst.write_eof()
        finally:
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer

    async def _release(
        self, held: asyncio.Queue[tuple[float, bytes]], dst: asyncio.StreamWriter, *, up: bool
    ) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due, data = await held.get()
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            await self.control.flowing.wait()
            dst.write(data)
            await dst.drain()
            if up:
                self.control.bytes_up += len(data)
            else:
                self.control.bytes_down += len(data)
            held.task_done()


class Relay:
    """Listens on 127.0.0.1 (an ephemeral port); carries each connection through namespace
    `netns` to `target`, under `control`'s delay and outages."""

    def __init__(self, control: LinkControl, netns: str, target: tuple[str, int]) -> None:
        self.control = control
        self.netns = netns
        self.target = target
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for pipe in list(self.control.pipes):
            pipe.abort()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.create_task(self._carry(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _carry(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        sock = socket_in(self.netns)
        # A small receive buffer, so that a stall (the relay not reading) closes TCP's window
        # within a couple of seconds, as a radio outage stops the bytes; the kernel's default
        # would let the shaped link go on filling it for the whole stall.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT_S):
                await loop.sock_connect(sock, self.target)
            far = await asyncio.open_connection(sock=sock, limit=READ_SIZE)
        except (OSError, TimeoutError) as exc:
            log.info("relay %s -> %s: %s", self.netns, self.target, exc)
            sock.close()
            writer.transport.abort()
            return
        await _Pipe(self.control, (reader, writer), far).run()


def on_schedule(every_s: float, first_s: float, action: Callable[[], object]) -> asyncio.Task[None]:
    """Call `action` at `first_s` from now, then every `every_s` seconds on a fixed grid (a
    10 s stall every 2 minutes starts every 2 minutes), until the task is cancelled. An
    `action` returning a coroutine is awaited."""

    async def tick() -> None:
        loop = asyncio.get_running_loop()
        due = loop.time() + first_s
        while True:
            await asyncio.sleep(max(0.0, due - loop.time()))
            result = action()
            if asyncio.iscoroutine(result):
                await result
            due += every_s

    return asyncio.create_task(tick())
