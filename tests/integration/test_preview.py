"""`broadcastd preview` writes exactly what a hamlet will hear and prints its script (issue 17,
item 11): the file holds the very clips the daemon's dispatcher publishes, in its order."""

from __future__ import annotations

import asyncio

from support.bulletin import DAY, SPOKEN, published_clips, write_commune

from broadcastd import cli


async def test_the_preview_is_the_playlist_the_daemon_publishes(tmp_path, capsys):
    config_path = write_commune(tmp_path)
    out = tmp_path / "bulletin.mp3"
    argv = ["preview", "-c", str(config_path), "--hamlet", "ban-a", "--date", str(DAY)]
    # cli.run uses asyncio.run, so it runs in a thread, as a separate process would
    assert await asyncio.to_thread(cli.run, [*argv, "--slot", "noon", "--out", str(out)]) == 0
    script = capsys.readouterr().out
    clips = await published_clips(config_path)
    assert len(clips) == 5  # intro, tiem in vi and dao, hop, outro
    # The same encoded frames, in the same order: what the speakers decode, byte for byte.
    assert b"".join(clips) in out.read_bytes()
    rows = [line for line in script.splitlines() if line.startswith("│")]
    cells = [[c.strip() for c in row.strip("│").split("│")] for row in rows]
    assert [(c[1], c[2], c[3]) for c in cells if c[0]] == [
        ("intro", "zxx", "chime"),
        ("tiem", "vi", "espeak"),
        ("tiem", "dao", "recording"),
        ("hop", "vi", "espeak"),
        ("outro", "zxx", "chime"),
    ]
    assert SPOKEN in script
    assert "(recording vaccine-dao.ogg)" in script
    assert f"written to {out}" in script


def test_without_a_slot_the_next_one_of_the_day_and_clear_refusals(tmp_path, capsys):
    config_path = write_commune(tmp_path)
    base = ["preview", "-c", str(config_path), "--out", str(tmp_path / "b.mp3")]
    assert cli.run([*base, "--hamlet", "ban-z"]) == 2
    assert "--hamlet must be one of ban-a, ban-b, got: 'ban-z'" in capsys.readouterr().err
    assert cli.run([*base, "--hamlet", "ban-a", "--slot", "evening"]) == 2
    assert "--slot must be one of noon, afternoon, got: 'evening'" in capsys.readouterr().err
    assert cli.run([*base, "--hamlet", "ban-b", "--date", str(DAY)]) == 0
    assert "Bản B (ban-b), noon 2026-11-30 11:30" in capsys.readouterr().out
    assert cli.run([*base, "--hamlet", "ban-b", "--date", str(DAY), "--slot", "afternoon"]) == 1
    err = capsys.readouterr().err
    assert "nothing plays in ban-b in afternoon on 2026-11-30: no file written" in err
    bad = ["preview", "-c", str(config_path), "--hamlet", "ban-a", "--date", str(DAY)]
    assert cli.run([*bad, "--out", str(tmp_path / "b.flac")]) == 1
    assert "name a .mp3, .wav, .opus or .ogg file" in capsys.readouterr().err


def test_the_script_shows_the_words_as_spoken(tmp_path, capsys):
    config_path = write_commune(tmp_path)
    text = config_path.read_text(encoding="utf-8").replace("tối nay", "lúc 19h30 tối nay")
    config_path.write_text(text, encoding="utf-8")
    argv = ["preview", "-c", str(config_path), "--hamlet", "ban-b", "--date", str(DAY)]
    assert cli.run([*argv, "--out", str(tmp_path / "b.mp3")]) == 0
    script = capsys.readouterr().out  # not a terminal: 160 columns, no wrapping
    assert "lúc mười chín giờ ba mươi phút tối nay" in script
    assert "19h30" not in script


def test_without_the_daemons_state_dir_it_renders_in_a_temporary_folder(tmp_path, capsys):
    config_path = write_commune(tmp_path)
    (
        tmp_path / "state"
    ).rmdir()  # not installed here, or another user's: never created, never written
    out = tmp_path / "b.wav"
    argv = ["preview", "-c", str(config_path), "--hamlet", "ban-b", "--date", str(DAY)]
    assert cli.run([*argv, "--out", str(out)]) == 0
    assert "rendered afresh in a temporary folder" in capsys.readouterr().out
    assert not (tmp_path / "state").exists()
    assert out.read_bytes()[:4] == b"RIFF"
