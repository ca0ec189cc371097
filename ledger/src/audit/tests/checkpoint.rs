//! Checkpoint bodies: the format, strict parsing, and signing round trips.

use proptest::prelude::*;

use crate::audit::{leaf_hash, Checkpoint, NoteError, SignerKey};

const ROOT_B64: &str = "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=";

fn checkpoint() -> Checkpoint {
    Checkpoint {
        origin: "example.com/waybill".into(),
        size: 20852163,
        root: leaf_hash(b"root"),
        extensions: vec!["extension one".into()],
    }
}

#[test]
fn spec_example_parses() {
    let body = format!("example.com/behind-the-sofa\n20852163\n{ROOT_B64}\n");
    let parsed = Checkpoint::parse(&body).expect("spec example");
    assert_eq!(parsed.origin, "example.com/behind-the-sofa");
    assert_eq!(parsed.size, 20852163);
    assert_eq!(parsed.extensions, Vec::<String>::new());
    assert_eq!(parsed.body(), body);
}

#[test]
fn body_format() {
    let cp = Checkpoint {
        root: [0; 32],
        size: 0,
        ..checkpoint()
    };
    assert_eq!(
        cp.body(),
        "example.com/waybill\n0\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\nextension one\n"
    );
}

#[test]
fn sign_then_open() {
    let key = SignerKey::generate("example.com/waybill").expect("key");
    let cp = checkpoint();
    cp.validate().expect("valid");
    let note = key.sign(&cp.body()).expect("signed");
    assert_eq!(Checkpoint::open(&note, &key.verifier()).expect("opens"), cp);

    let other = SignerKey::generate("example.com/other").expect("key");
    let err = Checkpoint::open(&note, &other.verifier()).expect_err("wrong key");
    assert!(matches!(err, NoteError::NoSignatureByKey { .. }), "{err:?}");
    let forged = note.replace("20852163", "20852164");
    let err = Checkpoint::open(&forged, &key.verifier()).expect_err("altered size");
    assert!(matches!(err, NoteError::InvalidSignature { .. }), "{err:?}");
    // A signed note that is not a checkpoint.
    let note = key.sign("hello\n").expect("signed");
    let err = Checkpoint::open(&note, &key.verifier()).expect_err("not a checkpoint");
    assert_eq!(
        err.to_string(),
        "checkpoint line 2: missing: expected the tree size"
    );
}

#[test]
fn malformed_bodies_are_rejected_with_line_and_reason() {
    let cases = [
        (
            format!("o\n01\n{ROOT_B64}\n"),
            "checkpoint line 2: tree size \"01\" has a leading zero",
        ),
        (
            format!("o\n00\n{ROOT_B64}\n"),
            "checkpoint line 2: tree size \"00\" has a leading zero",
        ),
        (
            format!("o\n+1\n{ROOT_B64}\n"),
            "checkpoint line 2: tree size \"+1\" is not a decimal number",
        ),
        (
            format!("o\n-1\n{ROOT_B64}\n"),
            "checkpoint line 2: tree size \"-1\" is not a decimal number",
        ),
        (
            format!("o\n 1\n{ROOT_B64}\n"),
            "checkpoint line 2: tree size \" 1\" is not a decimal number",
        ),
        (
            format!("o\n\n{ROOT_B64}\n"),
            "checkpoint line 2: the tree size is empty",
        ),
        (
            format!("o\n18446744073709551616\n{ROOT_B64}\n"),
            "checkpoint line 2: tree size \"18446744073709551616\" does not fit in 64 bits",
        ),
        (
            format!("\n1\n{ROOT_B64}\n"),
            "checkpoint line 1: the origin is empty",
        ),
        (
            "o\n1\n".to_string(),
            "checkpoint line 3: missing: expected the root hash",
        ),
        (
            "o\n1\nAAAA\n".to_string(),
            "checkpoint line 3: root hash has 3 bytes, not 32",
        ),
        (
            "o\n1\n!!!!\n".to_string(),
            "checkpoint line 3: root hash \"!!!!\" is not valid base64",
        ),
        (
            format!("o\n1\n{ROOT_B64}"),
            "checkpoint line 3: does not end with a newline",
        ),
        (
            format!("o\n1\n{ROOT_B64}\n\n"),
            "checkpoint line 4: the extension line is empty",
        ),
        (
            format!("o\n1\n{ROOT_B64}\next\n\n"),
            "checkpoint line 5: the extension line is empty",
        ),
        (
            format!("o\n1\n{ROOT_B64}\te\n"),
            "checkpoint line 3: contains control character '\\t'",
        ),
        (
            String::new(),
            "checkpoint line 1: does not end with a newline",
        ),
    ];
    for (body, message) in cases {
        let err = Checkpoint::parse(&body).expect_err(&body);
        assert_eq!(err.to_string(), message, "{body:?}");
    }
    let max =
        Checkpoint::parse(&format!("o\n18446744073709551615\n{ROOT_B64}\n")).expect("u64::MAX");
    assert_eq!(max.size, u64::MAX);
}

#[test]
fn validate_rejects_what_would_not_round_trip() {
    for cp in [
        Checkpoint {
            origin: String::new(),
            ..checkpoint()
        },
        Checkpoint {
            origin: "a\nb".into(),
            ..checkpoint()
        },
        Checkpoint {
            extensions: vec![String::new()],
            ..checkpoint()
        },
        Checkpoint {
            extensions: vec!["a\tb".into()],
            ..checkpoint()
        },
    ] {
        assert!(
            matches!(cp.validate(), Err(NoteError::MalformedCheckpoint { .. })),
            "{cp:?}"
        );
    }
}

proptest! {
    #[test]
    fn valid_checkpoints_round_trip(
        origin in "[a-z0-9./-]{1,30}",
        size in any::<u64>(),
        root in any::<[u8; 32]>(),
        extensions in prop::collection::vec("[ -~]{1,20}", 0..3),
    ) {
        let cp = Checkpoint { origin, size, root, extensions };
        prop_assert!(cp.validate().is_ok());
        prop_assert_eq!(Checkpoint::parse(&cp.body()).expect("round trip"), cp);
    }
}
