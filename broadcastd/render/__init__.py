"""Audio: the TTS chain (gTTS, espeak-ng), loudness, one encode, the content-addressed store."""

from broadcastd.render.renderer import Renderer, build_renderer
from broadcastd.render.store import AudioStore

__all__ = ["AudioStore", "Renderer", "build_renderer"]
