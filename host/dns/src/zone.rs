//! The `cluster.local` zone as Kubernetes' DNS specification (and CoreDNS's kubernetes
//! plugin) defines it, built from Services and EndpointSlices:
//! - `<svc>.<ns>.svc.<domain>`: A/AAAA of the ClusterIP; for a headless Service, of each
//!   ready endpoint (all of them with `publishNotReadyAddresses`); CNAME for ExternalName;
//! - `<host>.<svc>.<ns>.svc.<domain>` for a headless Service's endpoints, `<host>` being the
//!   endpoint's hostname (a pod's `hostname` with `subdomain` = the Service) or its dashed IP;
//! - `_<port>._<proto>.<svc>.<ns>.svc.<domain>`: SRV per named port;
//! - PTR in `in-addr.arpa`/`ip6.arpa` for ClusterIPs and headless endpoints;
//! - `<a-b-c-d>.<ns>.pod.<domain>`: A of the dashed address (CoreDNS's `pods insecure`).
//!
//! Names that exist only as parents (`<ns>.svc.<domain>`) answer NODATA, unknown names in
//! the domain NXDOMAIN.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;

use hickory_proto::rr::rdata::{CNAME, PTR, SOA, SRV};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

/// TTL of cluster records, as CoreDNS's kubernetes plugin (5 s).
pub const TTL: u32 = 5;

/// The label linking an EndpointSlice to its Service.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// What the zone says about a question.
#[derive(Debug, PartialEq)]
pub enum Lookup {
    /// Records of the asked type (or a CNAME).
    Answer(Vec<Record>),
    /// The name exists, without records of that type.
    NoData,
    /// The name is in the zone and does not exist.
    NxDomain,
    /// Not this zone's name: forward it.
    NotOurs,
}

/// The cluster's records, rebuilt whenever Services or EndpointSlices change.
#[derive(Debug, Default)]
pub struct Zone {
    domain: String,
    records: HashMap<String, Vec<Record>>,
    names: BTreeSet<String>,
}

/// `name` lowercased with a trailing dot: the zone's keys.
pub(crate) fn key(name: &str) -> String {
    let mut k = name.to_ascii_lowercase();
    if !k.ends_with('.') {
        k.push('.');
    }
    k
}

fn dashed(ip: &IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string().replace('.', "-"),
        IpAddr::V6(v6) => v6.to_string().replace(':', "-"),
    }
}

/// The reverse-lookup name of `ip`.
pub(crate) fn reverse(ip: &IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.{}.in-addr.arpa.", o[3], o[2], o[1], o[0])
        }
        IpAddr::V6(v6) => {
            let mut s = String::new();
            for b in v6.octets().iter().rev() {
                s.push_str(&format!("{:x}.{:x}.", b & 0xf, b >> 4));
            }
            s + "ip6.arpa."
        }
    }
}

fn address(name: &Name, ip: IpAddr) -> Record {
    match ip {
        IpAddr::V4(v4) => Record::from_rdata(name.clone(), TTL, RData::A(v4.into())),
        IpAddr::V6(v6) => Record::from_rdata(name.clone(), TTL, RData::AAAA(v6.into())),
    }
}

impl Zone {
    /// The zone for `domain` (e.g. `cluster.local`) from these objects.
    pub fn build<'a>(
        domain: &str,
        services: impl IntoIterator<Item = &'a Service>,
        slices: impl IntoIterator<Item = &'a EndpointSlice>,
    ) -> Zone {
        let mut zone = Zone {
            domain: key(domain),
            ..Default::default()
        };
        let mut by_service: HashMap<(String, String), Vec<&EndpointSlice>> = HashMap::new();
        for slice in slices {
            let labels = slice.metadata.labels.as_ref();
            if let Some(svc) = labels.and_then(|l| l.get(SERVICE_NAME_LABEL)) {
                let ns = slice.metadata.namespace.clone().unwrap_or_default();
                by_service.entry((ns, svc.clone())).or_default().push(slice);
            }
        }
        for svc in services {
            let ns = svc.metadata.namespace.clone().unwrap_or_default();
            let name = svc.metadata.name.clone().unwrap_or_default();
            let slices = by_service.remove(&(ns.clone(), name.clone()));
            zone.service(svc, &ns, &name, slices.as_deref().unwrap_or(&[]));
        }
        zone
    }

    fn add(&mut self, name: &str, record: impl FnOnce(&Name) -> Record) {
        let k = key(name);
        let Ok(n) = Name::from_ascii(&k) else { return };
        let r = record(&n);
        self.records.entry(k.clone()).or_default().push(r);
        // Every parent inside the zone exists too (empty non-terminals).
        let mut rest = k.as_str();
        while let Some((_, parent)) = rest.split_once('.') {
            if parent.is_empty() || !parent.ends_with(&self.domain) {
                break;
            }
            self.names.insert(parent.to_string());
            rest = parent;
        }
        self.names.insert(k);
    }

    fn service(&mut self, svc: &Service, ns: &str, name: &str, slices: &[&EndpointSlice]) {
        let Some(spec) = &svc.spec else { return };
        let d = self.domain.clone();
        let fqdn = format!("{name}.{ns}.svc.{d}");
        if spec.type_.as_deref() == Some("ExternalName") {
            if let Some(target) = spec.external_name.as_deref().and_then(|t| {
                let t = key(t);
                Name::from_ascii(t).ok()
            }) {
                self.add(&fqdn, |n| {
                    Record::from_rdata(n.clone(), TTL, RData::CNAME(CNAME(target)))
                });
            }
            return;
        }
        let headless = spec.cluster_ip.as_deref() == Some("None");
        let publish_all = spec.publish_not_ready_addresses == Some(true);
        let svc_name = Name::from_ascii(&fqdn).ok();
        if !headless {
            let ips: Vec<IpAddr> = spec
                .cluster_ips
                .iter()
                .flatten()
                .chain(spec.cluster_ip.iter())
                .filter_map(|ip| ip.parse().ok())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            if ips.is_empty() {
                return;
            }
            for ip in &ips {
                self.add(&fqdn, |n| address(n, *ip));
                if let Some(target) = &svc_name {
                    self.add(&reverse(ip), |n| {
                        Record::from_rdata(n.clone(), TTL, RData::PTR(PTR(target.clone())))
                    });
                }
            }
            for port in spec.ports.iter().flatten() {
                let (Some(pname), Some(target)) = (&port.name, &svc_name) else {
                    continue;
                };
                let proto = port.protocol.as_deref().unwrap_or("TCP").to_lowercase();
                let srv = SRV::new(0, 100, port.port as u16, target.clone());
                self.add(&format!("_{pname}._{proto}.{fqdn}"), |n| {
                    Record::from_rdata(n.clone(), TTL, RData::SRV(srv))
                });
            }
            // The service name exists even without ports.
            self.names.insert(key(&fqdn));
            return;
        }
        // Headless: the endpoints themselves.
        self.names.insert(key(&fqdn));
        let mut seen = BTreeSet::new();
        for slice in slices {
            for ep in &slice.endpoints {
                let ready = ep.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true);
                if !ready && !publish_all {
                    continue;
                }
                for ip in ep.addresses.iter().filter_map(|a| a.parse::<IpAddr>().ok()) {
                    if !seen.insert(ip) {
                        continue;
                    }
                    let host = ep.hostname.clone().unwrap_or_else(|| dashed(&ip));
                    let host_fqdn = format!("{host}.{fqdn}");
                    self.add(&fqdn, |n| address(n, ip));
                    self.add(&host_fqdn, |n| address(n, ip));
                    if let Ok(target) = Name::from_ascii(key(&host_fqdn)) {
                        self.add(&reverse(&ip), |n| {
                            Record::from_rdata(n.clone(), TTL, RData::PTR(PTR(target.clone())))
                        });
                        for port in slice.ports.iter().flatten() {
                            let (Some(pname), Some(p)) = (&port.name, port.port) else {
                                continue;
                            };
                            if pname.is_empty() {
                                continue;
                            }
                            let proto = port.protocol.as_deref().unwrap_or("TCP").to_lowercase();
                            let srv = SRV::new(0, 100, p as u16, target.clone());
                            self.add(&format!("_{pname}._{proto}.{fqdn}"), |n| {
                                Record::from_rdata(n.clone(), TTL, RData::SRV(srv))
                            });
                        }
                    }
                }
            }
        }
    }

    /// Whether `name` (a zone key) belongs to this zone or to a reverse zone it answers.
    fn ours(&self, k: &str) -> bool {
        // An empty zone (before the first build) claims nothing.
        !self.domain.is_empty() && (k == self.domain || k.ends_with(&format!(".{}", self.domain)))
    }

    /// Answers `qtype` for `name`.
    pub fn lookup(&self, name: &Name, qtype: RecordType) -> Lookup {
        let k = key(&name.to_ascii());
        let records = self.records.get(&k);
        if !self.ours(&k) {
            // Reverse names the zone knows; everything else goes upstream (CoreDNS's
            // `fallthrough in-addr.arpa ip6.arpa`).
            return match records {
                Some(r) => self.select(r, qtype),
                None => Lookup::NotOurs,
            };
        }
        if let Some(r) = records {
            return self.select(r, qtype);
        }
        if let Some(ip) = self.pod_address(&k) {
            return match (qtype, ip) {
                (RecordType::A, IpAddr::V4(_)) | (RecordType::AAAA, IpAddr::V6(_)) => {
                    Lookup::Answer(vec![address(name, ip)])
                }
                _ => Lookup::NoData,
            };
        }
        if self.names.contains(&k) || k == self.domain {
            Lookup::NoData
        } else {
            Lookup::NxDomain
        }
    }

    fn select(&self, records: &[Record], qtype: RecordType) -> Lookup {
        let cname: Vec<Record> = records
            .iter()
            .filter(|r| r.record_type() == RecordType::CNAME)
            .cloned()
            .collect();
        if !cname.is_empty() && qtype != RecordType::CNAME {
            return Lookup::Answer(cname);
        }
        let hits: Vec<Record> = records
            .iter()
            .filter(|r| qtype == RecordType::ANY || r.record_type() == qtype)
            .cloned()
            .collect();
        if hits.is_empty() {
            Lookup::NoData
        } else {
            Lookup::Answer(hits)
        }
    }

    /// `<a-b-c-d>.<ns>.pod.<domain>` → the address.
    fn pod_address(&self, k: &str) -> Option<IpAddr> {
        let rest = k.strip_suffix(&format!(".pod.{}", self.domain))?;
        let (host, ns) = rest.split_once('.')?;
        if ns.contains('.') {
            return None;
        }
        host.replace('-', ".")
            .parse::<std::net::Ipv4Addr>()
            .map(IpAddr::V4)
            .ok()
    }

    /// The SOA of the zone (authority section of negative answers).
    pub fn soa(&self) -> Record {
        let apex = Name::from_ascii(&self.domain).unwrap_or_else(|_| Name::root());
        let mname = Name::from_ascii(format!("ns.dns.{}", self.domain)).unwrap_or(apex.clone());
        let rname = Name::from_ascii(format!("hostmaster.{}", self.domain)).unwrap_or(apex.clone());
        Record::from_rdata(
            apex,
            TTL,
            RData::SOA(SOA::new(mname, rname, 1, 7200, 1800, 86400, TTL)),
        )
    }

    /// How many names hold records.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether the zone holds no records.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

#[cfg(test)]
mod tests;
