"""Every metric of DESIGN.md §8 on one registry. The names are part of the contract."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

PREFIX = "broadcastd_"


class Metrics:
    """Owns one CollectorRegistry; tests make a fresh one each."""

    def __init__(
        self, registry: CollectorRegistry | None = None, *, per_node: bool = False
    ) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        self.per_node = per_node
        r = self.registry
        p = PREFIX
        self.mqtt_connected = Gauge(
            f"{p}mqtt_connected", "1 while the daemon is connected to the broker", registry=r
        )
        self.nodes = Gauge(
            f"{p}nodes", "Nodes per hamlet and reachability state", ["hamlet", "state"], registry=r
        )
        self.node_up = Gauge(
            f"{p}node_up", "1 if the node is online (per_node only)", ["node", "hamlet"], registry=r
        )
        self.node_transitions_total = Counter(
            f"{p}node_transitions_total",
            "Node reachability transitions",
            ["hamlet", "to"],
            registry=r,
        )
        self.node_clock_skew_seconds = Histogram(
            f"{p}node_clock_skew_seconds",
            "Absolute difference between a node's heartbeat ts and the daemon clock",
            buckets=(0.5, 1, 2, 5, 10, 30, 60, 300, 3600),
            registry=r,
        )
        self.playlists_published_total = Counter(
            f"{p}playlists_published_total",
            "Signed playlists published",
            ["slot", "priority"],
            registry=r,
        )
        self.playlist_acks_total = Counter(
            f"{p}playlist_acks_total", "Playlist acks from nodes", ["hamlet", "status"], registry=r
        )
        self.households_reached = Gauge(
            f"{p}households_reached",
            "Households whose node acked played, last dispatch",
            ["hamlet", "slot"],
            registry=r,
        )
        self.households = Gauge(f"{p}households", "Households per hamlet", ["hamlet"], registry=r)
        self.tts_renders_total = Counter(
            f"{p}tts_renders_total", "TTS render attempts", ["engine", "result"], registry=r
        )
        self.render_cache_hits_total = Counter(
            f"{p}render_cache_hits_total", "Clips served from the render cache", registry=r
        )
        self.render_seconds = Histogram(
            f"{p}render_seconds",
            "Time to render one clip",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
            registry=r,
        )
        self.config_reloads_total = Counter(
            f"{p}config_reloads_total", "Config reloads by result", ["result"], registry=r
        )
        self.bad_messages_total = Counter(
            f"{p}bad_messages_total", "Inbound messages rejected, by reason", ["reason"], registry=r
        )
        self.next_slot_timestamp_seconds = Gauge(
            f"{p}next_slot_timestamp_seconds",
            "Unix time of the next play_at per slot",
            ["slot"],
            registry=r,
        )
        self.dispatch_lag_seconds = Histogram(
            f"{p}dispatch_lag_seconds",
            "Delay between a slot's publish time and the playlist being published",
            buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60, 300),
            registry=r,
        )
        self.slot_audio_not_ready = Gauge(
            f"{p}slot_audio_not_ready",
            "1 when a slot's audio was not rendered `lead` before air time",
            ["slot"],
            registry=r,
        )
        self.tls_certificate_expiry_timestamp_seconds = Gauge(
            f"{p}tls_certificate_expiry_timestamp_seconds",
            "When the speakers' listener certificate (server) or the commune CA expires;"
            " days left: (value - time()) / 86400",
            ["certificate"],
            registry=r,
        )

        # Speakers' telemetry (node.yaml `telemetry`): per node only with per_node, like node_up;
        # label values only ever come from the config's node list, never from a payload.
        self.node_battery_percent = Gauge(
            f"{p}node_battery_percent",
            "Battery charge (per_node only)",
            ["node", "hamlet"],
            registry=r,
        )
        self.node_mains_power = Gauge(
            f"{p}node_mains_power",
            "1 on mains, 0 on battery (per_node only)",
            ["node", "hamlet"],
            registry=r,
        )
        self.node_temperature_celsius = Gauge(
            f"{p}node_temperature_celsius",
            "Board temperature (per_node only)",
            ["node", "hamlet"],
            registry=r,
        )
        self.node_signal_dbm = Gauge(
            f"{p}node_signal_dbm",
            "Mobile signal strength (per_node only)",
            ["node", "hamlet"],
            registry=r,
        )
        self.nodes_on_battery = Gauge(
            f"{p}nodes_on_battery",
            "Nodes whose last telemetry said: no mains power",
            ["hamlet"],
            registry=r,
        )
        self.node_battery_min_percent = Gauge(
            f"{p}node_battery_min_percent",
            "Lowest battery charge among the hamlet's nodes",
            ["hamlet"],
            registry=r,
        )

    def serve(self, host: str, port: int) -> None:
        """Expose /metrics over HTTP (loopback by default, see metrics.listen)."""
        start_http_server(port, addr=host, registry=self.registry)
