use std::net::IpAddr;

/// Where a request came from, as the per-source limits count it: the
/// address API Gateway saw the connection come from (never a header the
/// client wrote). An IPv4 address counts whole; an IPv6 address by its /64,
/// the network one subscriber is given, whose every address its hosts may
/// take, so stepping through them is no way around a limit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Source(String);

/// The bucket of a request that carries no address: only a direct invoke
/// (a test, `cargo lambda invoke`), never API Gateway, sends one.
const UNKNOWN: &str = "unknown";

impl Source {
    /// The bucket of `raw`, an address in API Gateway's `sourceIp`; a value
    /// that is no address shares the unknown bucket.
    pub fn parse(raw: &str) -> Self {
        match raw.trim().parse::<IpAddr>() {
            Ok(IpAddr::V4(v4)) => Source(v4.to_string()),
            Ok(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
                Some(v4) => Source(v4.to_string()),
                None => {
                    let s = v6.segments();
                    Source(format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3]))
                }
            },
            Err(_) => Self::unknown(),
        }
    }

    pub fn unknown() -> Self {
        Source(UNKNOWN.to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ipv4_address_counts_whole() {
        assert_eq!(Source::parse("203.0.113.7").as_str(), "203.0.113.7");
        assert_ne!(Source::parse("203.0.113.7"), Source::parse("203.0.113.8"));
    }

    #[test]
    fn an_ipv6_address_counts_by_its_64_bit_network() {
        let a = Source::parse("2001:db8:1:2:aaaa::1");
        let b = Source::parse("2001:db8:1:2:ffff:ffff:ffff:ffff");
        assert_eq!(a, b);
        assert_eq!(a.as_str(), "2001:db8:1:2::/64");
        assert_ne!(a, Source::parse("2001:db8:1:3::1"));
    }

    #[test]
    fn an_ipv4_mapped_address_is_its_ipv4_address() {
        assert_eq!(Source::parse("::ffff:203.0.113.7").as_str(), "203.0.113.7");
    }

    #[test]
    fn anything_else_shares_the_unknown_bucket() {
        for raw in [
            "",
            "not an address",
            "203.0.113.7:443",
            "~token-signing-key",
        ] {
            assert_eq!(Source::parse(raw), Source::unknown(), "{raw}");
        }
    }
}
