//! The DNS server: UDP and TCP on one address; questions in the cluster domain are answered
//! from the current [`Zone`], other names are forwarded to the upstream resolvers and their
//! answers cached for their TTL (negative ones for the SOA minimum, at most 30 s).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use hickory_proto::op::{Edns, Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::RecordType;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};

use crate::zone::{Lookup, Zone};

/// Most entries the forwarding cache holds.
const CACHE_MAX: usize = 10_000;
/// How long an upstream may take.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);

/// Forwarded answers by (lowercased name, record type): expiry and the response bytes.
type Cache = HashMap<(String, u16), (Instant, Vec<u8>)>;

/// The state the server answers from.
pub struct Resolver {
    zone: RwLock<Arc<Zone>>,
    upstreams: Vec<SocketAddr>,
    cache: Mutex<Cache>,
}

/// What to do with a query.
pub enum Reply {
    /// Send these bytes.
    Now(Vec<u8>),
    /// Ask upstream (the query bytes as received).
    Forward,
    /// Malformed beyond an answer: say nothing.
    Drop,
}

impl Resolver {
    /// A resolver with an empty zone forwarding to `upstreams`.
    pub fn new(upstreams: Vec<SocketAddr>) -> Arc<Self> {
        Arc::new(Resolver {
            zone: RwLock::new(Arc::new(Zone::default())),
            upstreams,
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// Replaces the zone.
    pub fn set_zone(&self, zone: Zone) {
        *self.zone.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(zone);
    }

    fn zone(&self) -> Arc<Zone> {
        self.zone.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Answers `query` from the zone or the cache, or says it must be forwarded.
    pub fn answer(&self, query: &[u8], max_udp: Option<usize>) -> Reply {
        let Ok(request) = Message::from_vec(query) else {
            return match query.get(..2) {
                Some(id) => {
                    let id = u16::from_be_bytes([id[0], id[1]]);
                    encode(
                        &Message::error_msg(id, OpCode::Query, ResponseCode::FormErr),
                        None,
                    )
                }
                None => Reply::Drop,
            };
        };
        let id = request.metadata.id;
        if request.metadata.message_type != MessageType::Query
            || request.metadata.op_code != OpCode::Query
            || request.queries.len() != 1
        {
            let mut m = Message::error_msg(id, request.metadata.op_code, ResponseCode::NotImp);
            m.queries = request.queries.clone();
            return encode(&m, max_udp);
        }
        let q = &request.queries[0];
        let zone = self.zone();
        let mut response = Message::response(id, OpCode::Query);
        response.metadata.recursion_desired = request.metadata.recursion_desired;
        response.metadata.recursion_available = true;
        response.queries = request.queries.clone();
        if request.edns.is_some() {
            let mut edns = Edns::new();
            edns.set_max_payload(1232);
            response.edns = Some(edns);
        }
        let limit = max_udp.map(|m| {
            let asked = request.edns.as_ref().map(|e| e.max_payload() as usize);
            asked.unwrap_or(512).clamp(512, m)
        });
        match zone.lookup(q.name(), q.query_type()) {
            Lookup::Answer(records) => {
                response.metadata.authoritative = true;
                response.answers = records;
            }
            Lookup::NoData => {
                response.metadata.authoritative = true;
                response.authorities.push(zone.soa());
            }
            Lookup::NxDomain => {
                response.metadata.authoritative = true;
                response.metadata.response_code = ResponseCode::NXDomain;
                response.authorities.push(zone.soa());
            }
            Lookup::NotOurs => {
                let key = cache_key(q.name().to_ascii(), q.query_type());
                let cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
                return match cache.get(&key) {
                    Some((expires, bytes)) if *expires > Instant::now() => {
                        let mut bytes = bytes.clone();
                        bytes[..2].copy_from_slice(&id.to_be_bytes());
                        Reply::Now(bytes)
                    }
                    _ => Reply::Forward,
                };
            }
        }
        encode(&response, limit)
    }

    /// Forwards `query` to the upstreams in turn; caches and returns the first answer.
    pub async fn forward(&self, query: &[u8]) -> Option<Vec<u8>> {
        let request = Message::from_vec(query).ok()?;
        let q = request.queries.first()?;
        let key = cache_key(q.name().to_ascii(), q.query_type());
        for upstream in &self.upstreams {
            let bind: SocketAddr = if upstream.is_ipv4() {
                "0.0.0.0:0".parse().ok()?
            } else {
                "[::]:0".parse().ok()?
            };
            let Ok(socket) = UdpSocket::bind(bind).await else {
                continue;
            };
            if socket.send_to(query, upstream).await.is_err() {
                continue;
            }
            let mut buf = vec![0u8; 4096];
            let got = tokio::time::timeout(UPSTREAM_TIMEOUT, socket.recv_from(&mut buf)).await;
            let Ok(Ok((n, from))) = got else {
                tracing::debug!(%upstream, "upstream did not answer");
                continue;
            };
            if from != *upstream || n < 12 || buf[..2] != query[..2] {
                continue;
            }
            buf.truncate(n);
            if let Some(ttl) = cacheable_ttl(&buf) {
                let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
                if cache.len() >= CACHE_MAX {
                    let now = Instant::now();
                    cache.retain(|_, (e, _)| *e > now);
                    if cache.len() >= CACHE_MAX {
                        cache.clear();
                    }
                }
                cache.insert(key, (Instant::now() + ttl, buf.clone()));
            }
            return Some(buf);
        }
        None
    }
}

fn cache_key(name: String, t: RecordType) -> (String, u16) {
    (crate::zone::key(&name), u16::from(t))
}

/// How long an upstream answer may be cached: its smallest TTL (at most 300 s); negative
/// answers for the SOA minimum (at most 30 s); failures not at all.
fn cacheable_ttl(bytes: &[u8]) -> Option<Duration> {
    let m = Message::from_vec(bytes).ok()?;
    if m.metadata.truncation {
        return None;
    }
    match m.metadata.response_code {
        ResponseCode::NoError if !m.answers.is_empty() => {
            let ttl = m.answers.iter().map(|r| r.ttl).min()?;
            Some(Duration::from_secs(u64::from(ttl.min(300))))
        }
        ResponseCode::NoError | ResponseCode::NXDomain => {
            let ttl = m.authorities.first().map(|r| r.ttl).unwrap_or(30);
            Some(Duration::from_secs(u64::from(ttl.min(30))))
        }
        _ => None,
    }
}

/// SERVFAIL for `query` (no upstream answered).
fn servfail(query: &[u8]) -> Option<Vec<u8>> {
    let request = Message::from_vec(query).ok()?;
    let mut m = Message::error_msg(request.metadata.id, OpCode::Query, ResponseCode::ServFail);
    m.queries = request.queries;
    m.metadata.recursion_available = true;
    m.to_vec().ok()
}

/// Encodes `m`, truncating (TC) when it does not fit `limit` bytes.
fn encode(m: &Message, limit: Option<usize>) -> Reply {
    let Ok(bytes) = m.to_vec() else {
        return Reply::Drop;
    };
    match limit {
        Some(limit) if bytes.len() > limit => {
            let mut short = m.clone();
            short.answers.clear();
            short.authorities.clear();
            short.metadata.truncation = true;
            short.to_vec().map(Reply::Now).unwrap_or(Reply::Drop)
        }
        _ => Reply::Now(bytes),
    }
}

/// Serves UDP on `socket` until the future is dropped.
pub async fn serve_udp(socket: Arc<UdpSocket>, resolver: Arc<Resolver>) -> std::io::Result<()> {
    let mut buf = vec![0u8; 4096];
    loop {
        let (n, peer) = socket.recv_from(&mut buf).await?;
        match resolver.answer(&buf[..n], Some(4096)) {
            Reply::Now(bytes) => {
                let _ = socket.send_to(&bytes, peer).await;
            }
            Reply::Forward => {
                let query = buf[..n].to_vec();
                let (socket, resolver) = (socket.clone(), resolver.clone());
                tokio::spawn(async move {
                    let bytes = match resolver.forward(&query).await {
                        Some(bytes) => bytes,
                        None => match servfail(&query) {
                            Some(bytes) => bytes,
                            None => return,
                        },
                    };
                    let _ = socket.send_to(&bytes, peer).await;
                });
            }
            Reply::Drop => {}
        }
    }
}

/// Serves TCP (length-prefixed messages) on `listener` until the future is dropped.
pub async fn serve_tcp(listener: TcpListener, resolver: Arc<Resolver>) -> std::io::Result<()> {
    loop {
        let (mut conn, _) = listener.accept().await?;
        let resolver = resolver.clone();
        tokio::spawn(async move {
            loop {
                let Ok(Ok(len)) =
                    tokio::time::timeout(Duration::from_secs(10), conn.read_u16()).await
                else {
                    return;
                };
                let mut query = vec![0u8; len as usize];
                if conn.read_exact(&mut query).await.is_err() {
                    return;
                }
                let bytes = match resolver.answer(&query, None) {
                    Reply::Now(b) => b,
                    Reply::Forward => match resolver.forward(&query).await {
                        Some(b) => b,
                        None => match servfail(&query) {
                            Some(b) => b,
                            None => return,
                        },
                    },
                    Reply::Drop => return,
                };
                let Ok(len) = u16::try_from(bytes.len()) else {
                    return;
                };
                if conn.write_u16(len).await.is_err() || conn.write_all(&bytes).await.is_err() {
                    return;
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::Query;
    use hickory_proto::rr::{Name, RData, Record};
    use std::str::FromStr;

    fn query(name: &str, id: u16) -> Vec<u8> {
        let mut m = Message::new(id, MessageType::Query, OpCode::Query);
        m.queries
            .push(Query::query(Name::from_str(name).unwrap(), RecordType::A));
        m.to_vec().unwrap()
    }

    /// An upstream on loopback answering `name` with 192.0.2.7 (TTL 60), once.
    async fn upstream() -> SocketAddr {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        tokio::spawn(async move {
            let mut buf = [0u8; 1500];
            let (n, peer) = socket.recv_from(&mut buf).await.unwrap();
            let q = Message::from_vec(&buf[..n]).unwrap();
            let mut m = Message::response(q.metadata.id, OpCode::Query);
            m.queries = q.queries.clone();
            m.answers.push(Record::from_rdata(
                q.queries[0].name().clone(),
                60,
                RData::A(std::net::Ipv4Addr::new(192, 0, 2, 7).into()),
            ));
            socket.send_to(&m.to_vec().unwrap(), peer).await.unwrap();
        });
        addr
    }

    #[tokio::test]
    async fn forwarded_answers_are_cached_under_the_askers_id() {
        let resolver = Resolver::new(vec![upstream().await]);
        let q = query("outside.example.", 1);
        assert!(matches!(resolver.answer(&q, Some(512)), Reply::Forward));
        let forwarded = resolver.forward(&q).await.unwrap();
        assert_eq!(&forwarded[..2], &1u16.to_be_bytes());
        // The upstream answers only once: the second answer is the cache's.
        let Reply::Now(again) = resolver.answer(&query("OUTSIDE.example.", 2), Some(512)) else {
            panic!("not cached");
        };
        let m = Message::from_vec(&again).unwrap();
        assert_eq!(m.metadata.id, 2);
        assert_eq!(m.answers[0].data.to_string(), "192.0.2.7");
    }

    #[tokio::test]
    async fn no_upstream_means_servfail_and_no_cache_entry() {
        // A port nothing listens on: the forward times out (2 s) or is refused.
        let resolver = Resolver::new(vec!["127.0.0.1:9".parse().unwrap()]);
        let q = query("outside.example.", 3);
        assert!(resolver.forward(&q).await.is_none());
        let m = Message::from_vec(&servfail(&q).unwrap()).unwrap();
        assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
        assert!(matches!(resolver.answer(&q, Some(512)), Reply::Forward));
    }

    #[test]
    fn large_answers_are_truncated_over_udp() {
        let mut m = Message::response(9, OpCode::Query);
        for i in 0..100u8 {
            m.answers.push(Record::from_rdata(
                Name::from_str("big.example.").unwrap(),
                5,
                RData::A(std::net::Ipv4Addr::new(10, 0, 0, i).into()),
            ));
        }
        let Reply::Now(bytes) = encode(&m, Some(512)) else {
            panic!()
        };
        let short = Message::from_vec(&bytes).unwrap();
        assert!(short.metadata.truncation);
        assert!(short.answers.is_empty());
        let Reply::Now(bytes) = encode(&m, None) else {
            panic!()
        };
        assert_eq!(Message::from_vec(&bytes).unwrap().answers.len(), 100);
    }

    #[test]
    fn garbage_gets_formerr() {
        let Reply::Now(bytes) = Resolver::new(vec![]).answer(&[0, 7, 1], Some(512)) else {
            panic!()
        };
        let m = Message::from_vec(&bytes).unwrap();
        assert_eq!(m.metadata.id, 7);
        assert_eq!(m.metadata.response_code, ResponseCode::FormErr);
    }
}
