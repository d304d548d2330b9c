//! Sets of addresses as sorted, disjoint ranges: what a firewall's allowed sources mean,
//! whatever the prefixes that spell them (split, merged, reordered, repeated).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Subnets, Ipv6Subnets};

use crate::model::Family;

/// Sorted, disjoint, inclusive ranges of addresses of one family (IPv4 as u128 too).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ranges(Vec<(u128, u128)>);

impl Ranges {
    pub fn full(family: Family) -> Ranges {
        Ranges(vec![(0, max(family))])
    }

    pub fn of<'a>(nets: impl Iterator<Item = &'a IpNet>) -> Ranges {
        let mut v: Vec<(u128, u128)> = nets
            .map(|n| (bits(n.network()), bits(n.broadcast())))
            .collect();
        v.sort_unstable();
        let mut out: Vec<(u128, u128)> = Vec::with_capacity(v.len());
        for (s, e) in v {
            match out.last_mut() {
                Some(last) if s <= last.1.saturating_add(1) => last.1 = last.1.max(e),
                _ => out.push((s, e)),
            }
        }
        Ranges(out)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn intersect(&self, other: &Ranges) -> Ranges {
        let (mut i, mut j, mut out) = (0, 0, Vec::new());
        while i < self.0.len() && j < other.0.len() {
            let (a, b) = (self.0[i], other.0[j]);
            let (s, e) = (a.0.max(b.0), a.1.min(b.1));
            if s <= e {
                out.push((s, e));
            }
            if a.1 < b.1 { i += 1 } else { j += 1 }
        }
        Ranges(out)
    }

    pub fn minus(&self, other: &Ranges) -> Ranges {
        let mut out = Vec::new();
        let mut j = 0;
        for &(start, end) in &self.0 {
            while j < other.0.len() && other.0[j].1 < start {
                j += 1;
            }
            // Walk the ranges of `other` that overlap [start, end], keeping the gaps.
            let (mut s, mut covered, mut k) = (start, false, j);
            while k < other.0.len() && other.0[k].0 <= end {
                let (os, oe) = other.0[k];
                if os > s {
                    out.push((s, os - 1));
                }
                if oe >= end {
                    covered = true;
                    break;
                }
                s = oe + 1;
                k += 1;
            }
            if !covered {
                out.push((s, end));
            }
        }
        Ranges(out)
    }

    pub fn prefixes(&self, family: Family) -> Vec<String> {
        let mut out = Vec::new();
        for &(s, e) in &self.0 {
            match family {
                Family::V4 => out.extend(
                    Ipv4Subnets::new(Ipv4Addr::from(s as u32), Ipv4Addr::from(e as u32), 0)
                        .map(|n| n.to_string()),
                ),
                Family::V6 => out.extend(
                    Ipv6Subnets::new(Ipv6Addr::from(s), Ipv6Addr::from(e), 0)
                        .map(|n| n.to_string()),
                ),
            }
        }
        out
    }
}

fn bits(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(a) => u32::from(a) as u128,
        IpAddr::V6(a) => u128::from(a),
    }
}

fn max(family: Family) -> u128 {
    match family {
        Family::V4 => u32::MAX as u128,
        Family::V6 => u128::MAX,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(v: &[(u128, u128)]) -> Ranges {
        Ranges(v.to_vec())
    }

    #[test]
    fn range_arithmetic() {
        let a = r(&[(0, 10), (20, 30)]);
        let b = r(&[(5, 22), (25, 25)]);
        assert_eq!(a.minus(&b), r(&[(0, 4), (23, 24), (26, 30)]));
        assert_eq!(a.intersect(&b), r(&[(5, 10), (20, 22), (25, 25)]));
        assert_eq!(b.minus(&a), r(&[(11, 19)]));
        assert_eq!(a.minus(&a), r(&[]));
        let full = Ranges::full(Family::V6);
        assert_eq!(full.minus(&full), r(&[]));
        assert_eq!(r(&[(0, 10)]).minus(&r(&[(0, 10)])), r(&[]));
    }

    #[test]
    fn split_prefixes_are_the_same_set() {
        let a: Vec<IpNet> = vec!["192.0.2.0/24".parse().unwrap()];
        let b: Vec<IpNet> = vec![
            "192.0.2.128/25".parse().unwrap(),
            "192.0.2.0/25".parse().unwrap(),
        ];
        assert_eq!(Ranges::of(a.iter()), Ranges::of(b.iter()));
        assert_eq!(
            Ranges::of(a.iter()).prefixes(Family::V4),
            vec!["192.0.2.0/24"]
        );
    }
}
