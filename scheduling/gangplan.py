"""Pure placement of gang jobs (one part on each of several nodes): where all parts fit now, and the
earliest time from which they all fit together. Standard library only; used by the planner's walk."""

from collections.abc import Callable, Mapping, Sequence

from gpus.placement import Needs, NodeFree, eligible
from scheduling.profile import Profile

Parts = tuple[tuple[str, tuple[int, ...]], ...]  # (node, GPU indices) per rank, rank 0 first


def place_gang(
    nodes: int,
    per_node: int,
    free: Mapping[str, Sequence[int]],
    meta: Mapping[str, NodeFree],
    needs: Needs,
    usable_node: Callable[[str], bool] = lambda name: True,
) -> Parts | None:
    """`nodes` distinct nodes with `per_node` usable free GPUs each, or None. Best fit, as `place` does
    for one node: the tightest nodes first (whole free nodes stay for bigger jobs), workers before the
    local node, then by name; rank 0 is the first of them."""
    fits = []
    for name in sorted(free):
        if not usable_node(name):
            continue
        usable = eligible(meta[name], free[name], needs)
        if len(usable) >= per_node:
            fits.append(((len(usable), meta[name].local, name), tuple(sorted(usable)[:per_node])))
    if len(fits) < nodes:
        return None
    fits.sort()
    return tuple((key[2], gpus) for key, gpus in fits[:nodes])


def earliest_together(
    nodes: int,
    per_node: int,
    duration: float,
    after: float,
    profiles: Mapping[str, Profile],
    candidates: Sequence[str],
    also: Sequence[tuple[Profile, int]] = (),
) -> tuple[float, tuple[str, ...]] | None:
    """The first time at or after `after` from which `nodes` of `candidates` each keep `per_node` GPUs
    free for `duration`, and each (profile, amount) of `also` (the job's cap slots) keeps `amount`,
    with those nodes (by name), or None if never. Free GPUs and slots only change at a profile's
    breakpoints, so the earliest such time is `after` or one of them."""
    if len(candidates) < nodes:
        return None
    times = {after}
    for profile in [*(profiles[name] for name in candidates), *(p for p, _ in also)]:
        times.update(t for t in profile.times if t > after)
    names = sorted(candidates)
    for t in sorted(times):
        if not all(profile.feasible(t, t + duration, amount) for profile, amount in also):
            continue
        able: list[str] = []
        for name in names:  # by name: the first `nodes` that can are the ones booked
            if profiles[name].feasible(t, t + duration, per_node):
                able.append(name)
                if len(able) == nodes:
                    return t, tuple(able)
    return None
