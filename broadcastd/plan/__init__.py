"""The plan: pure functions from a config and dates to the slots each hamlet plays, exercises."""

from broadcastd.plan.exercise import exercise_plans, next_exercise
from broadcastd.plan.slotplan import build_plan, plan_warnings

__all__ = ["build_plan", "exercise_plans", "next_exercise", "plan_warnings"]
