//! A pod's `/etc/resolv.conf` per its `dnsPolicy`, as the kubelet writes it:
//! `ClusterFirst` (the default) points at the cluster DNS with the search path
//! `<ns>.svc.<domain> svc.<domain> <domain>` plus the node's, and `ndots:5`;
//! `ClusterFirstWithHostNet` does the same for host-network pods, where `ClusterFirst`
//! means `Default`; `Default` copies the node's resolv.conf; `None` uses only `dnsConfig`.
//! `dnsConfig` nameservers, searches and options are merged in; Kubernetes' limits apply
//! (3 nameservers, 32 search domains of at most 2048 characters).

use std::net::IpAddr;

use k8s_openapi::api::core::v1::Pod;

const MAX_NAMESERVERS: usize = 3;
const MAX_SEARCHES: usize = 32;
const MAX_SEARCH_CHARS: usize = 2048;

/// The parts of a resolv.conf.
#[derive(Debug, Default, PartialEq)]
struct ResolvConf {
    nameservers: Vec<String>,
    searches: Vec<String>,
    options: Vec<(String, Option<String>)>,
}

fn parse(text: &str) -> ResolvConf {
    let mut r = ResolvConf::default();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("nameserver") => r.nameservers.extend(words.next().map(str::to_string)),
            Some("search") | Some("domain") => {
                r.searches = words.map(str::to_string).collect();
            }
            Some("options") => {
                for o in words {
                    set_option(&mut r.options, o);
                }
            }
            _ => {}
        }
    }
    r
}

fn set_option(options: &mut Vec<(String, Option<String>)>, o: &str) {
    let (name, value) = match o.split_once(':') {
        Some((n, v)) => (n.to_string(), Some(v.to_string())),
        None => (o.to_string(), None),
    };
    match options.iter_mut().find(|(n, _)| *n == name) {
        Some(existing) => existing.1 = value,
        None => options.push((name, value)),
    }
}

fn push_unique(list: &mut Vec<String>, item: &str) {
    if !list.iter().any(|i| i == item) {
        list.push(item.to_string());
    }
}

/// The resolv.conf of `pod`, given the cluster DNS addresses, the cluster domain and the
/// node's own resolv.conf text.
pub fn resolv_conf(pod: &Pod, cluster_dns: &[IpAddr], domain: &str, host: &str) -> String {
    let spec = pod.spec.clone().unwrap_or_default();
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let host_network = spec.host_network == Some(true);
    let policy = spec.dns_policy.as_deref().unwrap_or("ClusterFirst");
    let cluster = match policy {
        "ClusterFirstWithHostNet" => true,
        "ClusterFirst" => !host_network,
        _ => false,
    } && !cluster_dns.is_empty();
    let mut r = match policy {
        "None" => ResolvConf::default(),
        _ if cluster => {
            let node = parse(host);
            let mut searches = vec![
                format!("{ns}.svc.{domain}"),
                format!("svc.{domain}"),
                domain.to_string(),
            ];
            for s in &node.searches {
                push_unique(&mut searches, s);
            }
            ResolvConf {
                nameservers: cluster_dns.iter().map(IpAddr::to_string).collect(),
                searches,
                options: vec![("ndots".into(), Some("5".into()))],
            }
        }
        _ => parse(host),
    };
    if let Some(config) = &spec.dns_config {
        for n in config.nameservers.iter().flatten() {
            push_unique(&mut r.nameservers, n);
        }
        for s in config.searches.iter().flatten() {
            push_unique(&mut r.searches, s);
        }
        for o in config.options.iter().flatten() {
            let Some(name) = &o.name else { continue };
            let item = match &o.value {
                Some(v) => format!("{name}:{v}"),
                None => name.clone(),
            };
            set_option(&mut r.options, &item);
        }
    }
    r.nameservers.truncate(MAX_NAMESERVERS);
    r.searches.truncate(MAX_SEARCHES);
    while r.searches.join(" ").len() > MAX_SEARCH_CHARS {
        r.searches.pop();
    }
    let mut out = String::new();
    for n in &r.nameservers {
        out.push_str(&format!("nameserver {n}\n"));
    }
    if !r.searches.is_empty() {
        out.push_str(&format!("search {}\n", r.searches.join(" ")));
    }
    if !r.options.is_empty() {
        let opts: Vec<String> = r
            .options
            .iter()
            .map(|(n, v)| match v {
                Some(v) => format!("{n}:{v}"),
                None => n.clone(),
            })
            .collect();
        out.push_str(&format!("options {}\n", opts.join(" ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodDNSConfig, PodDNSConfigOption, PodSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    const HOST: &str = "nameserver 192.0.2.53\nsearch corp.example\noptions edns0\n";

    fn pod(policy: Option<&str>, host_network: bool, config: Option<PodDNSConfig>) -> Pod {
        Pod {
            metadata: ObjectMeta {
                namespace: Some("shop".into()),
                ..Default::default()
            },
            spec: Some(PodSpec {
                dns_policy: policy.map(str::to_string),
                host_network: Some(host_network),
                dns_config: config,
                ..Default::default()
            }),
            status: None,
        }
    }

    fn dns() -> Vec<IpAddr> {
        vec!["10.43.0.10".parse().unwrap()]
    }

    #[test]
    fn policies() {
        let cluster = "nameserver 10.43.0.10\nsearch shop.svc.cluster.local svc.cluster.local cluster.local corp.example\noptions ndots:5\n";
        let cases: &[(&str, Option<&str>, bool, &str)] = &[
            ("default is ClusterFirst", None, false, cluster),
            ("ClusterFirst", Some("ClusterFirst"), false, cluster),
            (
                "host network falls back to Default",
                Some("ClusterFirst"),
                true,
                HOST,
            ),
            (
                "ClusterFirstWithHostNet",
                Some("ClusterFirstWithHostNet"),
                true,
                cluster,
            ),
            ("Default", Some("Default"), false, HOST),
            ("None without dnsConfig", Some("None"), false, ""),
        ];
        for (what, policy, host_network, want) in cases {
            let got = resolv_conf(
                &pod(*policy, *host_network, None),
                &dns(),
                "cluster.local",
                HOST,
            );
            assert_eq!(&got, want, "{what}");
        }
    }

    #[test]
    fn dns_config_merges() {
        let config = PodDNSConfig {
            nameservers: Some(vec!["1.2.3.4".into()]),
            searches: Some(vec!["ns1.svc.cluster-domain.example".into()]),
            options: Some(vec![
                PodDNSConfigOption {
                    name: Some("ndots".into()),
                    value: Some("2".into()),
                },
                PodDNSConfigOption {
                    name: Some("edns0".into()),
                    value: None,
                },
            ]),
        };
        let got = resolv_conf(
            &pod(Some("None"), false, Some(config.clone())),
            &dns(),
            "cluster.local",
            HOST,
        );
        assert_eq!(
            got,
            "nameserver 1.2.3.4\nsearch ns1.svc.cluster-domain.example\noptions ndots:2 edns0\n"
        );
        let got = resolv_conf(
            &pod(None, false, Some(config)),
            &dns(),
            "cluster.local",
            HOST,
        );
        assert!(
            got.starts_with("nameserver 10.43.0.10\nnameserver 1.2.3.4\n"),
            "{got}"
        );
        assert!(got.ends_with("options ndots:2 edns0\n"), "{got}");
    }

    #[test]
    fn without_cluster_dns_cluster_first_uses_the_node() {
        let got = resolv_conf(&pod(None, false, None), &[], "cluster.local", HOST);
        assert_eq!(got, HOST);
    }
}
