#!/usr/bin/env python3
"""connect_report.py — the table scripts/bench/connect.sh prints.

Reads connect.sh's raw.tsv, one line per sample:
  wrk   SECTION SERVER FILE[,FILE...]   (several files: wrk runs started
                                         together, added up)
  time  LABEL MS
  note  SECTION TEXT
  skip  SECTION REASON
and prints, per section, requests/s, p50, p99 and errors of every server
(the median round by requests/s), the ratios the issue sets targets for,
and whether each target is met. Targets are reported, never enforced.
"""

import argparse
import os
import re
import statistics
import sys

NAMES = {
    "atrium": "Atrium",
    "atrium-cpus": "Atrium, procs = CPUs",
    "nginx": "nginx",
    "epoll": "bare epoll loop (reference)",
    "chp": "configurable-http-proxy",
    "direct": "direct to the processes",
    "direct-headers": "direct, with Connect's headers (reference)",
}


def parse_duration_ms(s):
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", s)
    if not m:
        raise ValueError(f"unknown wrk duration {s!r}")
    v, unit = float(m.group(1)), m.group(2)
    return v * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def parse_wrk(path):
    text = open(path).read()
    r = {"rps": None, "p50": None, "p99": None, "non2xx": 0, "sockerr": 0, "requests": 0}
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    if not m:
        raise ValueError(f"{path}: no Requests/sec in wrk output:\n{text}")
    r["rps"] = float(m.group(1))
    for q in ("50", "99"):
        m = re.search(rf"^\s+{q}%\s+(\S+)", text, re.M)
        if m:
            r["p" + q] = parse_duration_ms(m.group(1))
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    if m:
        r["non2xx"] = int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if m:
        r["sockerr"] = sum(int(x) for x in m.groups())
    m = re.search(r"(\d+) requests in", text)
    if m:
        r["requests"] = int(m.group(1))
    return r


def combine(paths):
    """One sample from wrk runs that ran side by side: requests/s and errors
    add up, p50 is the request-weighted mean, p99 the worst (an upper bound
    of the combined p99)."""
    runs = [parse_wrk(p) for p in paths]
    total = sum(r["requests"] for r in runs) or 1
    return {
        "rps": sum(r["rps"] for r in runs),
        "p50": sum(r["p50"] * r["requests"] for r in runs) / total if all(r["p50"] is not None for r in runs) else None,
        "p99": max(r["p99"] for r in runs) if all(r["p99"] is not None for r in runs) else None,
        "errors": sum(r["non2xx"] + r["sockerr"] for r in runs),
        "requests": sum(r["requests"] for r in runs),
    }


def median_round(samples):
    """The sample with the median requests/s; errors summed over all."""
    ordered = sorted(samples, key=lambda s: s["rps"])
    m = dict(ordered[(len(ordered) - 1) // 2])
    m["errors_all"] = sum(s["errors"] for s in samples)
    m["requests_all"] = sum(s["requests"] for s in samples)
    m["rps_all"] = [s["rps"] for s in samples]
    return m


def paired(a, b, key):
    """The median of the rounds' ratios a/b, and the ratios. Within a round
    the servers run one right after the other, so a round's ratio compares
    them under the same machine conditions, which drift between rounds by
    more than the differences measured; the median round of each server
    taken separately can come from different conditions."""
    rs = [x[key] / y[key] for x, y in zip(a, b) if x[key] and y[key]]
    return (statistics.median(rs) if rs else None), rs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--raw", required=True)
    ap.add_argument("--versions", required=True)
    ap.add_argument("--rounds", type=int, required=True)
    ap.add_argument("--wrk", required=True)
    ap.add_argument("--flask-procs", required=True)
    ap.add_argument("--cpus", required=True)
    ap.add_argument("--load", default="?")
    ap.add_argument("--load-end", default="?")
    a = ap.parse_args()

    wrk, times, notes, skips = {}, {}, [], {}
    for line in open(a.raw):
        f = line.rstrip("\n").split("\t")
        if f[0] == "wrk":
            sample = combine(f[3].split(","))
            # The measured server's CPU ticks during the sample, when known.
            sample["cpu_ticks"] = int(f[4]) if len(f) > 4 and f[4] else None
            wrk.setdefault(f[1], {}).setdefault(f[2], []).append(sample)
        elif f[0] == "time":
            times.setdefault(f[1], []).append(int(f[2]))
        elif f[0] == "note":
            notes.append(f"{f[1]}: {f[2]}")
        elif f[0] == "skip":
            skips[f[1]] = f[2]

    med = {sec: {s: median_round(v) for s, v in servers.items()} for sec, servers in wrk.items()}
    out = []
    out.append("Connect benchmark: same machine, same run")
    out.append(f"{a.cpus} CPUs shared by wrk, proxies and apps; load average {a.load} at start, {a.load_end} at end")
    out.append("(a load average near or above the CPU count means something else was running: expect noise)")
    out.append(f"wrk {a.wrk}, after a 1s warm-up; {a.rounds} rounds, servers taking turns; the round with the median")
    out.append("req/s is shown, errors (non-2xx + socket errors) are summed over all rounds; target ratios are the")
    out.append("median of the rounds' ratios (servers run back to back within a round); CPU µs/req is the")
    out.append("server's own processes' user+system CPU time per request over all rounds (Atrium's process only,")
    out.append("not the apps'), which the machine's noise moves less than req/s")
    out.append("")

    rows = []
    head = ["section", "server", "req/s", "p50 ms", "p99 ms", "errors", "CPU µs/req", "req/s of each round"]
    tick_us = 1e6 / os.sysconf("SC_CLK_TCK")

    def cpu_per_request(section, s):
        """The server's CPU time per request over all rounds (user+sys)."""
        samples = wrk[section][s]
        if any(x["cpu_ticks"] is None for x in samples):
            return None
        reqs = sum(x["requests"] for x in samples)
        return sum(x["cpu_ticks"] for x in samples) * tick_us / reqs if reqs else None

    def add(section, s):
        m = med[section][s]
        cpu = cpu_per_request(section, s)
        rows.append([
            section, NAMES.get(s, s), f"{m['rps']:.0f}",
            f"{m['p50']:.2f}" if m["p50"] is not None else "-",
            f"{m['p99']:.2f}" if m["p99"] is not None else "-",
            f"{m['errors_all']}", f"{cpu:.1f}" if cpu is not None else "-",
            " ".join(f"{x:.0f}" for x in m["rps_all"]),
        ])

    for section, order in (("proxy", ["atrium", "atrium-cpus", "nginx", "epoll", "chp"]), ("fastapi", ["atrium", "nginx", "epoll", "direct", "direct-headers"]), ("flask", ["atrium"])):
        for s in order:
            if s in med.get(section, {}):
                add(section, s)
    if times.get("deploy"):
        rows.append(["deploy", "rsconnect deploy fastapi, warm cache", f"{statistics.median(times['deploy']) / 1000:.1f} s", "", "", "", "", ""])

    if rows:
        widths = [max(len(str(r[i])) for r in rows + [head]) for i in range(len(head))]

        def line(r):
            return "  ".join(str(c).ljust(widths[i]) if i < 2 else str(c).rjust(widths[i]) for i, c in enumerate(r))

        out.append(line(head))
        out.append(line(["-" * w for w in widths]))
        out += [line(r) for r in rows]
        out.append("")

    verdicts = []

    def target(name, value, op, goal, fmt="{:.2f}x", extra=""):
        if value is None:
            verdicts.append(f"  {name}: NOT MEASURED{extra}")
            return
        ok = value >= goal if op == ">=" else value <= goal
        verdicts.append(f"  {name}: {fmt.format(value)} (target {op} {fmt.format(goal)}) {'MET' if ok else 'NOT MET'}{extra}")

    def valid(section, s):
        m = med.get(section, {}).get(s)
        return m if m and m["errors_all"] == 0 else None

    def why(section, servers):
        if section in skips:
            return f" ({skips[section]})"
        bad = [NAMES[s] for s in servers if med.get(section, {}).get(s) and med[section][s]["errors_all"]]
        return f" (errors from {', '.join(bad)})" if bad else ""

    def ratio(section, a, b, key):
        """paired() over the section's rounds, with the rounds' ratios for the verdict line."""
        r, rs = paired(wrk[section][a], wrk[section][b], key)
        return r, " (rounds: " + " ".join(f"{x:.2f}" for x in rs) + ")"

    p = med.get("proxy", {})
    if p or "proxy" in skips:
        at, ng, ch = p.get("atrium"), p.get("nginx"), p.get("chp")
        r, rounds = ratio("proxy", "atrium", "nginx", "rps") if at and ng else (None, "")
        target("proxy req/s, Atrium / nginx", r, ">=", 1.0, extra=rounds + " (Connect's default procs)")
        if p.get("atrium-cpus") and ng:
            r, rounds = ratio("proxy", "atrium-cpus", "nginx", "rps")
            target("proxy req/s, Atrium with procs = CPUs / nginx", r, ">=", 1.0, extra=rounds + " (as many as nginx's workers)")
        r, rounds = ratio("proxy", "atrium", "chp", "rps") if at and ch else (None, "")
        target("proxy req/s, Atrium / configurable-http-proxy", r, ">=", 3.0,
               extra=rounds + (" (configurable-http-proxy had errors: its ratio is against a server that dropped requests)" if ch and ch["errors_all"] else ""))
        if at and at["errors_all"]:
            verdicts.append(f"  proxy: Atrium had {at['errors_all']} errors: NOT MET")
        cn = cpu_per_request("proxy", "nginx") if "nginx" in wrk.get("proxy", {}) else None
        for s in ("atrium", "atrium-cpus", "epoll"):
            ca = cpu_per_request("proxy", s) if s in wrk.get("proxy", {}) else None
            if ca and cn:
                verdicts.append(f"  (for reference, no target: CPU per request, {NAMES[s]} / nginx: {ca / cn:.2f}x; below 1 is cheaper)")
        if valid("proxy", "epoll") and ng:
            r, rounds = ratio("proxy", "epoll", "nginx", "rps")
            verdicts.append(f"  (for reference, no target: proxy req/s, bare epoll loop / nginx: {r:.2f}x{rounds})")
    at, di = valid("fastapi", "atrium"), valid("fastapi", "direct")
    if "fastapi" in med or "fastapi" in skips:
        for name, key, op, goal in (("req/s", "rps", ">=", 0.95), ("p99", "p99", "<=", 1.2)):
            r, rounds = ratio("fastapi", "atrium", "direct", key) if at and di else (None, "")
            target(f"fastapi {name}, through Atrium / direct", r, op, goal, extra=rounds + why("fastapi", ["atrium", "direct"]))
        # The references, each against direct: nginx and the bare loop in
        # Atrium's place, and no proxy but with Connect's headers (the
        # ceiling for any proxy in Connect's place).
        for s, what, tail in (("nginx", "through nginx", ""),
                              ("direct-headers", "direct with Connect's headers",
                               "; what the app's parsing of them costs, the ceiling for any proxy in Connect's place"),
                              ("epoll", "through the bare epoll loop", "")):
            if valid("fastapi", s) and di:
                (rr, _), (rp, _) = ratio("fastapi", s, "direct", "rps"), ratio("fastapi", s, "direct", "p99")
                verdicts.append(f"  (for reference, no target: fastapi {what} / direct: {rr:.2f}x req/s, {rp:.2f}x p99{tail})")
        if valid("fastapi", "direct-headers") and at:
            rr, rounds = ratio("fastapi", "atrium", "direct-headers", "rps")
            verdicts.append(f"  (for reference, no target: fastapi through Atrium / direct with Connect's headers: {rr:.2f}x req/s{rounds})")
    if "flask" in med or "flask" in skips:
        fl = med.get("flask", {}).get("atrium")
        extra = f" ({a.flask_procs} processes)"
        if fl and fl["errors_all"]:
            extra += f"; {fl['errors_all']} errors: NOT MET"
        if "flask" in skips:
            extra = why("flask", [])
        target("flask req/s through Atrium", fl["rps"] if fl else None, ">=", 2500, fmt="{:.0f}", extra=extra)
    if times.get("deploy") or "deploy" in skips:
        d = statistics.median(times["deploy"]) / 1000 if times.get("deploy") else None
        target("deploy, warm environment cache", d, "<=", 5.0, fmt="{:.1f} s")
    out.append("targets (reported, not enforced):")
    out += verdicts
    if notes:
        out.append("")
        out.append("notes:")
        out += ["  " + n for n in notes]
    out.append("")
    out.append("versions:")
    out += ["  " + v.strip() for v in open(a.versions) if v.strip()]
    print("\n".join(out))


if __name__ == "__main__":
    sys.exit(main())
