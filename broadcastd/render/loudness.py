"""Decoded mono PCM and its integrated loudness (ITU-R BS.1770 / EBU R128), without extra processes.

Why not always `ffmpeg -af ebur128`: every ffmpeg start costs ~70 ms, more than espeak-ng takes to
speak a whole announcement. Audio that needs decoding anyway is measured by the ebur128 filter in
that same decode process; espeak-ng's WAV (already mono at the target rate) is measured here in
C-speed `audioop` passes: a short linear-phase FIR for the K-weighting shelf, DC removal for the
high-pass, 400 ms blocks at 75 % overlap, absolute (-70 LUFS) and relative (-10 LU) gates. On speech
this lands within 0.2 LU of ffmpeg's ebur128; the tests check every produced clip with ebur128.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
import re
import struct
from dataclasses import dataclass, replace
from pathlib import Path

try:  # the stdlib module until 3.12, the audioop-lts package from 3.13 (see pyproject)
    import audioop
except ImportError:  # pragma: no cover - depends on the interpreter version
    import audioop_lts as audioop  # type: ignore[import-not-found,no-redef]

from broadcastd.errors import RenderError

FFMPEG_TIMEOUT_S = 60.0
_I_RE = re.compile(r"I:\s+(-?\d+(?:\.\d+)?) LUFS")
_FULL = 8192.0  # int16 full scale after the 1/4 scaling that gives the FIR headroom
_SILENCE_LUFS = -70.0
_MIN_SAMPLES_S = 0.05  # less than 50 ms of sound is not an announcement


class InvalidAudioError(RenderError):
    """Bytes that do not decode to audible sound (empty, HTML, truncated, silent)."""


class ToolTimeoutError(RenderError):
    """A helper binary (ffmpeg, espeak-ng) ran past its timeout and was killed."""


@dataclass(frozen=True, slots=True)
class Pcm:
    """Signed 16-bit little-endian mono samples, and their loudness if already measured."""

    data: bytes
    rate: int
    lufs: float | None = None

    @property
    def seconds(self) -> float:
        return len(self.data) / 2 / self.rate

    @property
    def peak_dbfs(self) -> float:
        peak = audioop.max(self.data, 2) if self.data else 0
        return 20 * math.log10(peak / 32768) if peak else -120.0

    def loudness(self) -> float:
        """Integrated loudness in LUFS: the measured value, or computed here."""
        return self.lufs if self.lufs is not None else integrated_loudness(self.data, self.rate)


def parse_wav(data: bytes) -> Pcm | None:
    """Mono s16 PCM from a RIFF/WAVE file (espeak-ng's --stdout, whose sizes may be 0x7fffffff)."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return None
    pos, fmt = 12, None
    while pos + 8 <= len(data):
        cid, size = data[pos : pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        body = pos + 8
        if cid == b"fmt ":
            fmt = struct.unpack_from("<HHIIHH", data, body)
        elif cid == b"data":
            if fmt is None or fmt[0] != 1 or fmt[1] != 1 or fmt[5] != 16:
                return None  # not plain mono 16-bit PCM: let ffmpeg convert it
            end = min(len(data), body + size)
            end -= (end - body) % 2
            return Pcm(data[body:end], fmt[2])
        pos = body + size + (size & 1)
    return None


async def decode(
    source: bytes | Path,
    rate: int,
    *,
    what: str,
    demuxer: str | None = None,
    max_seconds: float | None = None,
) -> Pcm:
    """Any audio ffmpeg reads -> mono s16 at `rate`, measured by ebur128 in the same process.

    `source` is the bytes (piped) or a file: an M4A whose index (`moov`) follows its audio, as
    phones write them, needs a seekable input. `demuxer` forces ffmpeg's reader (`-f`), so a
    recording is read as what its first bytes say, never as a playlist or a script that names
    other files. At most `max_seconds` are decoded: a small file can hold hours of audio.
    Raises InvalidAudioError if ffmpeg cannot decode it or it holds (almost) no sound: a 200 reply
    with an HTML body, a truncated file, a 0-byte output all end here.
    """
    if isinstance(source, Path):
        if _size(source) == 0:
            raise InvalidAudioError(f"{what}: empty audio")
        forced = ["-f", demuxer] if demuxer else []
        # Only the file protocol: nothing in the file can make ffmpeg open a URL.
        source_args = ["-protocol_whitelist", "file", *forced, "-i", file_input(source)]
        data = b""
    else:
        if not source:
            raise InvalidAudioError(f"{what}: empty audio")
        source_args = [*(["-f", demuxer] if demuxer else []), "-i", "pipe:0"]
        data = source
    limit = ["-t", f"{max_seconds:.3f}"] if max_seconds is not None else []
    argv = [
        "ffmpeg", "-nostdin", "-hide_banner", "-nostats", "-loglevel", "info",
        *source_args, *limit,
        "-af", f"aresample={rate},aformat=channel_layouts=mono,ebur128=framelog=verbose",
        "-f", "s16le", "-ac", "1", "-ar", str(rate), "pipe:1",
    ]  # fmt: skip
    try:
        out, err = await run_tool(argv, data, what=what)
    except ToolTimeoutError:
        raise
    except RenderError as exc:
        raise InvalidAudioError(f"{exc}") from None
    match = _I_RE.findall(err.decode("utf-8", "replace"))
    if not match:
        raise InvalidAudioError(f"{what}: ffmpeg reported no loudness")
    pcm = Pcm(out[: len(out) - len(out) % 2], rate, float(match[-1]))
    check_sound(pcm, what=what)
    return pcm


def file_input(path: Path) -> str:
    """`path` as an ffmpeg input that is only ever a file (a name may contain `:` or start
    with `-`)."""
    return f"file:{path.absolute()}"


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError as exc:
        raise InvalidAudioError(f"cannot read {path}: {exc.strerror}") from None


def measured(pcm: Pcm) -> Pcm:
    """`pcm` with its loudness computed once (CPU-bound: call it through asyncio.to_thread)."""
    return (
        pcm if pcm.lufs is not None else replace(pcm, lufs=integrated_loudness(pcm.data, pcm.rate))
    )


def check_sound(pcm: Pcm, *, what: str) -> None:
    if pcm.seconds < _MIN_SAMPLES_S:
        raise InvalidAudioError(f"{what}: no audio decoded ({pcm.seconds * 1000:.0f} ms)")
    if pcm.loudness() <= _SILENCE_LUFS:
        raise InvalidAudioError(f"{what}: audio is silent")


async def run_tool(
    argv: list[str], stdin: bytes, *, what: str, limit_s: float = FFMPEG_TIMEOUT_S
) -> tuple[bytes, bytes]:
    """Run a helper binary with `stdin`, return (stdout, stderr); kill it on timeout or cancel."""
    proc = await start_tool(argv, what=what)
    return await finish_tool(proc, argv[0], stdin, what=what, limit_s=limit_s)


async def start_tool(argv: list[str], *, what: str) -> asyncio.subprocess.Process:
    """Start a helper binary that waits for its stdin: `finish_tool` feeds it, `stop_tool` ends it.

    Starting ffmpeg costs ~65 ms of loading before it reads a byte; a caller that starts it while
    the input is still being made (as a shell pipeline does) hides that behind the speech engine.
    """
    try:
        return await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except OSError as exc:
        raise RenderError(f"{what}: cannot start {argv[0]}: {exc}") from None


async def finish_tool(
    proc: asyncio.subprocess.Process,
    name: str,
    stdin: bytes,
    *,
    what: str,
    limit_s: float = FFMPEG_TIMEOUT_S,
) -> tuple[bytes, bytes]:
    """Feed a started tool `stdin`, return (stdout, stderr); kill it on timeout or cancel."""
    try:
        out, err = await asyncio.wait_for(proc.communicate(stdin), limit_s)
    except TimeoutError:
        raise ToolTimeoutError(f"{what}: {name} took longer than {limit_s:g}s") from None
    finally:
        await stop_tool(proc)
    if proc.returncode != 0:
        tail = err.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
        raise RenderError(f"{what}: {name} failed (exit {proc.returncode}): {tail[0]}")
    return out, err


async def stop_tool(proc: asyncio.subprocess.Process) -> None:
    """Kill a tool that is still running (timed out, cancelled, or never fed); reap it."""
    if proc.returncode is None:  # never leave a child behind
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()


def gain_for(pcm: Pcm, target_lufs: float, ceiling_dbfs: float) -> float:
    """The linear gain (dB) bringing `pcm` to `target_lufs` once peaks are limited at the ceiling.

    Without clipping, loudness moves exactly with the gain. When peaks must be limited, the energy
    the limiter takes is estimated by hard-clipping a copy (gated, unweighted power: a correction of
    a dB or two, so the weighting hardly matters) and added back; three rounds converge.
    """
    gain = target_lufs - pcm.loudness()
    if pcm.peak_dbfs + gain <= ceiling_dbfs:
        return gain
    base = _gated_power(pcm.data, pcm.rate)
    if base <= 0:
        return gain
    ceiling = 10 ** (ceiling_dbfs / 20)
    wanted = gain
    for _ in range(3):
        linear = 10 ** (gain / 20)
        # mul() saturates at int16 full scale: scaling by linear/ceiling then by ceiling clips at it
        clipped = audioop.mul(audioop.mul(pcm.data, 2, linear / ceiling), 2, ceiling)
        loss = 10 * math.log10(_gated_power(clipped, pcm.rate) / (base * linear * linear))
        gain = min(wanted - loss, wanted + 6)  # loss <= 0: ask for more, within reason
    return gain


def widened(pcm: Pcm, gain_db: float, headroom: int) -> bytes:
    """`pcm`'s samples as s32 carrying `gain_db` divided by `headroom`: gain without clipping."""
    wide = audioop.lin2lin(pcm.data, 2, 4)  # x * 65536: the same full scale, 16 more bits below
    return audioop.mul(wide, 4, 10 ** (gain_db / 20) / headroom)


def _gated_power(pcm: bytes, rate: int) -> float:
    """Mean square of the 100 ms blocks above the relative gate (unweighted, for ratios only)."""
    step = int(rate * 0.1) * 2
    sub = [audioop.rms(pcm[i : i + step], 2) ** 2 for i in range(0, len(pcm) - step + 1, step)]
    loud = [z for z in sub if z > 0]
    if not loud:
        return 0.0
    gate = sum(loud) / len(loud) / 10
    kept = [z for z in loud if z > gate]
    return sum(kept) / len(kept)


def integrated_loudness(pcm: bytes, rate: int) -> float:
    """BS.1770 gated integrated loudness of mono s16 PCM, in LUFS (-inf as -120)."""
    n = len(pcm) // 2
    step = int(rate * 0.1)
    if n < 4 * step:
        return _SILENCE_LUFS - 50
    # 16-bit arithmetic scaled by 1/4 (no FIR sum can saturate): as exact as 32-bit, twice as fast
    x = audioop.mul(pcm[: 2 * n], 2, 0.25)
    x = audioop.bias(x, 2, -audioop.avg(x, 2))  # DC removal stands in for the 38 Hz high-pass
    taps = _shelf_fir(rate)
    pad = b"\0" * (2 * (len(taps) // 2))
    padded = pad + x + pad
    # Linear phase: taps k and -k are equal, so each pair costs one multiply (|x| <= 8192 after the
    # scaling above, so a pair's sum cannot saturate either).
    mid, size = len(taps) // 2, len(x)
    y = audioop.mul(x, 2, taps[mid])
    for k in range(1, mid + 1):
        pair = audioop.add(padded[2 * (mid - k) :][:size], padded[2 * (mid + k) :][:size], 2)
        y = audioop.add(y, audioop.mul(pair, 2, taps[mid + k]), 2)
    # mean square per 100 ms; a 400 ms gating block is the mean of four consecutive ones
    sub = [
        (audioop.rms(y[2 * i : 2 * (i + step)], 2) / _FULL) ** 2
        for i in range(0, n - step + 1, step)
    ]
    blocks = [sum(sub[j : j + 4]) / 4 for j in range(len(sub) - 3)]
    gated = [z for z in blocks if _lufs(z) > _SILENCE_LUFS]
    if not gated:
        return _SILENCE_LUFS - 50
    relative = _lufs(sum(gated) / len(gated)) - 10
    gated = [z for z in gated if _lufs(z) > relative]
    return _lufs(sum(gated) / len(gated))


def _lufs(mean_square: float) -> float:
    return -0.691 + 10 * math.log10(mean_square) if mean_square > 0 else -200.0


@functools.cache
def _shelf_fir(rate: int, taps: int = 31) -> tuple[float, ...]:
    """Linear-phase FIR with the magnitude of BS.1770's high-shelf pre-filter at `rate`."""
    # The shelf biquad at any rate, from its analog prototype (constants behind BS.1770's table).
    gain_db, q, fc = 3.99984385397, 0.7071752369554193, 1681.9744509555319
    a = 10 ** (gain_db / 40)
    w0 = 2 * math.pi * fc / rate
    alpha, cos = math.sin(w0) / (2 * q), math.cos(w0)
    sq = 2 * math.sqrt(a) * alpha
    b = (
        a * ((a + 1) + (a - 1) * cos + sq),
        -2 * a * ((a - 1) + (a + 1) * cos),
        a * ((a + 1) + (a - 1) * cos - sq),
    )
    den = (
        (a + 1) - (a - 1) * cos + sq,
        2 * ((a - 1) - (a + 1) * cos),
        (a + 1) - (a - 1) * cos - sq,
    )

    def magnitude(f: float) -> float:
        z = complex(math.cos(2 * math.pi * f / rate), -math.sin(2 * math.pi * f / rate))
        return abs((b[0] + b[1] * z + b[2] * z * z) / (den[0] + den[1] * z + den[2] * z * z))

    grid = 512
    mags = [magnitude(k * rate / grid) for k in range(grid // 2 + 1)]
    mid = taps // 2
    out = []
    for i in range(taps):
        s = sum(
            (1 if k in (0, grid // 2) else 2) * m * math.cos(2 * math.pi * k * (i - mid) / grid)
            for k, m in enumerate(mags)
        )
        hamming = 0.54 - 0.46 * math.cos(2 * math.pi * i / (taps - 1))
        out.append(s / grid * hamming)
    return tuple(out)
