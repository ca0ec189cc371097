//! Requests per second per connection: a token bucket for each peer
//! address (`ip:port`, so one per TCP connection), applied to every Waybill
//! gRPC service as an interceptor. Over the limit: `RESOURCE_EXHAUSTED`,
//! before the request is decoded or authenticated.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tonic::{Request, Status};

/// Buckets kept before idle ones are dropped.
const MAX_TRACKED: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// A per-connection rate limit. Cheap to clone (shared buckets).
#[derive(Debug, Clone)]
pub struct RateLimit {
    per_sec: f64,
    burst: f64,
    buckets: Arc<Mutex<HashMap<SocketAddr, Bucket>>>,
}

impl RateLimit {
    /// `per_sec` requests per second per connection, bursts of twice that.
    pub fn new(per_sec: u32) -> RateLimit {
        let per_sec = f64::from(per_sec.max(1));
        RateLimit {
            per_sec,
            burst: per_sec * 2.0,
            buckets: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Takes one token for `peer`; false when its bucket is empty.
    fn admit(&self, peer: SocketAddr, now: Instant) -> bool {
        // A poisoned lock still holds whole buckets.
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() > MAX_TRACKED {
            let (per_sec, burst) = (self.per_sec, self.burst);
            // A bucket idle long enough to be full again carries no state.
            buckets.retain(|_, b| now.duration_since(b.at).as_secs_f64() * per_sec < burst);
        }
        let bucket = buckets.entry(peer).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        let refill = now.duration_since(bucket.at).as_secs_f64() * self.per_sec;
        bucket.tokens = (bucket.tokens + refill).min(self.burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

impl tonic::service::Interceptor for RateLimit {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        let Some(peer) = request.remote_addr() else {
            return Ok(request);
        };
        if self.admit(peer, Instant::now()) {
            Ok(request)
        } else {
            Err(Status::resource_exhausted(format!(
                "more than {} requests per second on this connection; slow down",
                self.per_sec
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_connection_gets_its_burst_then_its_rate() {
        let limit = RateLimit::new(10);
        let (a, b): (SocketAddr, SocketAddr) = (
            "127.0.0.1:1000".parse().expect("a"),
            "127.0.0.1:1001".parse().expect("b"),
        );
        let t0 = Instant::now();
        let admitted = (0..50).filter(|_| limit.admit(a, t0)).count();
        assert_eq!(admitted, 20, "a burst of twice the rate");
        // Another connection has its own bucket.
        assert!(limit.admit(b, t0));
        // Half a second later: five more.
        let t1 = t0 + Duration::from_millis(500);
        assert_eq!((0..50).filter(|_| limit.admit(a, t1)).count(), 5);
    }
}
