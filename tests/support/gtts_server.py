"""A fake Google Translate TTS endpoint on 127.0.0.1 for gTTS, and a blackholed port.

Point gTTS at it with `GttsEngine(base_url=server.url)` or BROADCASTD_GTTS_URL=server.url.
Modes: "good" (the batchexecute reply gTTS parses, carrying a real mp3), "slow" (good, after
`delay` seconds), "stalled" (reads the request, never answers), "429", "html" (200 with a web page).
"""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, ClassVar, Self

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


def make_speech_mp3(text: str, path: Path) -> bytes:
    """A real mp3 of `text` (espeak-ng | ffmpeg), standing in for Google's voice."""
    wav = subprocess.run(
        ["espeak-ng", "-v", "vi", "--stdout", text], check=True, capture_output=True
    ).stdout
    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-y",
            "-i",
            "pipe:0",
            "-ar",
            "24000",
            "-ac",
            "1",
            "-b:a",
            "64k",
            str(path),
        ],
        input=wav,
        check=True,
    )
    return path.read_bytes()


class FakeGtts:
    """`with FakeGtts(mp3) as fake:`; set `fake.mode`; `fake.requests` counts POSTs, `fake.bodies`
    keeps them."""

    def __init__(self, mp3: bytes, *, mode: str = "good", delay: float = 0.0) -> None:
        self.mp3 = mp3
        self.mode = mode
        self.delay = delay
        self.requests = 0
        self.bodies: list[bytes] = []  # each POST's form body (gTTS's text, language and speed)
        self.release = threading.Event()  # ends stalled/slow replies at shutdown
        self.held = 0  # stalled requests still waiting for `release`, i.e. never answered yet
        self._held_lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            modes: ClassVar[dict[str, str]] = {}

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                fake.bodies.append(self.rfile.read(length))
                fake.requests += 1
                if fake.mode == "stalled":
                    fake.hold()
                    return
                if fake.mode == "slow":
                    fake.release.wait(fake.delay)
                if fake.mode == "429":
                    self._reply(429, b"Too Many Requests", "text/plain")
                elif fake.mode == "html":
                    page = b"<!DOCTYPE html><html><body>Unusual traffic detected</body></html>"
                    self._reply(200, page, "text/html")
                else:
                    b64 = base64.b64encode(fake.mp3).decode()
                    inner = json.dumps([b64], separators=(",", ":"))
                    row = json.dumps(
                        [["wrb.fr", "jQ1olc", inner, None, None, None, "generic"]],
                        separators=(",", ":"),
                    )
                    self._reply(200, (")]}'\n\n" + row + "\n").encode(), "application/json")

            def _reply(self, status: int, body: bytes, ctype: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def hold(self) -> None:
        """Answer nothing until shutdown (`held` counts the requests waiting so)."""
        with self._held_lock:
            self.held += 1
        self.release.wait(30)
        with self._held_lock:
            self.held -= 1

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


class Blackhole:
    """A listening loopback socket that never accepts or answers: connects succeed, reads hang."""

    def __enter__(self) -> Self:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/"
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()


def serve(mp3: bytes, mode: str = "good") -> Iterator[FakeGtts]:
    with FakeGtts(mp3, mode=mode) as fake:
        yield fake
