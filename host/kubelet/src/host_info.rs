//! What the Node reports about this machine: CPU and memory capacity (the smaller of the
//! machine's and the agent's cgroup v2 limits), ephemeral storage of the data dir's file
//! system, the address of the default route, OS facts, and the readings behind the
//! MemoryPressure / DiskPressure / PIDPressure conditions.

use std::net::IpAddr;
use std::path::Path;

/// The address of the interface on the default route (no packet is sent), else 127.0.0.1.
pub(crate) fn default_ip() -> IpAddr {
    std::net::UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| {
            s.connect("192.0.2.1:9")?;
            s.local_addr()
        })
        .map(|a| a.ip())
        .unwrap_or(IpAddr::from([127, 0, 0, 1]))
}

/// This machine's host name.
pub(crate) fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_lowercase())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// Kubernetes' name of this machine's architecture (`amd64`, `arm64`, …).
pub(crate) fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

fn read_trimmed(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

/// The agent's own cgroup v2 directory, from `/proc/self/cgroup` (`0::/path`).
fn own_cgroup() -> Option<String> {
    let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let path = text.lines().find_map(|l| l.strip_prefix("0::"))?;
    Some(format!("/sys/fs/cgroup{}", path.trim_end_matches('/')))
}

/// Usable CPUs in millicores: the online CPUs, lowered by any `cpu.max` quota on the way from
/// the agent's cgroup to the root.
pub(crate) fn cpu_millis() -> u64 {
    let online = std::thread::available_parallelism()
        .map(|n| n.get() as u64)
        .unwrap_or(1)
        * 1000;
    let mut limit = online;
    let mut dir = own_cgroup();
    while let Some(d) = dir {
        if let Some(max) = read_trimmed(&format!("{d}/cpu.max")) {
            let mut parts = max.split_whitespace();
            if let (Some(quota), Some(period)) = (parts.next(), parts.next()) {
                if let (Ok(q), Ok(p)) = (quota.parse::<u64>(), period.parse::<u64>()) {
                    if let Some(millis) = (q * 1000).checked_div(p) {
                        limit = limit.min(millis);
                    }
                }
            }
        }
        dir = Path::new(&d)
            .parent()
            .filter(|p| p.starts_with("/sys/fs/cgroup"))
            .map(|p| p.display().to_string());
    }
    limit.max(1)
}

/// `MemTotal` and `MemAvailable` from /proc/meminfo, in bytes.
fn meminfo() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .map(|kib| kib * 1024)
            .unwrap_or(0)
    };
    (field("MemTotal:"), field("MemAvailable:"))
}

/// Memory capacity in bytes: the machine's, lowered by any `memory.max` up the agent's cgroup.
pub(crate) fn memory_bytes() -> u64 {
    let mut limit = meminfo().0;
    let mut dir = own_cgroup();
    while let Some(d) = dir {
        if let Some(Ok(max)) = read_trimmed(&format!("{d}/memory.max")).map(|m| m.parse::<u64>()) {
            limit = limit.min(max);
        }
        dir = Path::new(&d)
            .parent()
            .filter(|p| p.starts_with("/sys/fs/cgroup"))
            .map(|p| p.display().to_string());
    }
    limit
}

/// Total and available bytes of the file system holding `path`.
pub(crate) fn disk_bytes(path: &Path) -> (u64, u64) {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return (0, 0);
    };
    // SAFETY: `c` is a valid NUL-terminated path and `stat` a plain out-parameter.
    unsafe {
        let mut stat: libc::statvfs = std::mem::zeroed();
        if libc::statvfs(c.as_ptr(), &mut stat) != 0 {
            return (0, 0);
        }
        let frsize = stat.f_frsize as u64;
        (stat.f_blocks as u64 * frsize, stat.f_bavail as u64 * frsize)
    }
}

/// The pressure readings: (memory, disk, pids) each `Some(message)` when under pressure.
pub(crate) struct Pressure {
    pub(crate) memory: Option<String>,
    pub(crate) disk: Option<String>,
    pub(crate) pids: Option<String>,
}

/// Kubernetes' default hard eviction thresholds: memory.available < 100Mi,
/// nodefs.available < 10%; and PIDs above 90% of `pid_max`.
pub(crate) fn pressure(data_dir: &Path) -> Pressure {
    let (_, available) = meminfo();
    let memory = (available > 0 && available < 100 << 20)
        .then(|| format!("memory available {available} bytes < 100Mi"));
    let (total, free) = disk_bytes(data_dir);
    let disk = (total > 0 && free * 10 < total)
        .then(|| format!("nodefs available {free} of {total} bytes < 10%"));
    let pid_max: u64 = read_trimmed("/proc/sys/kernel/pid_max")
        .and_then(|p| p.parse().ok())
        .unwrap_or(u64::MAX);
    let pids = std::fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.file_name().as_bytes_digits())
                .count() as u64
        })
        .unwrap_or(0);
    let pids = (pids * 10 > pid_max * 9).then(|| format!("{pids} processes > 90% of {pid_max}"));
    Pressure { memory, disk, pids }
}

trait Digits {
    fn as_bytes_digits(&self) -> bool;
}

impl Digits for std::ffi::OsString {
    fn as_bytes_digits(&self) -> bool {
        self.to_str()
            .is_some_and(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
    }
}

/// Facts for `status.nodeInfo`: (kernel, OS image, machine id, boot id).
pub(crate) fn system_info() -> (String, String, String, String) {
    let os_image = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                .map(|v| v.trim_matches('"').to_string())
        })
        .unwrap_or_else(|| "Linux".into());
    (
        read_trimmed("/proc/sys/kernel/osrelease").unwrap_or_default(),
        os_image,
        read_trimmed("/etc/machine-id").unwrap_or_default(),
        read_trimmed("/proc/sys/kernel/random/boot_id").unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readings_are_plausible() {
        assert!(cpu_millis() >= 1);
        assert!(memory_bytes() > 16 << 20);
        let (total, free) = disk_bytes(Path::new("/"));
        assert!(total > 0 && free <= total);
        assert!(!hostname().is_empty());
        assert_ne!(arch(), "");
    }
}
