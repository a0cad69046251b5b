#!/usr/bin/env python3
"""pm_report.py — the table scripts/bench/pm.sh prints.

Reads pm.sh's raw.tsv (one line per sample: `time LABEL SERVER MS`,
`phase LABEL SERVER PHASE MS` for the phases uv reports of an install, or
`wrk LABEL SERVER FILE|n/a REASON`), takes medians, and prints one row per
measurement with Atrium, each peer, and "Atrium vs best peer" as a speedup
(> 1 means Atrium is faster). Targets are reported, never enforced.
"""

import argparse
import re
import statistics
import sys

SERVERS = ["atrium", "pypiserver", "devpi"]
NAMES = {"atrium": "Atrium", "pypiserver": "pypiserver", "devpi": "devpi"}
INSTALL_TARGET = 2.0
INDEX_TARGET = 5.0


def parse_duration_ms(s):
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", s)
    if not m:
        raise ValueError(f"unknown wrk duration {s!r}")
    v, unit = float(m.group(1)), m.group(2)
    return v * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def parse_wrk(path):
    text = open(path).read()
    r = {"rps": None, "p50": None, "p99": None, "non2xx": 0, "sockerr": 0, "requests": None}
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
        r["sockerr_text"] = m.group(0)
    m = re.search(r"(\d+) requests in", text)
    if m:
        r["requests"] = int(m.group(1))
    return r


def fmt_ratio(x):
    return "-" if x is None else f"{x:.2f}x"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--raw", required=True)
    ap.add_argument("--versions", required=True)
    ap.add_argument("--wheels", type=int, required=True)
    ap.add_argument("--reps", type=int, required=True)
    ap.add_argument("--cold-reps", type=int, required=True)
    ap.add_argument("--wrk", required=True)
    ap.add_argument("--cpus", required=True)
    ap.add_argument("--load", default="?")
    ap.add_argument("--load-end", default="?")
    a = ap.parse_args()

    times = {}  # label -> server -> [ms]
    phases = {}  # label -> phase -> server -> [ms]
    wrk = {}  # label -> server -> dict | str (n/a reason)
    order = []
    for line in open(a.raw):
        f = line.rstrip("\n").split("\t")
        kind, label, server = f[0], f[1], f[2]
        if label not in order:
            order.append(label)
        if kind == "time":
            times.setdefault(label, {}).setdefault(server, []).append(int(f[3]))
        elif kind == "phase":
            phases.setdefault(label, {}).setdefault(f[3], {}).setdefault(server, []).append(int(f[4]))
        elif kind == "wrk":
            if f[3] == "n/a":
                wrk.setdefault(label, {})[server] = "n/a (" + f[4] + ")"
            else:
                wrk.setdefault(label, {})[server] = parse_wrk(f[3])

    rows = []  # (measurement, cells..., ratio)
    notes = []
    install_ratios, index_ratios, server_ratios, resolve_ratios = [], [], [], []

    for label in order:
        if label in times:
            med = {s: statistics.median(v) for s, v in times[label].items()}
            peers = [med[s] for s in SERVERS[1:] if s in med]
            ratio = min(peers) / med["atrium"] if peers and med.get("atrium") else None
            install_ratios.append((label, ratio))
            floor = f"{med['floor']:.0f}" if "floor" in med else "-"
            rows.append([label + " (ms, median)"] + [f"{med[s]:.0f}" if s in med else "-" for s in SERVERS] + [fmt_ratio(ratio), floor])
            if "floor" in med and label.startswith("pip"):
                # What the server adds to the client's own work: the part
                # of an install a server can make faster. Only pip's run
                # without a server is a floor: uv with --find-links opens
                # every wheel to read its metadata, work that an index
                # with PEP 658 metadata saves it (uv from Atrium is faster
                # than uv alone), so for uv the difference means nothing.
                above = {s: med[s] - med["floor"] for s in SERVERS if s in med}
                peers_above = [above[s] for s in SERVERS[1:] if s in above]
                r2 = None
                if peers_above and above.get("atrium") is not None:
                    r2 = min(peers_above) / max(above["atrium"], 1.0)
                server_ratios.append((label, r2))
                rows.append(["  above client alone (ms)"] + [f"{above[s]:.0f}" if s in above else "-" for s in SERVERS] + [fmt_ratio(r2), ""])
            for phase, by in phases.get(label, {}).items():
                pm = {s: statistics.median(v) for s, v in by.items()}
                pp = [pm[s] for s in SERVERS[1:] if s in pm]
                pr = min(pp) / max(pm["atrium"], 1.0) if pp and "atrium" in pm else None
                if phase == "Resolved":
                    resolve_ratios.append((label, pr))
                name = {"Resolved": "uv: resolving", "Prepared": "uv: downloading, unpacking"}.get(phase, phase)
                rows.append([f"  {name} (ms)"] + [f"{pm[s]:.0f}" if s in pm else "-" for s in SERVERS] +
                            [fmt_ratio(pr), f"{pm['floor']:.0f}" if "floor" in pm else "-"])
            continue
        res = wrk[label]
        valid = {}
        cells = {}
        for s in SERVERS:
            r = res.get(s)
            if r is None:
                cells[s] = "-"
            elif isinstance(r, str):
                cells[s] = "n/a"
                notes.append(f"{label}, {NAMES[s]}: {r}")
            elif r["non2xx"] or r["sockerr"]:
                why = []
                if r["non2xx"]:
                    why.append(f"{r['non2xx']} non-2xx")
                if r["sockerr"]:
                    why.append(r["sockerr_text"])
                cells[s] = f"INVALID ({r['rps']:.0f})"
                notes.append(f"{label}, {NAMES[s]}: invalid run: " + "; ".join(why))
            else:
                cells[s] = f"{r['rps']:.0f}"
                valid[s] = r
        peers = [valid[s] for s in SERVERS[1:] if s in valid]
        ratio = None
        if "atrium" in valid and peers:
            ratio = valid["atrium"]["rps"] / max(p["rps"] for p in peers)
        index_ratios.append((label, ratio))
        rows.append([label + " (req/s)"] + [cells[s] for s in SERVERS] + [fmt_ratio(ratio) if "atrium" in valid or not peers else "invalid", ""])
        for q in ("p50", "p99"):
            qc = [f"{valid[s][q]:.2f}" if s in valid and valid[s][q] is not None else "-" for s in SERVERS]
            qr = None
            if "atrium" in valid and peers and valid["atrium"][q]:
                qr = min(p[q] for p in peers if p[q] is not None) / valid["atrium"][q]
            rows.append([f"  latency {q} (ms)"] + qc + [fmt_ratio(qr), ""])

    head = ["measurement"] + [NAMES[s] for s in SERVERS] + ["Atrium vs best peer", "client alone"]
    widths = [max(len(str(r[i])) for r in rows + [head]) for i in range(len(head))]

    def line(r):
        return "  ".join(str(c).ljust(widths[0]) if i == 0 else str(c).rjust(widths[i]) for i, c in enumerate(r))

    out = []
    out.append("Package Manager benchmark: Atrium vs pypiserver and devpi-server, same machine, same run")
    out.append(f"{a.wheels} real wheels; {a.cpus} CPUs shared by servers and clients; load average {a.load} at start, {a.load_end} at end")
    out.append("(a load average near or above the CPU count means something else was running: expect noise)")
    out.append(f"installs: cold = first client run right after a fresh server start ({a.cold_reps} samples, one restart each);")
    out.append(f"          warm = later runs on a started, already used server ({a.reps} samples); so cold includes")
    out.append("          whatever a server builds on first use (pypiserver's cached-dir listing and digests, devpi's")
    out.append("          keyfs cache, Atrium's database pages); no server fetches from an upstream")
    out.append("client alone: the same client with --no-index --find-links on the wheel dir, no server. For pip")
    out.append("              the floor no server can go below, which bounds the speedup any server can show;")
    out.append("              not for uv, which then opens every wheel for its metadata (an index's PEP 658")
    out.append("              metadata saves it that)")
    out.append("above client alone: pip's median time minus pip's alone: the server's share, the part a faster")
    out.append("              server shortens (a value at or below 0 is within the noise of the floor)")
    out.append("uv: resolving, downloading and unpacking: the phases of the same installs, as uv reports them")
    out.append("              (its summary lines); resolving is what the index decides (pages, metadata),")
    out.append("              unpacking into uv's cache is the client's own disk work")
    out.append(f"index: wrk {a.wrk}, after a 1s warm-up")
    out.append("ratio: speedup of Atrium over the best peer (>1 = Atrium faster); time = best peer / Atrium,")
    out.append("       req/s = Atrium / best peer, latency = best peer / Atrium")
    out.append("")
    out.append(line(head))
    out.append(line(["-" * w for w in widths]))
    out += [line(r) for r in rows]
    out.append("")

    def verdict(name, ratios, target):
        vals = [r for _, r in ratios if r is not None]
        missing = [lab for lab, r in ratios if r is None]
        if not vals:
            return f"{name} >= {target:.0f}x: NOT MEASURABLE (no valid rows)"
        ok = all(v >= target for v in vals) and not missing
        s = f"{name} >= {target:.0f}x best peer: {'MET' if ok else 'NOT MET'} (worst {min(vals):.2f}x, best {max(vals):.2f}x)"
        if missing:
            s += "; without a valid ratio: " + ", ".join(missing)
        return s

    out.append("targets (reported, not enforced):")
    out.append("  " + verdict("installs", install_ratios, INSTALL_TARGET))
    out.append("  " + verdict("pip, time above pip alone", server_ratios, INSTALL_TARGET))
    out.append("  " + verdict("index requests", index_ratios, INDEX_TARGET))
    rr = [f"{r:.2f}x {lab.split(', ')[-1]}" for lab, r in resolve_ratios if r is not None]
    if rr:
        out.append("  (for reference, no target: uv's resolving phase, Atrium vs best peer: " + ", ".join(rr) + ")")
    if notes:
        out.append("")
        out.append("notes:")
        out += ["  " + n for n in notes]
    out.append("")
    out.append("samples (ms, in run order):")
    for label in order:
        if label in times:
            for s in SERVERS + ["floor"]:
                if s in times[label]:
                    out.append(f"  {label}, {NAMES.get(s, 'client alone')}: {' '.join(str(x) for x in times[label][s])}")
    out.append("")
    out.append("versions:")
    out += ["  " + v.strip() for v in open(a.versions) if v.strip()]
    print("\n".join(out))


if __name__ == "__main__":
    sys.exit(main())
