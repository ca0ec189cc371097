//! RFC 6962 test vectors from transparency-dev/merkle (`testonly/constants.go`
//! and `testonly/reference_test.go`): the 8 leaves below, every node of the
//! 8-leaf tree, the roots of sizes 0 to 8, and sample proofs.

use crate::audit::{
    consistency_proof, empty_root, inclusion_proof, leaf_hash, root, split_point,
    verify_consistency, verify_inclusion, Frontier, Hash, MemoryTree, Nodes,
};

fn leaves() -> Vec<Vec<u8>> {
    [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
    .iter()
    .map(|h| hex::decode(h).expect("test vector is hex"))
    .collect()
}

fn h(text: &str) -> Hash {
    hex::decode(text)
        .expect("hex")
        .try_into()
        .expect("32 bytes")
}

const ROOTS: [&str; 9] = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

const NODES: [&[&str]; 4] = [
    &[
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
        "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
        "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
        "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
    ],
    &[
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
    ],
    &[
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ],
    &["5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"],
];

#[test]
fn empty_root_is_sha256_of_nothing() {
    assert_eq!(empty_root(), h(ROOTS[0]));
    assert_eq!(Frontier::new().root(), h(ROOTS[0]));
}

#[test]
fn every_node_and_root_matches() {
    let tree = MemoryTree::from_leaves(&leaves());
    for (level, hashes) in NODES.iter().enumerate() {
        for (index, hash) in hashes.iter().enumerate() {
            let node = tree.node(level as u8, index as u64).expect("infallible");
            assert_eq!(node, h(hash), "node ({level}, {index})");
        }
    }
    for (leaf, hash) in leaves().iter().zip(NODES[0]) {
        assert_eq!(leaf_hash(leaf), h(hash));
    }
    let mut frontier = Frontier::new();
    for (size, expected) in ROOTS.iter().enumerate() {
        assert_eq!(
            root(&tree, size as u64).expect("infallible"),
            h(expected),
            "size {size}"
        );
        assert_eq!(frontier.root(), h(expected), "frontier at size {size}");
        assert_eq!(
            Frontier::load(&tree, size as u64).expect("infallible"),
            frontier
        );
        if let Some(leaf) = leaves().get(size) {
            frontier.push(leaf_hash(leaf));
        }
    }
}

#[test]
fn inclusion_proofs_match() {
    let tree = MemoryTree::from_leaves(&leaves());
    let cases: [(u64, u64, &[&str]); 7] = [
        (0, 1, &[]),
        (0, 2, &[NODES[0][1]]),
        (1, 2, &[NODES[0][0]]),
        (2, 3, &[NODES[1][0]]),
        (1, 5, &[NODES[0][0], NODES[1][1], NODES[0][4]]),
        (0, 8, &[NODES[0][1], NODES[1][1], NODES[2][1]]),
        (5, 8, &[NODES[0][4], NODES[1][3], NODES[2][0]]),
    ];
    for (index, size, expected) in cases {
        let expected: Vec<Hash> = expected.iter().map(|e| h(e)).collect();
        let proof = inclusion_proof(&tree, index, size).expect("infallible");
        assert_eq!(proof, expected, "index {index} size {size}");
        let leaf = h(NODES[0][index as usize]);
        let root = h(ROOTS[size as usize]);
        assert_eq!(verify_inclusion(index, size, &leaf, &proof, &root), Ok(()));
    }
}

#[test]
fn consistency_proofs_match() {
    let tree = MemoryTree::from_leaves(&leaves());
    let cases: [(u64, u64, &[&str]); 4] = [
        (1, 1, &[]),
        (1, 8, &[NODES[0][1], NODES[1][1], NODES[2][1]]),
        (2, 5, &[NODES[1][1], NODES[0][4]]),
        (6, 8, &[NODES[1][2], NODES[1][3], NODES[2][0]]),
    ];
    for (old, new, expected) in cases {
        let expected: Vec<Hash> = expected.iter().map(|e| h(e)).collect();
        let proof = consistency_proof(&tree, old, new).expect("infallible");
        assert_eq!(proof, expected, "{old} -> {new}");
        let (old_root, new_root) = (h(ROOTS[old as usize]), h(ROOTS[new as usize]));
        assert_eq!(
            verify_consistency(old, new, &old_root, &new_root, &proof),
            Ok(())
        );
    }
}

#[test]
fn split_points() {
    for (n, k) in [
        (2, 1),
        (3, 2),
        (7, 4),
        (8, 4),
        (9, 8),
        (63, 32),
        (28937, 16384),
    ] {
        assert_eq!(split_point(n), k, "split_point({n})");
    }
    assert_eq!(split_point(u64::MAX), 1 << 63);
    assert_eq!(split_point(1), 0);
    assert_eq!(split_point(0), 0);
}
