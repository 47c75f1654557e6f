"""`audio.gap` is in the clips, so the speakers, which play a playlist's clips back to back, leave
it (issue 17, item 11: what a hamlet hears has the gaps the config asks for)."""

from __future__ import annotations

from support.bulletin import published_clips, write_commune

from broadcastd.render.loudness import decode


async def test_the_gap_is_silence_in_the_clips_so_the_air_has_it(tmp_path):
    config_path = write_commune(tmp_path)
    clips = await published_clips(config_path)
    rate = 22050
    pcms = [await decode(clip, rate, what="clip") for clip in clips]
    gap = 2 * int(rate * 0.9)  # bytes of 0.9 s of s16 mono: inside the 1 s gap, past the codec
    for pcm in pcms[:-1]:  # the intro and every item end with the gap
        assert pcm.data[-gap:].count(0) > 0.98 * gap
    assert pcms[-1].data[-gap:].count(0) < 0.5 * gap  # the outro ends the bulletin: no gap after it
