//! Signed notes and keys against the golden vectors of Go's
//! `golang.org/x/mod/sumdb/note` tests (`note_test.go`) and the C2SP
//! signed-note spec example.

use crate::audit::{NoteError, SignedNote, SignerKey, VerifierKey};

const PETER_SKEY: &str =
    "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
const PETER_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
const ENOCH_VKEY: &str = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop";
const TEXT: &str = "If you think cryptography is the answer to your problem,\n\
                    then you don't know what your problem is.\n";
const PETER_SIG: &str = "\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";
const ENOCH_SIG: &str = "\u{2014} EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n";

fn vkey(text: &str) -> VerifierKey {
    VerifierKey::parse(text).expect("valid verifier key")
}

#[test]
fn keys_parse_and_encode() {
    let peter = vkey(PETER_VKEY);
    assert_eq!(peter.name(), "PeterNeumann");
    assert_eq!(peter.key_id(), [0xc7, 0x4f, 0x20, 0xa3]);
    assert_eq!(peter.encode(), PETER_VKEY);
    assert_eq!(peter.to_string(), PETER_VKEY);
    assert_eq!(format!("{peter:?}"), format!("VerifierKey({PETER_VKEY})"));

    let signer = SignerKey::parse(&format!("  {PETER_SKEY}\n")).expect("valid signer key");
    assert_eq!(signer.name(), "PeterNeumann");
    assert_eq!(signer.verifier(), peter);
    assert_eq!(signer.encode(), PETER_SKEY);
    let debug = format!("{signer:?}");
    assert!(
        debug.contains("PeterNeumann") && debug.contains("c74f20a3"),
        "{debug}"
    );
    assert!(
        !debug.contains("AYEKFALV") && !debug.contains("PRIVATE"),
        "{debug}"
    );
}

#[test]
fn signing_reproduces_go_signature() {
    let signer = SignerKey::parse(PETER_SKEY).expect("valid signer key");
    assert_eq!(
        signer.sign(TEXT).expect("valid text"),
        format!("{TEXT}\n{PETER_SIG}")
    );
}

#[test]
fn go_notes_verify() {
    let note = SignedNote::parse(&format!("{TEXT}\n{PETER_SIG}{ENOCH_SIG}")).expect("well formed");
    assert_eq!(note.text, TEXT);
    assert_eq!(note.signatures.len(), 2);
    assert_eq!(note.signatures[1].name, "EnochRoot");
    assert_eq!(note.signatures[1].key_id, [0xaf, 0x0c, 0xfe, 0x78]);
    assert_eq!(note.signatures[1].signature.len(), 64);
    note.verify(&vkey(PETER_VKEY)).expect("Peter signed");
    note.verify(&vkey(ENOCH_VKEY)).expect("Enoch signed");
}

#[test]
fn c2sp_spec_example_verifies() {
    let key = vkey("example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k");
    let note = "This is an example message.\n\n\u{2014} example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n";
    SignedNote::parse(note)
        .expect("well formed")
        .verify(&key)
        .expect("spec example verifies");
}

#[test]
fn tampered_text_fails() {
    let note = format!("{TEXT}\n{PETER_SIG}").replace("cryptography", "cryptographY");
    let err = SignedNote::parse(&note)
        .expect("well formed")
        .verify(&vkey(PETER_VKEY));
    assert!(
        matches!(&err, Err(NoteError::InvalidSignature { key }) if key == "PeterNeumann+c74f20a3"),
        "{err:?}"
    );
}

#[test]
fn other_signers_are_listed() {
    let note = SignedNote::parse(&format!("{TEXT}\n{ENOCH_SIG}")).expect("well formed");
    let err = note
        .verify(&vkey(PETER_VKEY))
        .expect_err("not signed by Peter");
    let message = err.to_string();
    assert!(
        message.contains("no signature by PeterNeumann+c74f20a3"),
        "{message}"
    );
    assert!(message.contains("EnochRoot+af0cfe78"), "{message}");
    assert!(
        matches!(err, NoteError::NoSignatureByKey { present, .. } if present == ["EnochRoot+af0cfe78"])
    );

    // Same name, another key id: not this key's signature, so it is ignored.
    let other = SignerKey::generate("PeterNeumann").expect("key");
    let note = SignedNote::parse(&other.sign(TEXT).expect("signed")).expect("well formed");
    assert!(matches!(
        note.verify(&vkey(PETER_VKEY)),
        Err(NoteError::NoSignatureByKey { .. })
    ));
}

#[test]
fn a_bad_signature_by_the_key_rejects_the_note() {
    // Go's "invalid signature" case: four characters inserted into Peter's signature.
    let bad = format!("{}ABCD{}", &PETER_SIG[..60], &PETER_SIG[60..]);
    let note = SignedNote::parse(&format!("{TEXT}\n{bad}")).expect("well formed");
    assert!(matches!(
        note.verify(&vkey(PETER_VKEY)),
        Err(NoteError::InvalidSignature { .. })
    ));
    // A good and a bad signature by the same key: rejected either way round.
    for sigs in [format!("{PETER_SIG}{bad}"), format!("{bad}{PETER_SIG}")] {
        let note = SignedNote::parse(&format!("{TEXT}\n{sigs}")).expect("well formed");
        assert!(matches!(
            note.verify(&vkey(PETER_VKEY)),
            Err(NoteError::InvalidSignature { .. })
        ));
    }
}

#[test]
fn malformed_notes_are_rejected() {
    // Go's bad messages, plus a few more.
    let bad = [
        TEXT.to_string(),
        format!("{TEXT}\n"),
        format!("{TEXT}\n{}", &PETER_SIG[..PETER_SIG.len() - 1]),
        format!("\u{1}{TEXT}\n{PETER_SIG}"),
        format!("{TEXT}\n\u{2014} Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM="),
        format!("{TEXT}\n{PETER_SIG}Unexpected line.\n"),
        format!("{TEXT}\n{}", PETER_SIG.repeat(101)),
        format!("{TEXT}\n\u{2014} PeterNeumann x08go\n"),
        format!("{TEXT}\n\u{2014} PeterNeumann AAAAAA==\n"),
        format!("{TEXT}\n- PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"),
    ];
    for note in bad {
        let err = SignedNote::parse(&note).expect_err(&note);
        assert!(
            matches!(err, NoteError::MalformedNote(_)),
            "{note:?}: {err:?}"
        );
    }
    let err =
        SignedNote::parse(&format!("{TEXT}\n{PETER_SIG}Unexpected line.\n")).expect_err("bad");
    assert_eq!(
        err.to_string(),
        "malformed signed note: line 5: a signature line starts with an em dash (U+2014) and a space"
    );
    assert!(SignedNote::parse(&format!("{TEXT}\n{}", PETER_SIG.repeat(100))).is_ok());
}

#[test]
fn mangled_keys_are_rejected() {
    // As Go's TestNewVerifier / TestNewSigner: every proper substring and every
    // single-byte change fails.
    for key in [PETER_VKEY, PETER_SKEY] {
        let parse = |text: &str| {
            if key == PETER_VKEY {
                VerifierKey::parse(text).is_ok()
            } else {
                SignerKey::parse(text).is_ok()
            }
        };
        assert!(parse(key));
        let bytes = key.as_bytes();
        for i in 0..=bytes.len() {
            for j in i + 1..=bytes.len() {
                if (i, j) != (0, bytes.len()) {
                    assert!(!parse(&key[i..j]), "{:?} parsed", &key[i..j]);
                }
            }
        }
        for i in 0..bytes.len() {
            let mut changed = bytes.to_vec();
            changed[i] += 1;
            let changed = String::from_utf8(changed).expect("ASCII");
            assert!(!parse(&changed), "{changed:?} parsed");
        }
    }
    let err =
        VerifierKey::parse("PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW");
    assert!(
        matches!(
            err,
            Err(NoteError::UnknownAlgorithm {
                algorithm: 0x65,
                ..
            })
        ),
        "{err:?}"
    );
    let err = VerifierKey::parse(
        "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==",
    );
    assert!(
        matches!(err, Err(NoteError::MalformedKey { .. })),
        "{err:?}"
    );
    let err =
        VerifierKey::parse("PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW");
    assert!(
        matches!(err, Err(NoteError::KeyIdMismatch { .. })),
        "{err:?}"
    );
}

#[test]
fn generated_keys_sign_and_verify() {
    let key = SignerKey::generate("example.com/waybill").expect("key");
    let reparsed = SignerKey::parse(&key.encode()).expect("round trip");
    assert_eq!(reparsed.verifier(), key.verifier());
    assert_eq!(
        VerifierKey::parse(&key.verifier().encode()).expect("round trip"),
        key.verifier()
    );
    // Blank lines inside the text are allowed; the last blank line separates.
    let text = "first\n\nthird\n\n";
    let note = SignedNote::parse(&key.sign(text).expect("signed")).expect("well formed");
    assert_eq!(note.text, text);
    note.verify(&key.verifier()).expect("verifies");
    assert!(note.verify(&vkey(PETER_VKEY)).is_err());
}

#[test]
fn bad_names_and_texts_are_rejected() {
    for name in ["", "a+b", "a b", "a\u{a0}b", "a\u{7}b"] {
        let err = SignerKey::generate(name).expect_err(name);
        assert!(
            matches!(err, NoteError::InvalidName { .. }),
            "{name:?}: {err:?}"
        );
    }
    let key = SignerKey::parse(PETER_SKEY).expect("valid");
    for text in ["", "abc", "tab\there\n", "cr\r\n"] {
        let err = key.sign(text).expect_err(text);
        assert!(
            matches!(err, NoteError::InvalidText(_)),
            "{text:?}: {err:?}"
        );
    }
}
