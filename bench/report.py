"""Medians, paired ratios and the markdown tables printed at the end of a run."""
from __future__ import annotations

import statistics
from collections import Counter
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

Record = Dict[str, Any]

# headline metric per workload: (record key, label, which direction is better)
HEADLINE = {
    "persistent": ("msgs_per_s", "msgs/s", "higher"),
    "churn": ("msgs_per_s", "msgs/s", "higher"),
    "bulk": ("MB_per_s", "MB/s", "higher"),
    "idle": ("kib_per_conn", "KiB/conn", "lower"),
}


def _values(records: Iterable[Record], key: str) -> List[float]:
    return [r[key] for r in records if isinstance(r.get(key), (int, float))]


def _spread(values: Sequence[float], digits: int = 1) -> str:
    """"median [min–max]", or the single value, or a dash."""
    if not values:
        return "–"
    fmt = "%%.%df" % digits
    median = fmt % statistics.median(values)
    if len(values) == 1:
        return median
    return "%s [%s–%s]" % (median, fmt % min(values), fmt % max(values))


def _statuses(records: Sequence[Record]) -> str:
    counts = Counter(r["status"] for r in records)
    return ", ".join("%d× %s" % (n, status) for status, n in sorted(counts.items()))


def _peak_mib(records: Sequence[Record]) -> List[float]:
    return [v / 1024 for v in _values(records, "server_peak_rss_kib")]


def paired_ratios(records: Sequence[Record], workload: str, numerator: str, denominator: str
                  ) -> Optional[Record]:
    """numerator/denominator on the headline metric: median of per-round ratios and ratio of medians."""
    key = HEADLINE[workload][0]
    by_round: Dict[Tuple[str, int], Record] = {}
    for r in records:
        if r["workload"] == workload and isinstance(r.get(key), (int, float)):
            by_round[(r["server"], r["round"])] = r
    rounds = sorted({rnd for (_, rnd) in by_round})
    matched = [(by_round[(numerator, rnd)], by_round[(denominator, rnd)]) for rnd in rounds
               if (numerator, rnd) in by_round and (denominator, rnd) in by_round]
    matched = [(a, b) for a, b in matched if b[key] > 0]
    if not matched:
        return None
    pairs = [(a[key], b[key]) for a, b in matched]
    # a value from a timed-out or dying run is still a measurement, but the reader must know
    caveats = sorted({"%s %s" % (r["server"], r["status"]) for pair in matched for r in pair if r["status"] != "ok"})
    med_a = statistics.median(a for a, _ in pairs)
    med_b = statistics.median(b for _, b in pairs)
    return {"type": "ratio", "workload": workload, "metric": key, "better": HEADLINE[workload][2],
            "numerator": numerator, "denominator": denominator, "pairs": len(pairs),
            "median_of_paired_ratios": round(statistics.median(a / b for a, b in pairs), 3),
            "ratio_of_medians": round(med_a / med_b, 3) if med_b > 0 else None, "caveats": caveats}


def workload_table(records: Sequence[Record], workload: str, servers: Sequence[str]) -> List[str]:
    if workload == "idle":
        lines = ["| server | runs | KiB/conn | established / requested | fresh txn ok | fresh ms "
                 "| still open | peak RSS MiB | server CPU s |",
                 "|---|---|---|---|---|---|---|---|---|"]
    else:
        lines = ["| server | runs | msgs/s | MB/s | msgs done | peak RSS MiB | server CPU s | client CPU s |",
                 "|---|---|---|---|---|---|---|---|"]
    for server in servers:
        runs = [r for r in records if r["workload"] == workload and r["server"] == server]
        if not runs:
            continue
        if workload == "idle":
            fresh = [r["fresh_ok"] for r in runs if "fresh_ok" in r]
            requested = _values(runs, "conns_requested")
            cells = [_spread(_values(runs, "kib_per_conn"), 2),
                     "%s / %s" % (_spread(_values(runs, "established"), 0), _spread(requested, 0)),
                     "%d/%d" % (sum(fresh), len(fresh)) if fresh else "–", _spread(_values(runs, "fresh_ms"), 1),
                     _spread(_values(runs, "still_open"), 0)]
        else:
            cells = [_spread(_values(runs, "msgs_per_s"), 0), _spread(_values(runs, "MB_per_s"), 2),
                     _spread(_values(runs, "messages_done"), 0)]
        cells += [_spread(_peak_mib(runs), 1), _spread(_values(runs, "server_cpu_s"), 2)]
        if workload != "idle":
            cells.append(_spread(_values(runs, "client_cpu_s"), 2))
        lines.append("| %s | %s | %s |" % (server, _statuses(runs), " | ".join(cells)))
    return lines


def ratio_table(ratios: Sequence[Record]) -> List[str]:
    lines = ["| workload | metric (better) | ratio | median of paired ratios | ratio of medians | pairs | caveats |",
             "|---|---|---|---|---|---|---|"]
    for q in ratios:
        lines.append("| %s | %s (%s) | %s / %s | %.3f | %s | %d | %s |" % (
            q["workload"], HEADLINE[q["workload"]][1], q["better"], q["numerator"], q["denominator"],
            q["median_of_paired_ratios"],
            "–" if q["ratio_of_medians"] is None else "%.3f" % q["ratio_of_medians"], q["pairs"],
            ", ".join(q["caveats"]) or "–"))
    return lines


def failure_notes(records: Sequence[Record]) -> List[str]:
    """The first error per (server, status), so a broken server is obvious without repeating it."""
    seen = set()
    notes = []
    for r in records:
        message = r.get("error") or r.get("server_log_tail")
        key = (r["server"], r["status"])
        if not message or key in seen:
            continue
        seen.add(key)
        notes.append("- %s / %s (%s): %s" % (r["server"], r["workload"], r["status"],
                                            " ".join(str(message).split())[-300:]))
    return notes
