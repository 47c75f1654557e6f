"""The link lab: the broker and daemon in one network namespace, each emulated speaker link in
another, joined by veth pairs shaped with `tc`, with latency and outages from support.linkrelay.

    async with Lab.running(links=2, profile=PROFILES["3g-weak"]) as lab:
        proc = spawn(..., prefix=lab.exec_prefix())       # the daemon, inside lab.core
        url = await lab.links[0].mqtt_url()               # what speaker 0 connects to

Addresses come from 198.51.100.0/24 (TEST-NET-2) only, checked unused on the host at start: the
broker's address 198.51.100.1 sits on the core namespace's loopback, and link k (from 1) is the
/30 198.51.100.4k: .4k+1 in the core, .4k+2 in the speaker's namespace, which routes the
broker's address through it. Downlink is shaped on the core end of the veth, uplink on the
speaker's end (tbf; netem is not used: absent on this kernel, see `netem_available`).

Everything is removed when the block ends, however it ends; a lab left behind by a killed run
is removed by the next one (support.netns.remove_stale).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import random
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from support import netns
from support.linkrelay import LinkControl, Relay, on_schedule

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Sequence

BROKER_HOST = "198.51.100.1"
BROKER_PORT = 1883
FLOOR_PORT = 9000  # the plain TCP transfer that measures what a link can carry
MAX_LINKS = 62  # 198.51.100.4k+2 <= .250
TBF_LATENCY_MS = (
    200  # the shaper's queue, in time at its rate: a 3G bearer buffers, but not forever
)


@dataclass(frozen=True)
class Profile:
    """A speaker's link. Uplink is half the downlink throughout, as measured by hand for issue
    18 (tbf 256 kbit/s down, 128 kbit/s up). Jitter is 10% of the RTT: our choice, not measured."""

    name: str
    down_kbit: int
    rtt_ms: int
    stall_every_s: float | None = None
    stall_s: float = 0.0
    drop_every_s: float | None = None

    @property
    def up_kbit(self) -> int:
        return self.down_kbit // 2

    @property
    def jitter_ms(self) -> int:
        return self.rtt_ms // 10

    @property
    def down_bytes_per_s(self) -> float:
        return self.down_kbit * 1000 / 8

    def calm(self) -> Profile:
        """The same link without stalls and drops (for a test that must not meet one)."""
        return dataclasses.replace(self, stall_every_s=None, drop_every_s=None)

    def describe(self) -> str:
        outages = []
        if self.stall_every_s:
            outages.append(f"{self.stall_s:.0f} s stall every {self.stall_every_s:.0f} s")
        if self.drop_every_s:
            outages.append(f"drop every {self.drop_every_s:.0f} s")
        return (
            f"{self.name}: {self.down_kbit}/{self.up_kbit} kbit/s, {self.rtt_ms} ms RTT "
            f"(+0..{self.jitter_ms} ms jitter){', ' + ', '.join(outages) if outages else ''}"
        )


PROFILES = {
    # Bandwidths are issue 18's; RTTs are WebPageTest's connectivity profiles
    # (WPO-Foundation/webpagetest, www/settings/connectivity.ini.sample), which browser and
    # CDN labs have used for a decade: "3G Fast" 1.6 Mbps / 150 ms RTT, "3G Slow" 400 Kbps /
    # 400 ms RTT, "Mobile Edge" 240 Kbps / 840 ms RTT. Our bandwidths sit below theirs: the
    # speakers are on poles at the edge of coverage, not phones in a town.
    "3g-good": Profile("3g-good", down_kbit=1000, rtt_ms=150),
    # Issue 18: 256 kbit/s (its hand measurement), a 10 s stall every 2 minutes.
    "3g-weak": Profile("3g-weak", down_kbit=256, rtt_ms=400, stall_every_s=120, stall_s=10),
    # Issue 18: 64 kbit/s, the bearer lost every 5 minutes.
    "edge": Profile("edge", down_kbit=64, rtt_ms=800, drop_every_s=300),
}


def _tbf(device: str, kbit: int) -> str:
    burst = max(3200, kbit * 1000 // 8 // 50)  # >= 2 MTUs; ~20 ms at the rate
    return (
        f"qdisc add dev {device} root tbf rate {kbit}kbit burst {burst} latency {TBF_LATENCY_MS}ms"
    )


@dataclass
class Link:
    """One speaker's link: its namespace, its shaped veth, its relay(s)."""

    index: int  # from 1
    netns: str
    control: LinkControl
    lab_core: str
    relays: dict[int, Relay] = field(default_factory=dict)
    _schedules: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def address(self) -> str:
        """The speaker's own address on its link."""
        return f"198.51.100.{4 * self.index + 2}"

    async def relay(self, port: int) -> Relay:
        """A relay on the host's loopback to `port` on the broker's address, through this link."""
        if port not in self.relays:
            relay = Relay(self.control, self.netns, (BROKER_HOST, port))
            await relay.start()
            self.relays[port] = relay
        return self.relays[port]

    async def mqtt_url(self) -> str:
        return f"mqtt://127.0.0.1:{(await self.relay(BROKER_PORT)).port}"

    def schedule(self, profile: Profile, rng: random.Random, quiet: float = 0.0) -> None:
        """(Re)start the profile's outages from now, none in the first `quiet` seconds. Each
        link has its own phase (from `rng`), so speakers do not all lose their link at the same
        moment, and a second measurement started with the same seed meets the same outages at
        the same offsets."""
        self.unschedule()
        if profile.stall_every_s:
            first = quiet + rng.uniform(0, profile.stall_every_s)
            stall = profile.stall_s
            self._schedules.append(
                on_schedule(profile.stall_every_s, first, lambda: self.control.stall(stall))
            )
        if profile.drop_every_s:
            first = quiet + rng.uniform(0, profile.drop_every_s)
            self._schedules.append(on_schedule(profile.drop_every_s, first, self.control.drop))

    def unschedule(self) -> None:
        for task in self._schedules:
            task.cancel()
        self._schedules.clear()

    async def close(self) -> None:
        self.unschedule()
        for relay in self.relays.values():
            await relay.close()


class Lab:
    """A built lab; see the module docstring. Build it with `Lab.running`."""

    def __init__(self, links: int, profile: Profile, *, seed: int = 18) -> None:
        if not 1 <= links <= MAX_LINKS:
            raise netns.LabError(f"the lab holds 1..{MAX_LINKS} links, asked for {links}")
        self.profile = profile
        self.seed = seed
        tag = f"{netns.PREFIX}-{os.getpid()}-{time.monotonic_ns() % 10**6}"
        self.core = f"{tag}c"
        self.links = [
            Link(
                k,
                f"{tag}s{k}",
                LinkControl(profile.rtt_ms / 2000, profile.jitter_ms / 2000, random.Random(k)),
                self.core,
            )
            for k in range(1, links + 1)
        ]
        self.netem = False
        self._core_relays: dict[int, Relay] = {}

    @classmethod
    @contextlib.asynccontextmanager
    async def running(cls, *, links: int, profile: Profile, seed: int = 18) -> AsyncIterator[Lab]:
        netns.require_root()
        netns.remove_stale()
        used = netns.range_in_use()
        if used:
            raise netns.LabError(f"198.51.100.0/24 is already in use on: {', '.join(used)}")
        lab = cls(links, profile, seed=seed)
        try:
            await asyncio.to_thread(lab._build)
            lab.schedule()
            yield lab
        finally:
            for link in lab.links:
                await link.close()
            for relay in lab._core_relays.values():
                await relay.close()
            await asyncio.to_thread(lab._remove)

    @property
    def namespaces(self) -> list[str]:
        return [self.core, *(link.netns for link in self.links)]

    def describe(self) -> str:
        netem = "netem present but unused" if self.netem else "netem not available"
        return (
            f"{self.profile.describe()}; {len(self.links)} links, tbf shaping, delay and "
            f"outages by the relay ({netem})"
        )

    def exec_prefix(self) -> list[str]:
        """argv prefix that runs a command inside the core (broker and daemon) namespace."""
        return ["ip", "netns", "exec", self.core]

    async def core_url(self, port: int = BROKER_PORT) -> str:
        """An unshaped, undelayed way in to `port` on the broker's address, for the test itself
        (the controller's side: a probe, a publisher), not through any speaker's link."""
        if port not in self._core_relays:
            relay = Relay(LinkControl(0.0), self.core, (BROKER_HOST, port))
            await relay.start()
            self._core_relays[port] = relay
        return f"mqtt://127.0.0.1:{self._core_relays[port].port}"

    def schedule(self, quiet: float = 0.0) -> None:
        """(Re)start every link's outages from now, each at its seeded phase, none in the first
        `quiet` seconds (a measurement that must not meet one then, such as an emergency's)."""
        rng = random.Random(self.seed)
        for link in self.links:
            link.schedule(self.profile, rng, quiet)

    def _build(self) -> None:
        for name in self.namespaces:
            netns.run(["ip", "netns", "add", name])
        core = ["link set lo up", f"addr add {BROKER_HOST}/32 dev lo"]
        shaping = []
        for link in self.links:
            k = link.index
            core += [
                f"link add c{k} type veth peer name s{k} netns {link.netns}",
                f"addr add 198.51.100.{4 * k + 1}/30 dev c{k}",
                f"link set c{k} up",
            ]
            shaping.append(_tbf(f"c{k}", self.profile.down_kbit))
        netns.batch("ip", self.core, core)
        netns.batch("tc", self.core, shaping)
        for link in self.links:
            k = link.index
            netns.batch(
                "ip",
                link.netns,
                [
                    "link set lo up",
                    f"addr add {link.address}/30 dev s{k}",
                    f"link set s{k} up",
                    f"route add {BROKER_HOST}/32 via 198.51.100.{4 * k + 1}",
                ],
            )
            netns.batch("tc", link.netns, [_tbf(f"s{k}", self.profile.up_kbit)])
        self.netem = netns.netem_available(self.core)

    def _remove(self) -> None:
        for name in self.namespaces:
            netns.remove(name)

    # -- the floor: what the shaped link carries with plain TCP ----------------------------------

    async def floor(self, sizes: Sequence[int]) -> list[float]:
        """Seconds each link takes to carry `sizes[k]` bytes from the core to the speaker over
        one plain TCP connection, all links at once (as the speakers download at once)."""
        listener = netns.listener_in(self.core, BROKER_HOST, FLOOR_PORT)

        async def send(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            size = int((await reader.readline()).decode())
            block = os.urandom(64 * 1024)
            while size > 0:
                writer.write(block[: min(size, len(block))])
                size -= len(block)
                await writer.drain()
            writer.close()

        server = await asyncio.start_server(send, sock=listener)
        try:
            async with server:
                return list(
                    await asyncio.gather(
                        *(
                            self._fetch(link, size)
                            for link, size in zip(self.links, sizes, strict=True)
                        )
                    )
                )
        finally:
            listener.close()

    @staticmethod
    async def _fetch(link: Link, size: int) -> float:
        relay = await link.relay(FLOOR_PORT)
        started = time.monotonic()
        reader, writer = await asyncio.open_connection("127.0.0.1", relay.port)
        writer.write(f"{size}\n".encode())
        got = 0
        while got < size:
            data = await reader.read(64 * 1024)
            if not data:
                raise netns.LabError(f"link {link.index}: floor transfer cut at {got} of {size}")
            got += len(data)
        elapsed = time.monotonic() - started
        writer.close()
        return elapsed
