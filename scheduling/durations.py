"""How long ticks and the planner inside them take: cumulative histograms in `TickState.durations`, added
to by the one ticker that holds the lock (scheduling.ticker) and read by /metrics, so every web process
reports the same figures."""

from bisect import bisect_left

# Upper bounds of the buckets, in seconds (+Inf is the last count).
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


def added(durations: dict, spent: dict[str, float]) -> dict:
    """`durations` with each of `spent`'s seconds counted in its histogram (a new dict).

    Each histogram is {"buckets": counts per BUCKETS then +Inf (not cumulative), "sum", "count", "last"}."""
    result = dict(durations)
    for name, seconds in spent.items():
        old = durations.get(name) or {}
        buckets = list(old.get("buckets") or [0] * (len(BUCKETS) + 1))
        if len(buckets) != len(BUCKETS) + 1:  # the buckets changed: start counting afresh
            buckets, old = [0] * (len(BUCKETS) + 1), {}
        buckets[bisect_left(BUCKETS, seconds)] += 1
        result[name] = {
            "buckets": buckets,
            "sum": old.get("sum", 0.0) + seconds,
            "count": old.get("count", 0) + 1,
            "last": seconds,
        }
    return result
