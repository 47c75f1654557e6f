"""`broadcastd-node`: the reference speaker agent (DESIGN.md §5, §9)."""

from broadcastd.node.agent import NodeAgent
from broadcastd.node.settings import NodeConfig, load_node_config

__all__ = ["NodeAgent", "NodeConfig", "load_node_config"]
