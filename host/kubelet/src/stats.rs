//! Resource usage for `kubectl top`, served at `/stats/summary` in the shape of the kubelet's
//! Summary API (the subset metrics consumers read): the node's CPU from `/proc/stat` and its
//! memory working set from `/proc/meminfo`, and per running containerd container its cgroup's
//! CPU time and memory working set (cgroup v2 `cpu.stat`/`memory.current`, or v1
//! `cpuacct.usage`/`memory.usage_in_bytes`, minus inactive file pages), per Wasm container its
//! guest's CPU time and linear memory (from the runtime). CPU rates (`usageNanoCores`) come
//! from the difference to the previous reading; the first request takes two readings 200 ms
//! apart.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::jiff::Timestamp;
use serde_json::{json, Value};

use crate::pods::Agent;

/// Previous cumulative CPU readings (nanoseconds of CPU time), by cgroup or `node`.
#[derive(Default)]
pub(crate) struct CpuReadings(Mutex<HashMap<String, (Instant, u64)>>);

fn read(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

fn field(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let mut parts = l.split_whitespace();
        (parts.next() == Some(key))
            .then(|| parts.next()?.parse().ok())
            .flatten()
    })
}

/// Cumulative CPU nanoseconds and memory working set of a container cgroup.
pub(crate) fn cgroup_usage(pod_uid: &str, id: &str) -> Option<(u64, u64)> {
    let v2 = format!("/sys/fs/cgroup/keelson/{pod_uid}/{id}");
    if let Some(stat) = read(&format!("{v2}/cpu.stat")) {
        let cpu = field(&stat, "usage_usec")? * 1000;
        let current: u64 = read(&format!("{v2}/memory.current"))?.trim().parse().ok()?;
        let inactive = read(&format!("{v2}/memory.stat"))
            .and_then(|s| field(&s, "inactive_file"))
            .unwrap_or(0);
        return Some((cpu, current.saturating_sub(inactive)));
    }
    let cpu: u64 = read(&format!(
        "/sys/fs/cgroup/cpuacct/keelson/{pod_uid}/{id}/cpuacct.usage"
    ))?
    .trim()
    .parse()
    .ok()?;
    let memory = format!("/sys/fs/cgroup/memory/keelson/{pod_uid}/{id}");
    let usage: u64 = read(&format!("{memory}/memory.usage_in_bytes"))?
        .trim()
        .parse()
        .ok()?;
    let inactive = read(&format!("{memory}/memory.stat"))
        .and_then(|s| field(&s, "total_inactive_file"))
        .unwrap_or(0);
    Some((cpu, usage.saturating_sub(inactive)))
}

/// Cumulative busy CPU nanoseconds of the node and its memory working set.
fn node_usage() -> Option<(u64, u64)> {
    let stat = read("/proc/stat")?;
    let cpu: Vec<u64> = stat
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal: busy = all but idle and iowait.
    let busy: u64 = cpu
        .iter()
        .take(8)
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4)
        .map(|(_, v)| v)
        .sum();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    let meminfo = read("/proc/meminfo")?;
    let total = field(&meminfo, "MemTotal:")?;
    let available = field(&meminfo, "MemAvailable:")?;
    Some((
        busy * 1_000_000_000 / hz,
        total.saturating_sub(available) * 1024,
    ))
}

impl CpuReadings {
    /// Nanocores used since the last reading of `key` (`None` on the first reading).
    fn rate(&self, key: &str, now: Instant, cumulative: u64) -> Option<u64> {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let previous = map.insert(key.to_string(), (now, cumulative));
        let (then, before) = previous?;
        let elapsed = now.duration_since(then).as_nanos() as u64;
        (elapsed > 0).then(|| cumulative.saturating_sub(before) * 1_000_000_000 / elapsed)
    }
}

/// One reading of everything: (key, cumulative CPU ns, memory bytes).
fn sample(agent: &Agent) -> Vec<(String, Option<(u64, u64)>)> {
    let running: Vec<_> = agent
        .running
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .map(|(k, r)| (k.clone(), r.runtime.clone(), r.id.clone()))
        .collect();
    let mut out = vec![("node".to_string(), node_usage())];
    for ((ns, pod, container), runtime, id) in running {
        let uid = id.get(..36).unwrap_or_default();
        let key = format!("{ns}/{pod}/{container}/{uid}/{id}");
        out.push((key, runtime.usage(uid, &id)));
    }
    out
}

/// The Summary document.
pub(crate) async fn summary(agent: &Agent) -> Value {
    let readings = &agent.cpu_readings;
    let mut rates: HashMap<String, u64> = HashMap::new();
    let mut latest = sample(agent);
    let mut missing = false;
    let now = Instant::now();
    for (key, usage) in &latest {
        if let Some((cpu, _)) = usage {
            match readings.rate(key, now, *cpu) {
                Some(r) => {
                    rates.insert(key.clone(), r);
                }
                None => missing = true,
            }
        }
    }
    if missing {
        // First sight of something: a second reading gives it a rate.
        tokio::time::sleep(Duration::from_millis(200)).await;
        latest = sample(agent);
        let now = Instant::now();
        for (key, usage) in &latest {
            if let (Some((cpu, _)), false) = (usage, rates.contains_key(key)) {
                if let Some(r) = readings.rate(key, now, *cpu) {
                    rates.insert(key.clone(), r);
                }
            }
        }
    }
    let time = Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    let mut node = json!({"nodeName": agent.config.node_name});
    let mut pods: HashMap<(String, String, String), Vec<Value>> = HashMap::new();
    for (key, usage) in latest {
        let Some((cpu, memory)) = usage else { continue };
        let nano = rates.get(&key).copied().unwrap_or(0);
        let cpu = json!({"time": time, "usageNanoCores": nano, "usageCoreNanoSeconds": cpu});
        let memory = json!({"time": time, "workingSetBytes": memory});
        if key == "node" {
            node["cpu"] = cpu;
            node["memory"] = memory;
            continue;
        }
        let parts: Vec<&str> = key.splitn(5, '/').collect();
        let [ns, pod, container, uid, _] = parts[..] else {
            continue;
        };
        pods.entry((ns.into(), pod.into(), uid.into()))
            .or_default()
            .push(json!({"name": container, "cpu": cpu, "memory": memory}));
    }
    let pods: Vec<Value> = pods
        .into_iter()
        .map(|((namespace, name, uid), containers)| {
            json!({"podRef": {"namespace": namespace, "name": name, "uid": uid},
                   "containers": containers})
        })
        .collect();
    json!({"node": node, "pods": pods})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_come_from_successive_readings() {
        let r = CpuReadings::default();
        let t0 = Instant::now();
        assert_eq!(r.rate("c", t0, 1_000), None);
        // 0.5 s of CPU over 1 s: half a core.
        let rate = r.rate("c", t0 + Duration::from_secs(1), 500_001_000);
        assert_eq!(rate, Some(500_000_000));
        assert!(node_usage().is_some_and(|(cpu, mem)| cpu > 0 && mem > 0));
    }
}
