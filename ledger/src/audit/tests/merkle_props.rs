//! The `Nodes`-based functions against the naive definitions, on random trees.

use proptest::prelude::*;
use proptest::sample::Index;

use super::reference::{leaves, mth, path, subproof};
use crate::audit::{
    consistency_proof, inclusion_proof, leaf_hash, root, subtree_root, verify_consistency,
    verify_inclusion, Frontier, Hash, MemoryTree, Nodes, ProofError,
};

const MAX: u64 = 300;

fn tree(n: u64) -> (Vec<Vec<u8>>, MemoryTree) {
    let data = leaves(n as usize);
    let tree = MemoryTree::from_leaves(&data);
    (data, tree)
}

fn root_of(tree: &MemoryTree, size: u64) -> Hash {
    root(tree, size).expect("infallible")
}

/// Flips one bit of one proof hash, chosen by `pick`.
fn flip(proof: &[Hash], pick: Index, bit: u8) -> Vec<Hash> {
    let mut proof = proof.to_vec();
    let byte = pick.index(proof.len() * 32);
    proof[byte / 32][byte % 32] ^= 1 << (bit % 8);
    proof
}

proptest! {
    #[test]
    fn roots_and_frontier_match_naive(n in 1..=MAX) {
        roots_and_frontier(n)?;
    }

    #[test]
    fn unaligned_subtree_roots_match_naive(n in 1..=MAX, a in any::<Index>(), b in any::<Index>()) {
        unaligned_subtree_roots(n, a, b)?;
    }

    #[test]
    fn inclusion_proofs(n in 1..=MAX, picks in any::<[Index; 4]>(), bit in any::<u8>()) {
        inclusion(n, picks, bit)?;
    }

    #[test]
    fn consistency_proofs(n in 1..=MAX, picks in any::<[Index; 4]>(), bit in any::<u8>()) {
        consistency(n, picks, bit)?;
    }
}

fn roots_and_frontier(n: u64) -> Result<(), TestCaseError> {
    let (data, tree) = tree(n);
    let mut frontier = Frontier::new();
    prop_assert_eq!(frontier.root(), mth(&[]));
    for (i, leaf) in data.iter().enumerate() {
        let completed = frontier.push(leaf_hash(leaf));
        prop_assert_eq!(completed[0], (0, i as u64, leaf_hash(leaf)));
        for (level, index, hash) in completed {
            let lo = (index << level) as usize;
            let hi = ((index + 1) << level) as usize;
            prop_assert_eq!(hash, mth(&data[lo..hi]));
            prop_assert_eq!(tree.node(level, index).expect("infallible"), hash);
        }
        let size = i as u64 + 1;
        prop_assert_eq!(frontier.size(), size);
        prop_assert_eq!(frontier.root(), mth(&data[..=i]));
        prop_assert_eq!(root_of(&tree, size), frontier.root());
        prop_assert_eq!(&Frontier::load(&tree, size).expect("infallible"), &frontier);
    }
    Ok(())
}

fn unaligned_subtree_roots(n: u64, a: Index, b: Index) -> Result<(), TestCaseError> {
    let (data, tree) = tree(n);
    let (x, y) = (a.index(n as usize + 1), b.index(n as usize + 1));
    let (lo, hi) = (x.min(y), x.max(y));
    prop_assert_eq!(
        subtree_root(&tree, lo as u64, hi as u64).expect("infallible"),
        mth(&data[lo..hi])
    );
    Ok(())
}

fn inclusion(n: u64, picks: [Index; 4], bit: u8) -> Result<(), TestCaseError> {
    let [size_pick, index_pick, other_pick, flip_pick] = picks;
    let (data, tree) = tree(n);
    let size = size_pick.index(n as usize) as u64 + 1;
    let index = index_pick.index(size as usize) as u64;
    let proof = inclusion_proof(&tree, index, size).expect("infallible");
    prop_assert_eq!(&proof, &path(index as usize, &data[..size as usize]));
    let leaf = leaf_hash(&data[index as usize]);
    let root = root_of(&tree, size);
    prop_assert_eq!(verify_inclusion(index, size, &leaf, &proof, &root), Ok(()));

    if !proof.is_empty() {
        let flipped = flip(&proof, flip_pick, bit);
        prop_assert!(verify_inclusion(index, size, &leaf, &flipped, &root).is_err());
        let short = &proof[..proof.len() - 1];
        prop_assert!(
            matches!(
                verify_inclusion(index, size, &leaf, short, &root),
                Err(ProofError::WrongLength { .. })
            ),
            "expected WrongLength"
        );
    }
    let mut long = proof.clone();
    long.push(leaf);
    prop_assert!(
        matches!(
            verify_inclusion(index, size, &leaf, &long, &root),
            Err(ProofError::WrongLength { .. })
        ),
        "expected WrongLength"
    );
    let other_leaf = leaf_hash(b"not in the tree");
    prop_assert!(
        matches!(
            verify_inclusion(index, size, &other_leaf, &proof, &root),
            Err(ProofError::RootMismatch { .. })
        ),
        "expected RootMismatch"
    );
    prop_assert_eq!(
        verify_inclusion(size, size, &leaf, &proof, &root),
        Err(ProofError::IndexOutOfRange { index: size, size })
    );

    // Another index of the same tree, with its true leaf: the proof is not its proof.
    let other = other_pick.index(size as usize) as u64;
    if other != index {
        let other_leaf = leaf_hash(&data[other as usize]);
        prop_assert!(verify_inclusion(other, size, &other_leaf, &proof, &root).is_err());
        prop_assert!(verify_inclusion(other, size, &leaf, &proof, &root).is_err());
    }
    // Another size, with that size's true root.
    let other_size = other_pick.index(n as usize) as u64 + 1;
    if other_size != size && index < other_size {
        let other_root = root_of(&tree, other_size);
        prop_assert!(verify_inclusion(index, other_size, &leaf, &proof, &other_root).is_err());
    }
    Ok(())
}

fn consistency(n: u64, picks: [Index; 4], bit: u8) -> Result<(), TestCaseError> {
    let [new_pick, old_pick, other_pick, flip_pick] = picks;
    let (data, tree) = tree(n);
    let new = new_pick.index(n as usize) as u64 + 1;
    let old = old_pick.index(new as usize) as u64 + 1;
    let proof = consistency_proof(&tree, old, new).expect("infallible");
    prop_assert_eq!(&proof, &subproof(old as usize, &data[..new as usize], true));
    let (old_root, new_root) = (root_of(&tree, old), root_of(&tree, new));
    prop_assert_eq!(
        verify_consistency(old, new, &old_root, &new_root, &proof),
        Ok(())
    );

    if !proof.is_empty() {
        let flipped = flip(&proof, flip_pick, bit);
        prop_assert!(verify_consistency(old, new, &old_root, &new_root, &flipped).is_err());
        let short = &proof[..proof.len() - 1];
        prop_assert!(
            matches!(
                verify_consistency(old, new, &old_root, &new_root, short),
                Err(ProofError::WrongLength { .. })
            ),
            "expected WrongLength"
        );
    }
    let mut long = proof.clone();
    long.push(old_root);
    prop_assert!(
        matches!(
            verify_consistency(old, new, &old_root, &new_root, &long),
            Err(ProofError::WrongLength { .. })
        ),
        "expected WrongLength"
    );
    let bogus = leaf_hash(b"bogus");
    prop_assert!(verify_consistency(old, new, &bogus, &new_root, &proof).is_err());
    prop_assert!(verify_consistency(old, new, &old_root, &bogus, &proof).is_err());
    prop_assert_eq!(
        verify_consistency(0, new, &old_root, &new_root, &proof),
        Err(ProofError::InvalidSizes { old: 0, new })
    );

    // Other sizes, with their true roots.
    let other_old = other_pick.index(new as usize) as u64 + 1;
    if other_old != old {
        let other_root = root_of(&tree, other_old);
        prop_assert!(verify_consistency(other_old, new, &other_root, &new_root, &proof).is_err());
    }
    let other_new = other_pick.index(n as usize) as u64 + 1;
    if other_new != new && other_new >= old {
        let other_root = root_of(&tree, other_new);
        prop_assert!(verify_consistency(old, other_new, &old_root, &other_root, &proof).is_err());
    }
    Ok(())
}

#[test]
fn equal_sizes_need_equal_roots_and_no_proof() {
    let (_, tree) = tree(5);
    let (r4, r5) = (root_of(&tree, 4), root_of(&tree, 5));
    assert_eq!(verify_consistency(5, 5, &r5, &r5, &[]), Ok(()));
    assert!(matches!(
        verify_consistency(5, 5, &r4, &r5, &[]),
        Err(ProofError::EqualSizesDifferentRoots { size: 5, .. })
    ));
    assert_eq!(
        verify_consistency(5, 5, &r5, &r5, &[r4]),
        Err(ProofError::WrongLength {
            expected: 0,
            got: 1
        })
    );
    assert_eq!(
        verify_consistency(6, 5, &r5, &r5, &[]),
        Err(ProofError::InvalidSizes { old: 6, new: 5 })
    );
}

#[test]
fn root_mismatch_names_both_roots() {
    let (data, tree) = tree(3);
    let proof = inclusion_proof(&tree, 1, 3).expect("infallible");
    let wrong = root_of(&tree, 2);
    let err = verify_inclusion(1, 3, &leaf_hash(&data[1]), &proof, &wrong).expect_err("wrong root");
    assert_eq!(
        err,
        ProofError::RootMismatch {
            expected: hex::encode(wrong),
            computed: hex::encode(root_of(&tree, 3))
        }
    );
    assert!(err.to_string().contains(&hex::encode(wrong)));
}
