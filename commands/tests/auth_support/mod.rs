//! What the authentication and role tests share: an auth config in a temp
//! dir, test keys and tokens, and the check that a refusal leaks nothing.
//! (Each of the two test crates uses part of it.)
#![allow(dead_code, unused_imports)]

pub use std::path::{Path, PathBuf};

pub use base64::engine::general_purpose::URL_SAFE_NO_PAD;
pub use base64::Engine;
pub use jsonwebtoken::{encode, get_current_timestamp, Algorithm, EncodingKey, Header};
pub use serde_json::{json, Value};
pub use tempfile::TempDir;
pub use tonic::metadata::MetadataMap;
pub use waybill_commands::auth::{
    hash_token, AuthConfig, AuthError, AuthMethod, Authenticator, Authorizer, BindingConfig,
    Principal, Role,
};

pub const ISSUER: &str = "https://sso.example.test";
pub const AUDIENCE: &str = "waybill";
pub const HS_SECRET: &str = "an-hs256-test-secret-of-more-than-32-bytes";
pub const CI_TOKEN: &str = "wbt_ci_0f4c2a9e8d7b6a5f4e3d2c1b0a998877";

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/auth")
        .join(name)
}

pub fn read_fixture(name: &str) -> Vec<u8> {
    std::fs::read(fixture(name)).expect("fixture exists")
}

/// A temporary directory holding an auth config and the files it names.
pub struct Setup {
    pub dir: TempDir,
}

impl Setup {
    pub fn new() -> Setup {
        Setup {
            dir: TempDir::new().expect("temp dir"),
        }
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).expect("write temp file");
        path
    }

    pub fn tokens_file(&self) -> PathBuf {
        let text = format!(
            "[[token]]\nname = \"ci-bot\"\nsha256 = \"{}\"\ngroups = [\"ci\"]\n\n\
             [[token]]\nname = \"ops-bot\"\nsha256 = \"{}\"\n",
            hash_token(CI_TOKEN),
            hash_token("wbt_ops_other"),
        );
        self.write("tokens.toml", &text)
    }

    /// Writes `auth.toml` and builds an authenticator from it.
    pub fn authenticator(&self, config: &str) -> Result<Authenticator, AuthError> {
        let path = self.write("auth.toml", config);
        Authenticator::new(AuthConfig::load(path)?)
    }
}

pub fn jwt_config(keys: &str) -> String {
    format!("[jwt]\nissuer = \"{ISSUER}\"\naudience = \"{AUDIENCE}\"\n{keys}\n")
}

pub fn pem_keys() -> String {
    format!(
        "public_keys_pem_files = [{:?}, {:?}]",
        fixture("rsa-public.pem"),
        fixture("ec-public.pem")
    )
}

pub fn bearer(credential: &str) -> MetadataMap {
    let mut metadata = MetadataMap::new();
    metadata.insert(
        "authorization",
        format!("Bearer {credential}")
            .parse()
            .expect("ascii metadata"),
    );
    metadata
}

pub fn claims(sub: &str) -> Value {
    let now = get_current_timestamp();
    json!({ "sub": sub, "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 600 })
}

pub fn sign(alg: Algorithm, kid: Option<&str>, claims: &Value, key: &EncodingKey) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_string);
    encode(&header, claims, key).expect("sign test token")
}

pub fn hs_key() -> EncodingKey {
    EncodingKey::from_secret(HS_SECRET.as_bytes()).expect("hmac key")
}

pub fn rsa_key() -> EncodingKey {
    EncodingKey::from_rsa_pem(&read_fixture("rsa-private.pem")).expect("rsa key")
}

pub fn rsa_other_key() -> EncodingKey {
    EncodingKey::from_rsa_pem(&read_fixture("rsa-other-private.pem")).expect("rsa key")
}

pub fn ec_key() -> EncodingKey {
    EncodingKey::from_ec_pem(&read_fixture("ec-private.pem")).expect("ec key")
}

/// Asserts an UNAUTHENTICATED refusal whose message contains `reason` and
/// does not leak `credential` (nor, for JWTs, its signature).
pub fn assert_refused(auth: &Authenticator, credential: &str, reason: &str) -> AuthError {
    let err = auth.authenticate(&bearer(credential)).expect_err("refused");
    let AuthError::Unauthenticated(message) = &err else {
        panic!("expected Unauthenticated, got {err:?}");
    };
    assert!(
        message.contains(reason),
        "{message:?} should contain {reason:?}"
    );
    let status = tonic::Status::from(err.clone());
    assert_eq!(status.code(), tonic::Code::Unauthenticated);
    let signature = credential.rsplit('.').next().unwrap_or(credential);
    for shown in [
        err.to_string(),
        format!("{err:?}"),
        status.message().to_string(),
    ] {
        assert!(!shown.contains(credential), "credential leaked: {shown}");
        assert!(
            signature.is_empty() || !shown.contains(signature),
            "signature leaked: {shown}"
        );
    }
    err
}
