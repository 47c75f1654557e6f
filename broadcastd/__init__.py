"""broadcastd: scheduled, signed bulletins for a commune's smart loudspeaker clusters."""

__version__ = "0.1.0"
