"""Free GPUs of one node over time, as the backfill planner books them: a pure step function."""

import math
from bisect import bisect_left, bisect_right

INF = math.inf


class Profile:
    """Free GPUs of one node over time: free now, plus running jobs' GPUs coming back at their time
    limits, minus what a plan has booked (starts and reservations). Times are POSIX seconds.

    A job without a time limit gives its GPUs back at INF, "some unknown time": the level at INF is what
    the node has once every such job has ended. A reservation may be booked at INF (the job starts once
    jobs of unknown length have ended), and a job without a time limit holds its GPUs through INF, so it
    cannot start where it would take GPUs reserved for then. Lookups bisect; `floor` (the least the node
    will ever have free) answers most feasibility checks at once."""

    __slots__ = ("free_now", "events", "times", "levels", "floor")

    def __init__(self, free_now: int, releases: list[tuple[float, int]]):
        self.free_now = free_now
        self.events: dict[float, int] = {}
        for end, gpus in releases:
            self.events[end] = self.events.get(end, 0) + gpus
        self._rebuild()

    def _rebuild(self) -> None:
        self.times = sorted(self.events)
        level, levels = self.free_now, []
        for t in self.times:
            level += self.events[t]
            levels.append(level)
        self.levels = levels
        self.floor = min(self.free_now, min(levels, default=self.free_now))

    def free_at(self, t: float) -> int:
        i = bisect_right(self.times, t) - 1
        return self.free_now if i < 0 else self.levels[i]

    def feasible(self, start: float, end: float, gpus: int) -> bool:
        """Whether `gpus` are free throughout [start, end) (through INF too when end is INF)."""
        if gpus <= self.floor:
            return True
        i = bisect_right(self.times, start) - 1
        j = len(self.times) if end == INF else bisect_left(self.times, end)
        lowest = self.free_now if i < 0 else self.levels[i]
        if j > i + 1:
            lowest = min(lowest, min(self.levels[i + 1 : j]))
        return lowest >= gpus

    def earliest(self, gpus: int, duration: float, after: float, before: float = INF) -> float | None:
        """The first time at or after `after` (and before `before`) from which `gpus` stay free for
        `duration` (INF: once jobs of unknown length have ended), or None if never (or not before)."""
        if before < INF and after >= before:
            return None
        if self.feasible(after, after + duration, gpus):
            return after
        end = len(self.times) if before == INF else bisect_left(self.times, before)
        for k in range(bisect_right(self.times, after), end):
            if self.levels[k] >= gpus and self.feasible(self.times[k], self.times[k] + duration, gpus):
                return self.times[k]
        return None

    def copy(self) -> "Profile":
        twin = Profile(self.free_now, [])
        twin.events = dict(self.events)
        twin._rebuild()
        return twin

    def book(self, start: float, end: float, gpus: int) -> None:
        """Take `gpus` over [start, end) (a negative count gives them back: unbooking)."""
        self.events[start] = self.events.get(start, 0) - gpus
        if end < INF:
            self.events[end] = self.events.get(end, 0) + gpus
        self._rebuild()
