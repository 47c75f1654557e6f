"""The plan: pure functions from a config and dates to the slots each hamlet plays, exercises,
and the level each playlist plays at."""

from broadcastd.plan.exercise import exercise_plans, next_exercise
from broadcastd.plan.slotplan import build_plan, plan_warnings
from broadcastd.plan.volume import PlaylistVolume, playlist_volume

__all__ = [
    "PlaylistVolume",
    "build_plan",
    "exercise_plans",
    "next_exercise",
    "plan_warnings",
    "playlist_volume",
]
