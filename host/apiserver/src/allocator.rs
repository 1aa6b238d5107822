//! Service cluster IPs and NodePorts, allocated as Kubernetes' registry allocates them: each
//! range is a bitmap kept in the store as one `RangeAllocation` record under Kubernetes' own keys
//! (`/registry/ranges/serviceips`, `/registry/ranges/servicenodeports`) and changed only by
//! compare-and-swap, so concurrent creates — on one server or on several sharing an etcd —
//! never hand out the same address or port, and a restart keeps every allocation. A repair pass
//! (at start and every three minutes, like kube-apiserver's repair controllers) marks what
//! Services hold and frees what none has held for three passes in a row (an allocation whose
//! create failed after allocating).
//!
//! Dynamic values come from the upper part of each range first, leaving the lower band to
//! values users ask for (Kubernetes' static/dynamic split, KEP-3070 and KEP-3668).

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::Mutex;

use base64::Engine as _;
use keelson_store::{Error as StoreError, Store};
use serde_json::{json, Value};

/// The default Service IP range (k3s's).
pub const SERVICE_CIDR: (Ipv4Addr, u8) = (Ipv4Addr::new(10, 43, 0, 0), 16);
/// The default NodePort range (Kubernetes').
pub const NODE_PORTS: (u16, u16) = (30000, 32767);
/// The cluster DNS Service's address, never handed out at random.
pub const DNS_SERVICE_IP: Ipv4Addr = Ipv4Addr::new(10, 43, 0, 10);
/// Passes a value must be seen unused before a repair frees it.
const LEAK_PASSES: u8 = 3;

/// Why a value could not be allocated; the message is Kubernetes' wording.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllocError {
    /// The value is outside the range.
    #[error("{0}")]
    NotInRange(String),
    /// The value is taken.
    #[error("provided {0} is already allocated")]
    Taken(&'static str),
    /// Nothing is left.
    #[error("range is full")]
    Full,
    /// The store failed.
    #[error("{0}")]
    Store(String),
}

/// What a range hands out.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// IPv4 addresses of a CIDR (network and broadcast addresses excluded).
    Ip { base: u32, prefix: u8 },
    /// Ports `first..=last`.
    Port { first: u16, last: u16 },
}

/// One allocation range, its store key and its repair bookkeeping.
#[derive(Debug)]
pub struct Range {
    key: &'static str,
    kind: Kind,
    /// Offsets seen allocated but unused, with the number of passes in a row.
    suspects: Mutex<HashMap<u32, u8>>,
}

impl Range {
    /// The Service IP range.
    pub fn service_ips(base: Ipv4Addr, prefix: u8) -> Self {
        Range::new(
            "/registry/ranges/serviceips",
            Kind::Ip {
                base: u32::from(base),
                prefix,
            },
        )
    }

    /// The NodePort range.
    pub fn node_ports(first: u16, last: u16) -> Self {
        Range::new(
            "/registry/ranges/servicenodeports",
            Kind::Port { first, last },
        )
    }

    fn new(key: &'static str, kind: Kind) -> Self {
        Range {
            key,
            kind,
            suspects: Mutex::default(),
        }
    }

    /// Number of values in the range.
    fn size(&self) -> u32 {
        match self.kind {
            // Offset 0 is the first usable address (network + 1); the broadcast is excluded.
            Kind::Ip { prefix, .. } => (1u32 << (32 - prefix as u32)).saturating_sub(2),
            Kind::Port { first, last } => (last - first) as u32 + 1,
        }
    }

    /// The range as Kubernetes prints it.
    fn describe(&self) -> String {
        match self.kind {
            Kind::Ip { base, prefix } => format!("{}/{prefix}", Ipv4Addr::from(base)),
            Kind::Port { first, last } => format!("{first}-{last}"),
        }
    }

    /// The lower band kept for values users ask for.
    fn static_band(&self) -> u32 {
        let size = self.size();
        match self.kind {
            Kind::Ip { .. } => (size / 16).clamp(16, 256).min(size / 2),
            Kind::Port { .. } => (size / 32).clamp(16, 128).min(size / 2),
        }
    }

    /// The offset of a value given as text (an IP or a port number).
    fn offset_of(&self, value: &str) -> Result<u32, AllocError> {
        let what = match self.kind {
            Kind::Ip { base, .. } => value
                .parse::<Ipv4Addr>()
                .ok()
                .and_then(|ip| u32::from(ip).checked_sub(base + 1)),
            Kind::Port { first, .. } => value
                .parse::<u32>()
                .ok()
                .and_then(|p| p.checked_sub(first as u32)),
        };
        match what {
            Some(o) if o < self.size() => Ok(o),
            _ => Err(AllocError::NotInRange(match self.kind {
                Kind::Ip { .. } => format!(
                    "the provided IP ({value}) is not in the valid range. The range of valid IPs is {}",
                    self.describe()
                ),
                Kind::Port { .. } => format!(
                    "provided port is not in the valid range. The range of valid ports is {}",
                    self.describe()
                ),
            })),
        }
    }

    /// The value at an offset, as text.
    fn value_at(&self, offset: u32) -> String {
        match self.kind {
            Kind::Ip { base, .. } => Ipv4Addr::from(base + 1 + offset).to_string(),
            Kind::Port { first, .. } => (first as u32 + offset).to_string(),
        }
    }

    fn what(&self) -> &'static str {
        match self.kind {
            Kind::Ip { .. } => "IP",
            Kind::Port { .. } => "port",
        }
    }

    /// Offsets never handed out at random (the kubernetes and DNS Service IPs).
    fn reserved(&self, offset: u32) -> bool {
        match self.kind {
            Kind::Ip { base, .. } => offset == 0 || base + 1 + offset == u32::from(DNS_SERVICE_IP),
            Kind::Port { .. } => false,
        }
    }

    /// Reads the bitmap and its revision (0 when the record does not exist yet).
    async fn load(&self, store: &Store) -> Result<(Bitmap, i64), AllocError> {
        let kv = store
            .get(self.key)
            .await
            .map_err(|e| AllocError::Store(e.to_string()))?;
        let Some(kv) = kv else {
            return Ok((Bitmap::new(self.size()), 0));
        };
        let record: Value = serde_json::from_slice(&kv.value).unwrap_or_default();
        let bytes = record["data"]
            .as_str()
            .and_then(|d| base64::engine::general_purpose::STANDARD.decode(d).ok())
            .unwrap_or_default();
        Ok((Bitmap::from_bytes(bytes, self.size()), kv.mod_revision))
    }

    /// Writes the bitmap if the record is still at `revision`; `false` on a conflict.
    async fn store(&self, store: &Store, map: &Bitmap, revision: i64) -> Result<bool, AllocError> {
        let record = json!({
            "apiVersion": "v1",
            "kind": "RangeAllocation",
            "metadata": {},
            "range": self.describe(),
            "data": base64::engine::general_purpose::STANDARD.encode(&map.bytes),
        });
        let bytes = serde_json::to_vec(&record).unwrap_or_default();
        let written = match revision {
            0 => store.create(self.key, bytes).await,
            rev => store.update(self.key, bytes, rev).await,
        };
        match written {
            Ok(_) => Ok(true),
            Err(
                StoreError::Conflict(_) | StoreError::AlreadyExists(_) | StoreError::NotFound(_),
            ) => Ok(false),
            Err(e) => Err(AllocError::Store(e.to_string())),
        }
    }

    /// Applies `change` to the stored bitmap with compare-and-swap, retrying on conflicts.
    async fn modify<T>(
        &self,
        store: &Store,
        mut change: impl FnMut(&mut Bitmap) -> Result<Option<T>, AllocError>,
    ) -> Result<Option<T>, AllocError> {
        loop {
            let (mut map, revision) = self.load(store).await?;
            let Some(out) = change(&mut map)? else {
                return Ok(None);
            };
            if self.store(store, &map, revision).await? {
                return Ok(Some(out));
            }
        }
    }

    /// Allocates `requested` (text: an IP or a port), or a free value when `None`.
    pub async fn allocate(
        &self,
        store: &Store,
        requested: Option<&str>,
    ) -> Result<String, AllocError> {
        let wanted = requested.map(|v| self.offset_of(v)).transpose()?;
        let what = self.what();
        let got = self
            .modify(store, |map| match wanted {
                Some(o) if map.get(o) => Err(AllocError::Taken(what)),
                Some(o) => {
                    map.set(o, true);
                    Ok(Some(o))
                }
                None => {
                    let o = self.pick(map).ok_or(AllocError::Full)?;
                    map.set(o, true);
                    Ok(Some(o))
                }
            })
            .await?;
        Ok(self.value_at(got.unwrap_or_default()))
    }

    /// A free offset: random in the dynamic band, else anywhere free.
    fn pick(&self, map: &Bitmap) -> Option<u32> {
        let size = self.size();
        let band = self.static_band();
        let free = |o: u32| !map.get(o) && !self.reserved(o);
        let start = band + rand::random::<u32>() % (size - band).max(1);
        (start..size)
            .chain(band..start)
            .chain(0..band)
            .find(|&o| free(o))
    }

    /// Frees values (text); unknown or out-of-range values are ignored.
    pub async fn release(&self, store: &Store, values: &[String]) -> Result<(), AllocError> {
        let offsets: Vec<u32> = values
            .iter()
            .filter_map(|v| self.offset_of(v).ok())
            .collect();
        if offsets.is_empty() {
            return Ok(());
        }
        self.modify(store, |map| {
            let mut changed = false;
            for &o in &offsets {
                changed |= map.get(o);
                map.set(o, false);
            }
            Ok(changed.then_some(()))
        })
        .await
        .map(|_| ())
    }

    /// One repair pass: marks every value in `used`, and frees values no Service has held for
    /// [`LEAK_PASSES`] passes in a row.
    pub async fn repair(&self, store: &Store, used: &[String]) -> Result<(), AllocError> {
        let used: HashSet<u32> = used.iter().filter_map(|v| self.offset_of(v).ok()).collect();
        let (current, _) = self.load(store).await?;
        let mut free_now = Vec::new();
        {
            let mut suspects = self.suspects.lock().unwrap_or_else(|e| e.into_inner());
            let leaked: HashSet<u32> = (0..self.size())
                .filter(|&o| current.get(o) && !used.contains(&o))
                .collect();
            suspects.retain(|o, _| leaked.contains(o));
            for o in leaked {
                let n = suspects.entry(o).or_insert(0);
                *n += 1;
                if *n >= LEAK_PASSES {
                    free_now.push(o);
                }
            }
            for o in &free_now {
                suspects.remove(o);
            }
        }
        self.modify(store, |map| {
            let mut changed = false;
            for &o in &used {
                changed |= !map.get(o);
                map.set(o, true);
            }
            for &o in &free_now {
                changed |= map.get(o);
                map.set(o, false);
            }
            Ok(changed.then_some(()))
        })
        .await?;
        if !free_now.is_empty() {
            tracing::info!(
                range = self.key,
                freed = free_now.len(),
                "released leaked allocations"
            );
        }
        Ok(())
    }
}

/// A fixed-size bit set.
#[derive(Debug, Clone)]
struct Bitmap {
    bytes: Vec<u8>,
}

impl Bitmap {
    fn new(size: u32) -> Self {
        Bitmap {
            bytes: vec![0; size.div_ceil(8) as usize],
        }
    }

    fn from_bytes(mut bytes: Vec<u8>, size: u32) -> Self {
        bytes.resize(size.div_ceil(8) as usize, 0);
        Bitmap { bytes }
    }

    fn get(&self, i: u32) -> bool {
        self.bytes
            .get((i / 8) as usize)
            .is_some_and(|b| b & (1 << (i % 8)) != 0)
    }

    fn set(&mut self, i: u32, on: bool) {
        if let Some(b) = self.bytes.get_mut((i / 8) as usize) {
            match on {
                true => *b |= 1 << (i % 8),
                false => *b &= !(1 << (i % 8)),
            }
        }
    }
}

/// The Service allocators of one API server.
#[derive(Debug)]
pub struct ServiceAllocators {
    /// Cluster IPs.
    pub ips: Range,
    /// NodePorts.
    pub ports: Range,
}

impl Default for ServiceAllocators {
    fn default() -> Self {
        ServiceAllocators {
            ips: Range::service_ips(SERVICE_CIDR.0, SERVICE_CIDR.1),
            ports: Range::node_ports(NODE_PORTS.0, NODE_PORTS.1),
        }
    }
}

/// What a Service holds: its cluster IP (unless headless or ExternalName) and its NodePorts.
pub fn held(service: &Value) -> (Option<String>, Vec<String>) {
    let spec = &service["spec"];
    let ip = spec["clusterIP"]
        .as_str()
        .filter(|ip| !ip.is_empty() && *ip != "None")
        .map(String::from);
    let ports = spec["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["nodePort"].as_i64())
        .map(|p| p.to_string())
        .collect();
    (ip, ports)
}

/// Does this Service type get NodePorts?
pub fn wants_node_ports(spec: &Value) -> bool {
    matches!(spec["type"].as_str(), Some("NodePort" | "LoadBalancer"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_round_trip_and_ranges_are_checked() {
        let ips = Range::service_ips(Ipv4Addr::new(10, 43, 0, 0), 16);
        assert_eq!(ips.size(), 65534);
        assert_eq!(
            ips.value_at(ips.offset_of("10.43.0.1").unwrap()),
            "10.43.0.1"
        );
        assert_eq!(ips.offset_of("10.43.255.254").unwrap(), 65533);
        assert!(ips.offset_of("10.43.255.255").is_err(), "broadcast");
        assert!(ips.offset_of("10.43.0.0").is_err(), "network");
        assert_eq!(
            ips.offset_of("1.2.3.4").unwrap_err().to_string(),
            "the provided IP (1.2.3.4) is not in the valid range. The range of valid IPs is 10.43.0.0/16"
        );
        let ports = Range::node_ports(30000, 32767);
        assert_eq!(ports.size(), 2768);
        assert_eq!(ports.static_band(), 86);
        assert_eq!(
            ports.offset_of("80").unwrap_err().to_string(),
            "provided port is not in the valid range. The range of valid ports is 30000-32767"
        );
        assert!(ips.reserved(ips.offset_of("10.43.0.10").unwrap()));
    }

    #[test]
    fn random_picks_prefer_the_dynamic_band_and_fill_the_range() {
        let ports = Range::node_ports(30000, 30099);
        let mut map = Bitmap::new(ports.size());
        let band = ports.static_band();
        for i in 0..ports.size() {
            let o = ports.pick(&map).expect("free value");
            if i < ports.size() - band {
                assert!(o >= band, "dynamic values first");
            }
            assert!(!map.get(o));
            map.set(o, true);
        }
        assert_eq!(ports.pick(&map), None);
    }
}
