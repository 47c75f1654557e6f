"""Getting bytes to speakers: the MQTT link, the embedded mosquitto, bulk publishing, audio out."""

from broadcastd.transport.broker import MosquittoProcess
from broadcastd.transport.bulk import BulkPublisher
from broadcastd.transport.credentials import write_broker_files
from broadcastd.transport.link import LinkSettings, MqttLink

__all__ = ["BulkPublisher", "LinkSettings", "MosquittoProcess", "MqttLink", "write_broker_files"]
