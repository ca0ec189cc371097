//! Multi-leaf proofs: round trips, the definition, and tampering.
//!
//! What tampering gives (checked below): changing a leaf hash or a proof hash,
//! or swapping the hashes of two leaves, leads to a different root; removing
//! or adding a proof hash fails with `ProofTooShort` / `ProofTooLong` (the
//! proof length depends on the size and the selection only); repeating a leaf
//! fails with `NotIncreasing`, swapping two leaves with `NotIncreasing` or (when
//! the walk runs out of proof hashes first) `ProofTooShort`, an index past the
//! end with `OutOfRange`; dropping or adding a selected leaf changes the walk, so it
//! either fails or leads to a different root.

use std::collections::BTreeSet;
use std::convert::Infallible;

use proptest::prelude::*;
use proptest::sample::Index;

use super::reference::{leaves, multi};
use crate::audit::{
    inclusion_proof, leaf_hash, multi_proof, multi_root, root, Hash, MemoryTree, MultiProofError,
    Nodes,
};

fn prove(
    tree: &MemoryTree,
    size: u64,
    indices: &[u64],
) -> Result<Vec<Hash>, MultiProofError<Infallible>> {
    let mut proof = Vec::new();
    multi_proof(tree, size, indices.iter().copied(), |hash| proof.push(hash))?;
    Ok(proof)
}

fn check(
    size: u64,
    leaves: &[(u64, Hash)],
    proof: &[Hash],
) -> Result<Hash, MultiProofError<Infallible>> {
    multi_root(size, leaves.iter().copied(), proof.iter().copied())
}

fn case() -> impl Strategy<Value = (u64, Vec<u64>)> {
    (1..=300u64).prop_flat_map(|size| {
        let max = (size as usize).min(40);
        (Just(size), prop::collection::btree_set(0..size, 1..=max))
            .prop_map(|(size, set)| (size, set.into_iter().collect()))
    })
}

proptest! {
    #[test]
    fn round_trip_and_tampering(
        (size, selected) in case(),
        picks in any::<[Index; 2]>(),
        bit in 0..8u8,
    ) {
        round_trip(size, &selected, picks, bit)?;
    }

    #[test]
    fn single_leaf_proof_is_the_inclusion_proof(size in 1..=300u64, pick in any::<Index>()) {
        single_leaf(size, pick)?;
    }
}

fn round_trip(
    size: u64,
    selected: &[u64],
    picks: [Index; 2],
    bit: u8,
) -> Result<(), TestCaseError> {
    let [pick, pick2] = picks;
    let data = leaves(size as usize);
    let tree = MemoryTree::from_leaves(&data);
    let true_root = root(&tree, size).expect("infallible");
    let proof = prove(&tree, size, selected).expect("valid selection");
    let mut expected = Vec::new();
    multi(&data, 0, selected, &mut expected);
    prop_assert_eq!(&proof, &expected, "proof follows the definition");
    let given: Vec<(u64, Hash)> = selected
        .iter()
        .map(|&i| (i, leaf_hash(&data[i as usize])))
        .collect();
    prop_assert_eq!(check(size, &given, &proof), Ok(true_root));

    // A different leaf hash, or a different proof hash: a different root.
    let mut altered = given.clone();
    altered[pick.index(given.len())].1[0] ^= 1 << bit;
    let altered_root = check(size, &altered, &proof).expect("same shape");
    prop_assert_ne!(altered_root, true_root);
    if !proof.is_empty() {
        let mut altered = proof.clone();
        altered[pick.index(proof.len())][31] ^= 1 << bit;
        let altered_root = check(size, &given, &altered).expect("same shape");
        prop_assert_ne!(altered_root, true_root);
        // One hash fewer.
        let mut short = proof.clone();
        short.remove(pick2.index(proof.len()));
        prop_assert_eq!(
            check(size, &given, &short),
            Err(MultiProofError::ProofTooShort)
        );
    }
    // One hash more.
    let mut long = proof.clone();
    long.insert(pick2.index(proof.len() + 1), true_root);
    prop_assert_eq!(
        check(size, &given, &long),
        Err(MultiProofError::ProofTooLong { extra: 1 })
    );

    if given.len() >= 2 {
        // Swapped order: not increasing, unless the walk runs out of proof hashes
        // before it reaches the second leaf. A repeated leaf: not increasing.
        let i = pick.index(given.len() - 1);
        let mut swapped = given.clone();
        swapped.swap(i, i + 1);
        prop_assert!(
            matches!(
                check(size, &swapped, &proof),
                Err(MultiProofError::NotIncreasing { .. } | MultiProofError::ProofTooShort)
            ),
            "expected NotIncreasing or ProofTooShort"
        );
        let mut repeated = given.clone();
        repeated.insert(i, given[i]);
        prop_assert!(
            matches!(
                check(size, &repeated, &proof),
                Err(MultiProofError::NotIncreasing { .. })
            ),
            "expected NotIncreasing"
        );
        // Swapped hashes, indices in order: a different root.
        let mut exchanged = given.clone();
        let (a, b) = (exchanged[i].1, exchanged[i + 1].1);
        exchanged[i].1 = b;
        exchanged[i + 1].1 = a;
        prop_assert_ne!(check(size, &exchanged, &proof), Ok(true_root));
        // A leaf dropped: fails or leads elsewhere.
        let mut dropped = given.clone();
        dropped.remove(pick2.index(given.len()));
        prop_assert_ne!(check(size, &dropped, &proof), Ok(true_root));
    }
    // A true leaf that the proof does not cover, added: fails or leads elsewhere.
    let set: BTreeSet<u64> = selected.iter().copied().collect();
    let missing: Vec<u64> = (0..size).filter(|i| !set.contains(i)).collect();
    if !missing.is_empty() {
        let extra = missing[pick2.index(missing.len())];
        let mut added = given.clone();
        added.push((extra, leaf_hash(&data[extra as usize])));
        added.sort_by_key(|&(i, _)| i);
        prop_assert_ne!(check(size, &added, &proof), Ok(true_root));
    }
    // An index past the end.
    let mut past = given.clone();
    past.push((size, true_root));
    prop_assert_eq!(
        check(size, &past, &proof),
        Err(MultiProofError::OutOfRange { index: size, size })
    );
    Ok(())
}

fn single_leaf(size: u64, pick: Index) -> Result<(), TestCaseError> {
    let tree = MemoryTree::from_leaves(&leaves(size as usize));
    let index = pick.index(size as usize) as u64;
    let mut multi = prove(&tree, size, &[index]).expect("valid selection");
    let mut single = inclusion_proof(&tree, index, size).expect("infallible");
    multi.sort();
    single.sort();
    prop_assert_eq!(multi, single);
    Ok(())
}

#[test]
fn every_leaf_needs_no_proof() {
    let data = leaves(13);
    let tree = MemoryTree::from_leaves(&data);
    let all: Vec<u64> = (0..13).collect();
    assert_eq!(prove(&tree, 13, &all), Ok(Vec::new()));
    let given: Vec<(u64, Hash)> = all
        .iter()
        .map(|&i| (i, leaf_hash(&data[i as usize])))
        .collect();
    assert_eq!(check(13, &given, &[]), Ok(tree.root()));
}

#[test]
fn selections_are_checked() {
    let tree = MemoryTree::from_leaves(&leaves(8));
    assert_eq!(prove(&tree, 8, &[]), Err(MultiProofError::NoLeaves));
    assert_eq!(prove(&tree, 0, &[]), Err(MultiProofError::NoLeaves));
    assert_eq!(
        prove(&tree, 0, &[0]),
        Err(MultiProofError::OutOfRange { index: 0, size: 0 })
    );
    assert_eq!(
        prove(&tree, 8, &[8]),
        Err(MultiProofError::OutOfRange { index: 8, size: 8 })
    );
    assert_eq!(
        prove(&tree, 8, &[1, 5, 3]),
        Err(MultiProofError::NotIncreasing {
            previous: 5,
            index: 3
        })
    );
    assert_eq!(
        prove(&tree, 8, &[2, 2]),
        Err(MultiProofError::NotIncreasing {
            previous: 2,
            index: 2
        })
    );
    assert_eq!(check(8, &[], &[]), Err(MultiProofError::NoLeaves));
    assert_eq!(
        check(0, &[(0, [0; 32])], &[]),
        Err(MultiProofError::OutOfRange { index: 0, size: 0 })
    );
}

#[test]
fn node_errors_are_passed_on() {
    struct Broken;
    impl Nodes for Broken {
        type Error = String;
        fn node(&self, level: u8, index: u64) -> Result<Hash, String> {
            Err(format!("node ({level}, {index}) is lost"))
        }
    }
    let result = multi_proof(&Broken, 4, [0].into_iter(), |_| {});
    assert_eq!(
        result,
        Err(MultiProofError::Nodes("node (0, 1) is lost".to_string()))
    );
    assert_eq!(
        result.expect_err("broken").to_string(),
        "reading a tree node failed: node (0, 1) is lost"
    );
}
