"""What phones record: told apart by its bytes, probed, length-checked, rendered like any clip."""

from __future__ import annotations

import subprocess
from typing import TYPE_CHECKING

import pytest
from support.recordings import amr_nb, speech_wav, tone_mp3, transcode, zalo_m4a
from support.rendering import renderer

from broadcastd.models import PlanItem
from broadcastd.render.loudness import InvalidAudioError
from broadcastd.render.recording import RecordingTooLongError, examine, sniff
from broadcastd.render.tts import EspeakEngine

if TYPE_CHECKING:
    from pathlib import Path

# suffix, ffmpeg codec arguments, what sniff calls it, the codec ffprobe names
FORMATS = [
    ("m4a", ("-c:a", "aac", "-b:a", "48k"), "M4A", "aac"),
    ("3gp", ("-ar", "16000", "-c:a", "aac", "-b:a", "24k"), "3GP", "aac"),
    ("aac", ("-c:a", "aac"), "AAC", "aac"),
    ("ogg", ("-c:a", "libopus", "-b:a", "24k"), "Ogg", "opus"),
    ("webm", ("-c:a", "libopus", "-b:a", "24k"), "WebM", "opus"),
    ("mp3", ("-c:a", "libmp3lame", "-b:a", "64k"), "MP3", "mp3"),
    ("raw.mp3", ("-c:a", "libmp3lame", "-id3v2_version", "0"), "MP3", "mp3"),
    ("wav", ("-c:a", "pcm_s16le"), "WAV", "pcm_s16le"),
]


def seconds_of(path: Path) -> float:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", path],
        capture_output=True,
        check=True,
        text=True,
    ).stdout
    return float(out)


@pytest.mark.parametrize(("suffix", "codec", "label", "codec_name"), FORMATS)
async def test_each_phone_format_is_recognised_probed_and_measured(
    tmp_path, suffix, codec, label, codec_name
):
    wav = speech_wav(tmp_path / "speech.wav")
    path = transcode(wav, tmp_path / f"recording.{suffix}", *codec)
    found = await examine(path, max_seconds=60, what="the dao recording")
    assert (found.container.label, found.codec) == (label, codec_name)
    assert found.seconds == pytest.approx(seconds_of(wav), abs=0.15)


async def test_amr_nb_is_decoded(tmp_path):
    """Debian's ffmpeg has no AMR encoder; support/recordings.py writes the bitstream itself."""
    found = await examine(amr_nb(tmp_path / "voice.amr", seconds=3.0), max_seconds=60, what="x")
    assert (found.container.label, found.codec) == ("AMR", "amr_nb")
    assert found.seconds == pytest.approx(3.0, abs=0.05)


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"#EXTM3U\n#EXTINF:1,\nfile:///etc/passwd\n", "not a recording in a format"),
        (b"ffconcat version 1.0\nfile '/etc/passwd'\n", "not a recording in a format"),
        (b"<html><body>Zalo</body></html>", "not a recording in a format"),
        (b"", "not a recording in a format"),
        (b"OggS" + bytes(200), "not decodable audio (ffprobe finds no audio stream in this Ogg)"),
        (b"#!AMR\n", "no audio decoded (0 ms)"),
    ],
)
async def test_what_is_not_a_recording_is_refused_in_one_line(tmp_path, content, why):
    path = tmp_path / "upload"
    path.write_bytes(content)
    with pytest.raises(InvalidAudioError) as info:
        await examine(path, max_seconds=60, what="the dao recording")
    assert str(info.value).startswith("the dao recording: ")
    assert why in str(info.value)
    assert "\n" not in str(info.value)


async def test_a_truncated_m4a_is_refused(tmp_path):
    m4a = zalo_m4a(tmp_path / "zalo.m4a")
    cut = tmp_path / "cut.m4a"
    cut.write_bytes(m4a.read_bytes()[: m4a.stat().st_size // 3])
    with pytest.raises(InvalidAudioError, match=r"^the tay recording: not decodable audio"):
        await examine(cut, max_seconds=60, what="the tay recording")


async def test_longer_than_the_limit_is_refused_with_both_lengths(tmp_path):
    path = zalo_m4a(tmp_path / "zalo.m4a", repeat=2)
    with pytest.raises(RecordingTooLongError) as info:
        await examine(path, max_seconds=2, what="the hmn recording")
    length = round(seconds_of(path))
    assert str(info.value) == (
        f"the hmn recording: 0:{length:02d} long; audio.max_recording allows 0:02"
    )


async def test_a_header_that_claims_less_than_it_holds_is_measured_by_decoding(tmp_path):
    """An MP3 without a Xing header is timed from its first frame's bitrate: 1 s at 320 kbit/s
    followed by 30 s at 32 kbit/s claims 5 s. The decode finds it out (and stops past the limit)."""
    parts = [tone_mp3(tmp_path / "a.mp3", 1, "320k"), tone_mp3(tmp_path / "b.mp3", 30, "32k")]
    lying = tmp_path / "lying.mp3"
    lying.write_bytes(b"".join(p.read_bytes() for p in parts))
    assert seconds_of(lying) < 10
    with pytest.raises(RecordingTooLongError, match=r": longer than 0:10; audio.max_recording"):
        await examine(lying, max_seconds=10, what="the dao recording")


def label(head: bytes) -> str | None:
    found = sniff(head)
    return None if found is None else found.label


def test_sniff_goes_by_bytes_not_names():
    assert label(b"\x00\x00\x00\x20ftypM4A ") == "M4A"
    assert label(b"\x00\x00\x00\x20ftyp3gp4") == "3GP"
    assert label(b"\xff\xf1\x50\x80") == label(b"\xff\xf9\x50\x80") == "AAC"  # ADTS
    assert label(b"\xff\xfb\x90\x64") == "MP3"
    assert label(b"RIFF\x00\x00\x00\x00AVI ") is None  # RIFF, but not WAVE
    assert label(b"fLaC\x00\x00\x00\x22") is None


async def test_a_phone_m4a_renders_from_its_file(tmp_path):
    """Phones (and ffmpeg) write an M4A's index after its audio; read from a pipe, ffmpeg cannot
    reach it once the audio is longer than its probe buffer (~20 s of 48 kbit/s AAC)."""
    m4a = zalo_m4a(tmp_path / "zalo.m4a", repeat=5)
    head = m4a.read_bytes()[:256]
    assert b"moov" not in head, "the index follows the audio, as from a phone"
    r = renderer(tmp_path / "state", [EspeakEngine(5.0)])
    item = PlanItem("announce-1", "Tin", "announcement", "dao", "recording", "normal", 1.0,
                    recording=m4a)  # fmt: skip
    clip = await r.clip_for(item)
    assert clip.duration_ms / 1000 == pytest.approx(seconds_of(m4a) + 1.0, abs=0.3)  # + the gap
    assert r.store.engine_of(r.key_for(item)) == "recording"
