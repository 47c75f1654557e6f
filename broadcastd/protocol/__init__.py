"""The MQTT wire contract (DESIGN.md §5): topics, canonical JSON and signatures, envelopes, keys,
node payloads and size limits. `from broadcastd import protocol` is the one import for all of it."""

from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from broadcastd.models import PRIORITIES
from broadcastd.protocol.beacon import beacon_payload, is_beacon, verify_beacon
from broadcastd.protocol.envelopes import (
    ACTIONS,
    MAX_CLIP_BYTES,
    MAX_ID,
    MAX_ITEMS,
    MAX_TEXT,
    MAX_TIME,
    STATUSES,
    Control,
    Playlist,
    PlaylistItem,
    control_envelope,
    playlist_envelope,
    validate_control,
    validate_playlist,
)
from broadcastd.protocol.keys import (
    KeyFileExistsError,
    generate_private_key,
    load_private_key,
    load_public_key,
    public_key_b64,
)
from broadcastd.protocol.limits import CHUNK_SIZE, VERSION, WIRE_ID_MAX, chunk_count, is_wire_id
from broadcastd.protocol.payloads import (
    AckMessage,
    ack_payload,
    heartbeat_payload,
    parse_ack,
    state_payload,
)
from broadcastd.protocol.receipts import receipt_payload, verify_receipt
from broadcastd.protocol.signing import (
    MAX_ENVELOPE_BYTES,
    REJECT_REASONS,
    Signed,
    canonical_json,
    decode_json,
    encode,
    iter_chunks,
    seal,
    sign,
    signed_playlist,
    verify,
)
from broadcastd.protocol.topics import Topics

__all__ = [
    "ACTIONS",
    "CHUNK_SIZE",
    "MAX_CLIP_BYTES",
    "MAX_ENVELOPE_BYTES",
    "MAX_ID",
    "MAX_ITEMS",
    "MAX_TEXT",
    "MAX_TIME",
    "PRIORITIES",
    "REJECT_REASONS",
    "STATUSES",
    "VERSION",
    "WIRE_ID_MAX",
    "AckMessage",
    "Control",
    "Ed25519PrivateKey",
    "Ed25519PublicKey",
    "KeyFileExistsError",
    "Playlist",
    "PlaylistItem",
    "Signed",
    "Topics",
    "ack_payload",
    "beacon_payload",
    "canonical_json",
    "chunk_count",
    "control_envelope",
    "decode_json",
    "encode",
    "generate_private_key",
    "heartbeat_payload",
    "is_beacon",
    "is_wire_id",
    "iter_chunks",
    "load_private_key",
    "load_public_key",
    "parse_ack",
    "playlist_envelope",
    "public_key_b64",
    "receipt_payload",
    "seal",
    "sign",
    "signed_playlist",
    "state_payload",
    "validate_control",
    "validate_playlist",
    "verify",
    "verify_beacon",
    "verify_receipt",
]
