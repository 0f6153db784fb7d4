"""Prints the benchmark table: medians per scenario and target, with Switchboard's ratios to the
Node peers and the share of the machine's CPU time the hypervisor stole during the runs. The bare
actix-web-actors broadcast server (examples/actix_peer.rs) is the floor of the stack Switchboard
is built on."""
import json
import statistics
import sys
from collections import defaultdict

rows = defaultdict(list)
for line in open(sys.argv[1]):
    result = json.loads(line)
    rows[result["label"]].append(result)

def median(results, key):
    values = [r[key] for r in results if r.get(key) is not None]
    return statistics.median(values) if values else None

def fmt(value, digits=0):
    return "-" if value is None else f"{value:,.{digits}f}"

print("| scenario | server | deliveries/s | p50 ms | p99 ms | p999 ms | lost | CPU µs/delivery | steal % | × ws | × Socket.IO |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
names = {"sb": "Switchboard (Streamer.bot face)", "astro": "Switchboard (Astro face)", "hb": "Switchboard (Socket.IO face)", "custom": "Switchboard (custom face)", "sbrules": "Switchboard, 101 rules",
         "actix": "bare actix-web-actors (floor)", "ws": "Node ws", "sio": "Socket.IO"}
peers = ("actix", "ws", "sio")
for label in sorted(rows, key=lambda label: (label.split("/")[0], list(names).index(label.split("/")[1]))):
    scenario, target = label.split("/")
    results = rows[label]
    if scenario == "S6":
        continue
    rate = median(results, "deliveriesPerSecond")
    base = scenario.split("-")[0]
    ratio = lambda peer: (rate / median(rows[f"{base}/{peer}"], "deliveriesPerSecond")) if target not in peers and rows.get(f"{base}/{peer}") else None
    print(f"| {scenario} | {names[target]} | {fmt(rate)} | {fmt(median(results, 'p50us') / 1000, 2)} | {fmt(median(results, 'p99us') / 1000, 2)} | "
          f"{fmt(median(results, 'p999us') / 1000, 2)} | {fmt(max(r['lost'] for r in results))} | {fmt(median(results, 'cpuUsPerDelivery'), 2)} | {fmt(median(results, 'stealPercent'), 0)} | "
          f"{fmt(ratio('ws'), 1)} | {fmt(ratio('sio'), 1)} |")
print()
print("| S6: 10,000 idle connections | RSS KiB per connection | one broadcast reached | in ms |")
print("|---|---:|---:|---:|")
for label in sorted(rows):
    if label.startswith("S6/"):
        result = rows[label][0]
        print(f"| {names[label.split('/')[1]]} | {result['rssPerConnectionKiB']:.1f} | {result['broadcastReached']:,} | {result['broadcastMs']:.0f} |")
