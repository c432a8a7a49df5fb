#!/usr/bin/env python3
"""Tables of bench/nbdbench.sh from fio's JSON output.

  fioreport.py line JSON NAME
      one job's line: IOPS, MiB/s, mean and p99 latency (fio's lat: from
      submission to completion, in ms).
  fioreport.py report RESULTS RSS HZ
      every system's table and the comparisons, in Markdown.  RESULTS has a
      line per job: system, job, JSON file, then the CPU ticks of the OSDs,
      the monitors and the export process at the end of the ramp and at the
      end of the job ("osd,mon,export", empty for a group that is not
      there).  RSS has a line per system and group: system, group, peak RSS
      in KiB of each process.  HZ is the clock tick (getconf CLK_TCK).
fio's own CPU time is its job's (usr_cpu + sys_cpu over the job's runtime,
counted by fio after the ramp); for the rbd engine it holds librbd's.
"""
import json
import sys

JOBS = ["4k randwrite QD1", "4k randread QD1", "4k randwrite QD32",
        "4k randread QD32", "1M write QD4", "1M read QD4"]
LABELS = {
    "mixsan": "MixSAN, NBD (nbdkit plugin), durable",
    "mixsan-wb": "MixSAN, NBD (nbdkit plugin), write-back (cache=writeback, end fsync)",
    "mixsan-fio": "MixSAN, fio's engine (libmixsan in fio, no export), durable",
    "mixsan-fio-wb": "MixSAN, fio's engine, write-back (cache=writeback, end fsync)",
    "ceph-rbd": "Ceph 16.2, fio's rbd engine (librbd, rbd_cache=false)",
    "ceph-nbd": "Ceph 16.2, qemu-nbd --cache=none on a unix socket, fio's nbd engine",
    "raw": "the local disk: a file, O_DIRECT (libaio)",
}
# The Vitastor figures: IOPS for the 4k jobs, MiB/s for the 1M ones.
VITASTOR = {
    "durable": [791, 6102, 975, 30458, 111, 822],
    "writeback": [2237, 5638, 8051, 28082, 223, 991],
}


def load(path):
    j = json.load(open(path))["jobs"][0]
    d = j["write"] if j["write"]["io_bytes"] > j["read"]["io_bytes"] else j["read"]
    lat = d["lat_ns"]
    p99 = lat.get("percentile", {}).get("99.000000", 0)
    runtime = max(j["read"]["runtime"], j["write"]["runtime"]) / 1000.0
    return {
        "iops": d["iops"], "mibs": d["bw"] / 1024.0,
        "mean": lat["mean"] / 1e6, "p99": p99 / 1e6,
        "ios": j["read"]["total_ios"] + j["write"]["total_ios"],
        "fio_cpu": (j["usr_cpu"] + j["sys_cpu"]) / 100.0 * runtime,
        "sync_mean": j.get("sync", {}).get("lat_ns", {}).get("mean", 0) / 1e6,
    }


def line(r, name):
    return "%-28s %10.0f %10.1f %10.3f %10.3f" % (name, r["iops"], r["mibs"], r["mean"], r["p99"])


def num(v):
    if v >= 100:
        return "{:,.0f}".format(v)
    return "%.1f" % v


def figure(job, r):
    """The figure a job is compared by: IOPS for 4k, MiB/s for 1M."""
    return r["mibs"] if job.startswith("1M") else r["iops"]


def ratio(a, b):
    return "%.2fx" % (a / b) if a and b else "-"


def report(results_path, rss_path, hz):
    res = {}
    order = []
    for ln in open(results_path):
        sysname, job, path, c0, c1 = ln.rstrip("\n").split("\t")
        r = load(path)
        cpu = []
        for a, b in zip(c0.split(","), c1.split(",")):
            cpu.append((int(b) - int(a)) / hz if a and b else None)
        cpu.append(r["fio_cpu"])
        r["cpu"] = [c * 1000.0 / r["ios"] if c is not None and r["ios"] else None for c in cpu]
        res.setdefault(sysname, {})[job] = r
        if sysname not in order:
            order.append(sysname)
    rss = {}
    for ln in open(rss_path):
        sysname, group, kib = ln.rstrip("\n").split("\t")
        rss.setdefault(sysname, []).append((group, [int(k) for k in kib.split()]))

    for s in order:
        print("\n%s\n" % LABELS.get(s, s))
        print("| job | IOPS | MiB/s | mean ms | p99 ms | CPU s per 1,000 I/Os: OSDs | mon | export | fio |")
        print("|---|---|---|---|---|---|---|---|---|")
        for job, r in res[s].items():
            cpu = ["%.3f" % c if c is not None else "-" for c in r["cpu"]]
            print("| %s | %s | %s | %.3f | %.3f | %s |" % (job, num(r["iops"]), num(r["mibs"]),
                                                       r["mean"], r["p99"], " | ".join(cpu)))

    if rss:
        print("\nPeak RSS (VmHWM), MiB, per process\n")
        print("| system | group | peak RSS |")
        print("|---|---|---|")
        for s, groups in rss.items():
            for g, ks in groups:
                print("| %s | %s | %s |" % (s, g, ", ".join("%.0f" % (k / 1024.0) for k in ks)))

    def col(s, i, job):
        r = res.get(s, {}).get(job)
        return figure(job, r) if r else None

    if "mixsan" in res:
        print("\nMixSAN durable against the others (IOPS for 4k, MiB/s for 1M; ratio = ours / theirs)\n")
        print("| job | MixSAN durable | Ceph rbd | Ceph qemu-nbd | Vitastor durable | raw disk "
              "| / rbd | / qemu-nbd | / Vitastor | / raw |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for i, job in enumerate(JOBS):
            ours = col("mixsan", i, job)
            theirs = [col("ceph-rbd", i, job), col("ceph-nbd", i, job), VITASTOR["durable"][i],
                      col("raw", i, job)]
            print("| %s | %s | %s | %s |" % (
                job, num(ours) if ours else "-",
                " | ".join(num(t) if t else "-" for t in theirs),
                " | ".join(ratio(ours, t) for t in theirs)))
    if "mixsan-wb" in res:
        print("\nMixSAN write-back against Vitastor's write-back figures\n")
        print("| job | MixSAN write-back | Vitastor write-back | ratio |")
        print("|---|---|---|---|")
        for i, job in enumerate(JOBS):
            ours = col("mixsan-wb", i, job)
            v = VITASTOR["writeback"][i]
            print("| %s | %s | %s | %s |" % (job, num(ours) if ours else "-", num(v), ratio(ours, v)))
    for cls, eng, nbd, vit, theirs in (("durable", "mixsan-fio", "mixsan", "durable", "ceph-rbd"),
                                       ("write-back", "mixsan-fio-wb", "mixsan-wb", "writeback", None)):
        if eng not in res:
            continue
        print("\nMixSAN's fio engine against its NBD export, %s (ratio = NBD / engine, and "
              "engine / theirs)\n" % cls)
        print("| job | engine | NBD | NBD / engine | Ceph rbd engine | engine / rbd "
              "| Vitastor %s | engine / Vitastor |" % cls)
        print("|---|---|---|---|---|---|---|---|")
        for i, job in enumerate(JOBS):
            e = col(eng, i, job)
            n = col(nbd, i, job)
            t = col(theirs, i, job) if theirs else None
            v = VITASTOR[vit][i]
            print("| %s | %s | %s | %s | %s | %s | %s | %s |" % (
                job, num(e) if e else "-", num(n) if n else "-", ratio(n, e),
                num(t) if t else "-", ratio(e, t), num(v), ratio(e, v)))
    probe = res.get("raw", {}).get("4k randwrite QD1 fdatasync")
    if probe:
        print("\nOne durable 4k write on the raw disk (O_DIRECT write + fdatasync, QD1): "
              "%.3f ms (%s a second); the write %.3f ms mean, the fdatasync %.3f ms mean"
              % (1000.0 / probe["iops"], num(probe["iops"]), probe["mean"], probe["sync_mean"]))
    for qd in ("QD1", "QD32"):
        hop = res.get("raw", {}).get("4k randread %s NBD memory" % qd)
        if hop:
            print("4k reads at %s from an NBD export of memory (nbdkit memory, fio's nbd "
                  "engine): %s IOPS, %.3f ms mean: the NBD hop alone" % (qd, num(hop["iops"]),
                                                                         hop["mean"]))


def main():
    if sys.argv[1] == "line":
        print(line(load(sys.argv[2]), sys.argv[3]))
    elif sys.argv[1] == "report":
        report(sys.argv[2], sys.argv[3], float(sys.argv[4]))
    else:
        sys.exit("usage: fioreport.py line JSON NAME | report RESULTS RSS HZ")


if __name__ == "__main__":
    main()
