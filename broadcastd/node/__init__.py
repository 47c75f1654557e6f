"""`broadcastd-node`: the reference speaker agent (DESIGN.md §5, §9)."""
