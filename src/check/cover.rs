//! Which prefixes of a list are covered by another entry of the same list.
//!
//! Sort by (network address, prefix length) and sweep once with a stack of enclosing
//! prefixes: O(n log n), so 50k allowed sources cost milliseconds, not all pairs.

use ipnet::IpNet;

/// For each entry covered by another one (contained in it, or equal to an earlier one),
/// `(covered index, covering index)`, ordered by the covered index.
pub fn covered(nets: &[IpNet]) -> Vec<(usize, usize)> {
    let mut order: Vec<usize> = (0..nets.len()).collect();
    // Same network and length: the earlier entry in the file covers the later one.
    order.sort_by_key(|&i| {
        (
            family_rank(&nets[i]),
            nets[i].network(),
            nets[i].prefix_len(),
            i,
        )
    });
    let mut stack: Vec<usize> = Vec::new();
    let mut out = Vec::new();
    for i in order {
        while let Some(&top) = stack.last() {
            if nets[top].contains(&nets[i]) {
                break;
            }
            stack.pop();
        }
        match stack.last() {
            Some(&top) => out.push((i, top)),
            None => stack.push(i),
        }
    }
    out.sort_unstable();
    out
}

fn family_rank(net: &IpNet) -> u8 {
    match net {
        IpNet::V4(_) => 4,
        IpNet::V6(_) => 6,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(s: &[&str]) -> Vec<IpNet> {
        s.iter().map(|n| n.parse().unwrap()).collect()
    }

    #[test]
    fn finds_contained_and_duplicate_prefixes() {
        let n = nets(&[
            "10.1.2.0/24",
            "10.0.0.0/8",
            "10.1.2.3/32",
            "192.0.2.0/24",
            "fd00::/16",
            "fd00:1::/64",
            "192.0.2.0/24",
            "10.0.0.0/8",
        ]);
        assert_eq!(covered(&n), vec![(0, 1), (2, 1), (5, 4), (6, 3), (7, 1)]);
    }

    #[test]
    fn families_never_cover_each_other() {
        let n = nets(&["0.0.0.0/0", "::/0", "::ffff:10.0.0.0/104"]);
        assert_eq!(covered(&n), vec![(2, 1)]);
    }

    #[test]
    fn siblings_are_not_covered() {
        let n = nets(&["10.0.0.0/25", "10.0.0.128/25", "10.0.1.0/24"]);
        assert!(covered(&n).is_empty());
    }
}
