//! Identity and roles: bearer tokens, JWTs (HS256, RS256, ES256, JWKS), role
//! bindings and insecure-dev mode, through the public API.

use std::path::{Path, PathBuf};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{encode, get_current_timestamp, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use tempfile::TempDir;
use tonic::metadata::MetadataMap;
use waybill_commands::auth::{
    hash_token, AuthConfig, AuthError, AuthMethod, Authenticator, Authorizer, BindingConfig,
    Principal, Role,
};

const ISSUER: &str = "https://sso.example.test";
const AUDIENCE: &str = "waybill";
const HS_SECRET: &str = "an-hs256-test-secret-of-more-than-32-bytes";
const CI_TOKEN: &str = "wbt_ci_0f4c2a9e8d7b6a5f4e3d2c1b0a998877";

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/auth")
        .join(name)
}

fn read_fixture(name: &str) -> Vec<u8> {
    std::fs::read(fixture(name)).expect("fixture exists")
}

/// A temporary directory holding an auth config and the files it names.
struct Setup {
    dir: TempDir,
}

impl Setup {
    fn new() -> Setup {
        Setup {
            dir: TempDir::new().expect("temp dir"),
        }
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).expect("write temp file");
        path
    }

    fn tokens_file(&self) -> PathBuf {
        let text = format!(
            "[[token]]\nname = \"ci-bot\"\nsha256 = \"{}\"\ngroups = [\"ci\"]\n\n\
             [[token]]\nname = \"ops-bot\"\nsha256 = \"{}\"\n",
            hash_token(CI_TOKEN),
            hash_token("wbt_ops_other"),
        );
        self.write("tokens.toml", &text)
    }

    /// Writes `auth.toml` and builds an authenticator from it.
    fn authenticator(&self, config: &str) -> Result<Authenticator, AuthError> {
        let path = self.write("auth.toml", config);
        Authenticator::new(AuthConfig::load(path)?)
    }
}

fn jwt_config(keys: &str) -> String {
    format!("[jwt]\nissuer = \"{ISSUER}\"\naudience = \"{AUDIENCE}\"\n{keys}\n")
}

fn pem_keys() -> String {
    format!(
        "public_keys_pem_files = [{:?}, {:?}]",
        fixture("rsa-public.pem"),
        fixture("ec-public.pem")
    )
}

fn bearer(credential: &str) -> MetadataMap {
    let mut metadata = MetadataMap::new();
    metadata.insert(
        "authorization",
        format!("Bearer {credential}")
            .parse()
            .expect("ascii metadata"),
    );
    metadata
}

fn claims(sub: &str) -> Value {
    let now = get_current_timestamp();
    json!({ "sub": sub, "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 600 })
}

fn sign(alg: Algorithm, kid: Option<&str>, claims: &Value, key: &EncodingKey) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_string);
    encode(&header, claims, key).expect("sign test token")
}

fn hs_key() -> EncodingKey {
    EncodingKey::from_secret(HS_SECRET.as_bytes()).expect("hmac key")
}

fn rsa_key() -> EncodingKey {
    EncodingKey::from_rsa_pem(&read_fixture("rsa-private.pem")).expect("rsa key")
}

fn rsa_other_key() -> EncodingKey {
    EncodingKey::from_rsa_pem(&read_fixture("rsa-other-private.pem")).expect("rsa key")
}

fn ec_key() -> EncodingKey {
    EncodingKey::from_ec_pem(&read_fixture("ec-private.pem")).expect("ec key")
}

/// Asserts an UNAUTHENTICATED refusal whose message contains `reason` and
/// does not leak `credential` (nor, for JWTs, its signature).
fn assert_refused(auth: &Authenticator, credential: &str, reason: &str) -> AuthError {
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

// ---------------------------------------------------------------- tokens

#[test]
fn a_known_token_authenticates_with_its_groups() {
    let setup = Setup::new();
    let tokens = setup.tokens_file();
    let auth = setup
        .authenticator(&format!("tokens_file = {tokens:?}\n"))
        .expect("valid config");
    let principal = auth.authenticate(&bearer(CI_TOKEN)).expect("known token");
    assert_eq!(
        principal,
        Principal::new("ci-bot", vec!["ci".into()], AuthMethod::Token)
    );
    let other = auth
        .authenticate(&bearer("wbt_ops_other"))
        .expect("known token");
    assert_eq!(other.name, "ops-bot");
    assert!(other.groups.is_empty());
}

#[test]
fn unknown_missing_and_malformed_credentials_are_unauthenticated() {
    let setup = Setup::new();
    let tokens = setup.tokens_file();
    let auth = setup
        .authenticator(&format!("tokens_file = {tokens:?}\n"))
        .expect("valid config");

    assert_refused(&auth, "wbt_not_a_known_token", "unknown bearer token");
    // A token differing from a known one in its last character.
    assert_refused(&auth, &format!("{CI_TOKEN}x"), "unknown bearer token");

    let err = auth
        .authenticate(&MetadataMap::new())
        .expect_err("no header");
    assert!(matches!(&err, AuthError::Unauthenticated(m) if m.contains("no credentials")));
    assert_eq!(
        tonic::Status::from(err).code(),
        tonic::Code::Unauthenticated
    );

    for value in [
        CI_TOKEN.to_string(),
        format!("Basic {CI_TOKEN}"),
        "Bearer".into(),
    ] {
        let mut metadata = MetadataMap::new();
        metadata.insert("authorization", value.parse().expect("ascii"));
        let err = auth.authenticate(&metadata).expect_err("malformed header");
        assert!(matches!(err, AuthError::Unauthenticated(_)), "{value}");
        assert!(!err.to_string().contains(CI_TOKEN), "{err}");
    }
}

#[test]
fn the_tokens_file_stores_only_hashes() {
    let setup = Setup::new();
    let tokens = setup.tokens_file();
    let stored = std::fs::read_to_string(&tokens).expect("tokens file");
    assert!(!stored.contains(CI_TOKEN));
    assert!(stored.contains(&hash_token(CI_TOKEN)));
    assert_eq!(hash_token(CI_TOKEN).len(), 64);

    // An entry holding the token in plain text is refused, without echoing it.
    let plain = setup.write(
        "plain.toml",
        &format!("[[token]]\nname = \"ci-bot\"\ntoken = \"{CI_TOKEN}\"\n"),
    );
    let err = setup
        .authenticator(&format!("tokens_file = {plain:?}\n"))
        .expect_err("plain token field");
    let message = err.to_string();
    assert!(
        message.contains("plain.toml") && message.contains("token"),
        "{message}"
    );
    assert!(!message.contains(CI_TOKEN), "{message}");

    let bad_hash = setup.write("bad.toml", "[[token]]\nname = \"x\"\nsha256 = \"abc\"\n");
    let err = setup
        .authenticator(&format!("tokens_file = {bad_hash:?}\n"))
        .expect_err("short hash");
    assert!(err.to_string().contains("64 hex digits"), "{err}");

    let missing = setup.dir.path().join("absent.toml");
    let err = setup
        .authenticator(&format!("tokens_file = {missing:?}\n"))
        .expect_err("missing file");
    assert!(err.to_string().contains("absent.toml"), "{err}");
}

// ---------------------------------------------------------------- JWTs

#[test]
fn hs256_jwt_authenticates_with_groups() {
    let setup = Setup::new();
    let secret = setup.write("hs.secret", &format!("{HS_SECRET}\n"));
    let auth = setup
        .authenticator(&jwt_config(&format!("hs256_secret_file = {secret:?}")))
        .expect("valid config");
    let mut claims = claims("alice");
    claims["groups"] = json!(["release-managers", "dev"]);
    let principal = auth
        .authenticate(&bearer(&sign(Algorithm::HS256, None, &claims, &hs_key())))
        .expect("valid HS256 token");
    assert_eq!(principal.name, "alice");
    assert_eq!(principal.groups, ["release-managers", "dev"]);
    assert_eq!(principal.method, AuthMethod::Jwt);
}

#[test]
fn rs256_and_es256_jwts_authenticate_with_pem_keys() {
    let setup = Setup::new();
    let auth = setup
        .authenticator(&jwt_config(&pem_keys()))
        .expect("valid config");
    let rs = sign(Algorithm::RS256, None, &claims("alice"), &rsa_key());
    assert_eq!(
        auth.authenticate(&bearer(&rs)).expect("RS256").name,
        "alice"
    );
    let es = sign(Algorithm::ES256, None, &claims("bob"), &ec_key());
    assert_eq!(auth.authenticate(&bearer(&es)).expect("ES256").name, "bob");
}

#[test]
fn invalid_jwts_are_refused() {
    let setup = Setup::new();
    let auth = setup
        .authenticator(&jwt_config(&format!(
            "{}\nhs256_secret = \"{HS_SECRET}\"\nleeway_seconds = 5",
            pem_keys()
        )))
        .expect("valid config");
    let now = get_current_timestamp();

    let mut expired = claims("alice");
    expired["exp"] = json!(now - 3600);
    assert_refused(
        &auth,
        &sign(Algorithm::RS256, None, &expired, &rsa_key()),
        "expired",
    );

    let mut early = claims("alice");
    early["nbf"] = json!(now + 3600);
    assert_refused(
        &auth,
        &sign(Algorithm::RS256, None, &early, &rsa_key()),
        "not valid yet",
    );

    let mut wrong_iss = claims("alice");
    wrong_iss["iss"] = json!("https://evil.example.test");
    assert_refused(
        &auth,
        &sign(Algorithm::RS256, None, &wrong_iss, &rsa_key()),
        "issuer",
    );

    let mut no_iss = claims("alice");
    no_iss.as_object_mut().expect("object").remove("iss");
    assert_refused(
        &auth,
        &sign(Algorithm::ES256, None, &no_iss, &ec_key()),
        "iss",
    );

    let mut wrong_aud = claims("alice");
    wrong_aud["aud"] = json!("someone-else");
    assert_refused(
        &auth,
        &sign(Algorithm::RS256, None, &wrong_aud, &rsa_key()),
        "audience",
    );

    let mut no_exp = claims("alice");
    no_exp.as_object_mut().expect("object").remove("exp");
    assert_refused(
        &auth,
        &sign(Algorithm::HS256, None, &no_exp, &hs_key()),
        "exp",
    );

    let wrong_key = sign(Algorithm::RS256, None, &claims("alice"), &rsa_other_key());
    assert_refused(&auth, &wrong_key, "signature");

    let wrong_secret =
        EncodingKey::from_secret(b"another-secret-that-is-long-enough-0123").expect("hmac key");
    assert_refused(
        &auth,
        &sign(Algorithm::HS256, None, &claims("alice"), &wrong_secret),
        "signature",
    );

    // Algorithm confusion: HS256 keyed with the RSA public key is not RS256.
    let confused = EncodingKey::from_secret(&read_fixture("rsa-public.pem")).expect("hmac key");
    assert_refused(
        &auth,
        &sign(Algorithm::HS256, None, &claims("alice"), &confused),
        "signature",
    );

    // A valid token whose signature was tampered with.
    let good = sign(Algorithm::RS256, None, &claims("alice"), &rsa_key());
    let (message, _) = good.rsplit_once('.').expect("three segments");
    let forged_claims = URL_SAFE_NO_PAD.encode(claims("mallory").to_string());
    let (header, _) = message.split_once('.').expect("header");
    let forged = format!(
        "{header}.{forged_claims}.{}",
        good.rsplit('.').next().expect("sig")
    );
    assert_refused(&auth, &forged, "signature");

    // Service names are reserved for in-process service principals.
    let svc = sign(
        Algorithm::RS256,
        None,
        &claims("svc:auto-promoter"),
        &rsa_key(),
    );
    assert_refused(&auth, &svc, "reserved");
}

#[test]
fn unsigned_and_disallowed_algorithms_are_refused() {
    let setup = Setup::new();
    let auth = setup
        .authenticator(&jwt_config(&format!(
            "{}\nhs256_secret = \"{HS_SECRET}\"\nalgorithms = [\"RS256\"]",
            pem_keys()
        )))
        .expect("valid config");

    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims("alice").to_string());
    let unsigned = format!("{header}.{payload}.c2lnbmF0dXJl");
    assert_refused(&auth, &unsigned, "alg none");
    // Without a signature segment it is no JWT at all, and no known token either.
    assert_refused(
        &auth,
        &format!("{header}.{payload}."),
        "unknown bearer token",
    );

    let hs = sign(Algorithm::HS256, None, &claims("alice"), &hs_key());
    assert_refused(&auth, &hs, "HS256 is not allowed");
    let es = sign(Algorithm::ES256, None, &claims("alice"), &ec_key());
    assert_refused(&auth, &es, "ES256 is not allowed");
    let rs384 = sign(Algorithm::RS384, None, &claims("alice"), &rsa_key());
    assert_refused(&auth, &rs384, "not supported");

    let rs = sign(Algorithm::RS256, None, &claims("alice"), &rsa_key());
    assert_eq!(
        auth.authenticate(&bearer(&rs)).expect("RS256 allowed").name,
        "alice"
    );
}

#[test]
fn jwks_keys_are_chosen_by_kid() {
    let setup = Setup::new();
    let auth = setup
        .authenticator(&jwt_config(&format!(
            "jwks_file = {:?}",
            fixture("jwks.json")
        )))
        .expect("valid config");

    let main = sign(
        Algorithm::RS256,
        Some("rsa-main"),
        &claims("alice"),
        &rsa_key(),
    );
    assert_eq!(
        auth.authenticate(&bearer(&main)).expect("rsa-main").name,
        "alice"
    );
    let other = sign(
        Algorithm::RS256,
        Some("rsa-other"),
        &claims("bob"),
        &rsa_other_key(),
    );
    assert_eq!(
        auth.authenticate(&bearer(&other)).expect("rsa-other").name,
        "bob"
    );
    let ec = sign(
        Algorithm::ES256,
        Some("ec-main"),
        &claims("carol"),
        &ec_key(),
    );
    assert_eq!(
        auth.authenticate(&bearer(&ec)).expect("ec-main").name,
        "carol"
    );

    // The kid selects the key: the other key's signature does not verify.
    let mismatched = sign(
        Algorithm::RS256,
        Some("rsa-main"),
        &claims("eve"),
        &rsa_other_key(),
    );
    assert_refused(&auth, &mismatched, "signature");
    // An encryption key is never used to verify signatures.
    let enc = sign(
        Algorithm::RS256,
        Some("enc-key"),
        &claims("eve"),
        &rsa_other_key(),
    );
    assert_refused(&auth, &enc, "no configured RS256 key");
    let unknown = sign(Algorithm::RS256, Some("nope"), &claims("eve"), &rsa_key());
    assert_refused(&auth, &unknown, "no configured RS256 key");
}

#[test]
fn claims_are_configurable() {
    let setup = Setup::new();
    let auth = setup
        .authenticator(&jwt_config(&format!(
            "hs256_secret = \"{HS_SECRET}\"\nprincipal_claim = \"email\"\ngroups_claim = \"roles\""
        )))
        .expect("valid config");
    let mut claims = claims("0042");
    claims["email"] = json!("alice@example.test");
    claims["roles"] = json!("release-managers");
    let principal = auth
        .authenticate(&bearer(&sign(Algorithm::HS256, None, &claims, &hs_key())))
        .expect("valid token");
    assert_eq!(principal.name, "alice@example.test");
    assert_eq!(principal.groups, ["release-managers"]);

    claims["roles"] = json!([1, 2]);
    assert_refused(
        &auth,
        &sign(Algorithm::HS256, None, &claims, &hs_key()),
        "\"roles\"",
    );
    claims.as_object_mut().expect("object").remove("email");
    claims["roles"] = json!([]);
    assert_refused(
        &auth,
        &sign(Algorithm::HS256, None, &claims, &hs_key()),
        "\"email\"",
    );
}

#[test]
fn a_jwt_is_refused_when_jwt_is_not_configured() {
    let setup = Setup::new();
    let tokens = setup.tokens_file();
    let auth = setup
        .authenticator(&format!("tokens_file = {tokens:?}\n"))
        .expect("valid config");
    let jwt = sign(Algorithm::HS256, None, &claims("alice"), &hs_key());
    assert_refused(&auth, &jwt, "not configured");
}

// ---------------------------------------------------------------- config

#[test]
fn unknown_config_keys_are_rejected_by_name() {
    let setup = Setup::new();
    let path = setup.write(
        "auth.toml",
        "tokens_file = \"t.toml\"\ntoken_file = \"x\"\n",
    );
    let err = AuthConfig::load(&path).expect_err("unknown key");
    let message = err.to_string();
    assert!(message.contains("token_file"), "{message}");
    assert!(message.contains("auth.toml:2:1"), "{message}");

    let path = setup.write(
        "jwt.toml",
        &jwt_config(&format!("hs256_secret = \"{HS_SECRET}\"\nleway = 3")),
    );
    let message = AuthConfig::load(&path)
        .expect_err("unknown [jwt] key")
        .to_string();
    assert!(message.contains("leway"), "{message}");

    let path = setup.write(
        "binding.toml",
        "[[binding]]\nsubjects = [\"*\"]\nroles = [\"viewer\"]\nstage = [\"prod\"]\n",
    );
    let message = AuthConfig::load(&path)
        .expect_err("unknown binding key")
        .to_string();
    assert!(message.contains("`stage`"), "{message}");
}

#[test]
fn config_errors_name_the_file_and_never_echo_secrets() {
    let setup = Setup::new();
    // A secret of the wrong type: the parse error must not quote the line.
    let path = setup.write(
        "auth.toml",
        "[jwt]\nissuer = \"i\"\naudience = \"a\"\nhs256_secret = [\"s3cr3t-value\"]\n",
    );
    let message = AuthConfig::load(&path).expect_err("wrong type").to_string();
    assert!(message.contains("auth.toml:4"), "{message}");
    assert!(!message.contains("s3cr3t-value"), "{message}");

    let err = setup
        .authenticator(&jwt_config("hs256_secret = \"short\""))
        .expect_err("short secret");
    assert!(err.to_string().contains("at least 32 bytes"), "{err}");
    assert!(!err.to_string().contains("short\""), "{err}");

    let private = fixture("rsa-private.pem");
    let err = setup
        .authenticator(&jwt_config(&format!(
            "public_keys_pem_files = [{private:?}]"
        )))
        .expect_err("private key");
    assert!(err.to_string().contains("rsa-private.pem"), "{err}");
    assert!(err.to_string().contains("private key"), "{err}");

    let not_pem = setup.write("key.pem", "hello");
    let err = setup
        .authenticator(&jwt_config(&format!(
            "public_keys_pem_files = [{not_pem:?}]"
        )))
        .expect_err("not a key");
    assert!(err.to_string().contains("key.pem"), "{err}");

    let jwks = setup.write(
        "jwks.json",
        r#"{"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "s"}]}"#,
    );
    let err = setup
        .authenticator(&jwt_config(&format!("jwks_file = {jwks:?}")))
        .expect_err("oct key in jwks");
    assert!(
        err.to_string().contains("jwks.json") && err.to_string().contains("oct"),
        "{err}"
    );

    let err = setup
        .authenticator(&jwt_config(&format!(
            "hs256_secret = \"{HS_SECRET}\"\nalgorithms = [\"ES256\"]"
        )))
        .expect_err("no ES256 key");
    assert!(err.to_string().contains("ES256"), "{err}");
}

#[test]
fn relative_paths_are_resolved_against_the_config_file() {
    let setup = Setup::new();
    setup.tokens_file();
    setup.write("hs.secret", HS_SECRET);
    let auth = setup
        .authenticator(&format!(
            "tokens_file = \"tokens.toml\"\n{}",
            jwt_config("hs256_secret_file = \"hs.secret\"")
        ))
        .expect("relative paths");
    assert_eq!(
        auth.authenticate(&bearer(CI_TOKEN)).expect("token").name,
        "ci-bot"
    );
}

#[test]
fn debug_output_holds_no_secret() {
    let setup = Setup::new();
    let tokens = setup.tokens_file();
    let path = setup.write(
        "auth.toml",
        &format!(
            "tokens_file = {tokens:?}\n{}",
            jwt_config(&format!("hs256_secret = \"{HS_SECRET}\""))
        ),
    );
    let config = AuthConfig::load(&path).expect("valid config");
    let debug = format!("{config:?}");
    assert!(!debug.contains(HS_SECRET), "{debug}");
    let auth = Authenticator::new(config).expect("valid config");
    let debug = format!("{auth:?}");
    assert!(!debug.contains(HS_SECRET), "{debug}");
    assert!(!debug.contains(&hash_token(CI_TOKEN)), "{debug}");
    assert!(debug.contains("ci-bot"), "{debug}");
}

// ---------------------------------------------------------------- roles

fn bindings(text: &str) -> Authorizer {
    let config: AuthConfig = toml::from_str(text).expect("valid bindings");
    Authorizer::new(config.bindings).expect("valid bindings")
}

fn user(name: &str, groups: &[&str]) -> Principal {
    Principal::new(
        name,
        groups.iter().map(|g| g.to_string()).collect(),
        AuthMethod::Jwt,
    )
}

const BINDINGS: &str = r#"
[[binding]]
subjects = ["user:alice"]
roles = ["promoter"]
projects = ["shop"]

[[binding]]
subjects = ["group:release-managers"]
roles = ["approver"]
projects = ["shop"]
stages = ["prod"]

[[binding]]
subjects = ["service:auto-promoter"]
roles = ["promoter"]

[[binding]]
subjects = ["*"]
roles = ["viewer"]
projects = ["shop"]

[[binding]]
subjects = ["user:root"]
roles = ["admin"]

[[binding]]
subjects = ["group:sre"]
roles = ["bypass"]
stages = ["prod"]
"#;

#[test]
fn bindings_grant_roles_by_subject_project_and_stage() {
    let authz = bindings(BINDINGS);
    let alice = user("alice", &[]);
    let rm = user("rita", &["release-managers"]);
    let svc = Principal::service("auto-promoter");
    let nobody = user("nobody", &[]);
    let sre = user("sam", &["sre"]);
    let root = user("root", &[]);

    // (principal, role, project, stage, granted)
    let table: &[(&Principal, Role, &str, Option<&str>, bool)] = &[
        // user: subject, project-scoped, every stage and project level
        (&alice, Role::Promoter, "shop", Some("prod"), true),
        (&alice, Role::Promoter, "shop", None, true),
        (&alice, Role::Viewer, "shop", None, true),
        (&alice, Role::Promoter, "blog", Some("prod"), false),
        (&alice, Role::Viewer, "blog", None, false),
        // approver is not promoter, promoter is not approver
        (&alice, Role::Approver, "shop", Some("prod"), false),
        (&rm, Role::Approver, "shop", Some("prod"), true),
        (&rm, Role::Promoter, "shop", Some("prod"), false),
        // a stage-scoped binding: not other stages, no project-level
        // operation but viewing the project (an approver sees what it approves)
        (&rm, Role::Approver, "shop", Some("staging"), false),
        (&rm, Role::Approver, "shop", None, false),
        (&rm, Role::Approver, "blog", Some("prod"), false),
        (&rm, Role::Viewer, "blog", None, false),
        (&sre, Role::Viewer, "blog", None, true),
        (&sre, Role::Viewer, "blog", Some("dev"), false),
        // service: subject, all projects
        (&svc, Role::Promoter, "shop", Some("prod"), true),
        (&svc, Role::Promoter, "blog", None, true),
        (&svc, Role::Approver, "blog", Some("prod"), false),
        // `*`: anyone authenticated
        (&nobody, Role::Viewer, "shop", Some("dev"), true),
        (&nobody, Role::Promoter, "shop", Some("dev"), false),
        (&svc, Role::Viewer, "shop", None, true),
        // bypass in any project's prod only, and it implies viewer there
        (&sre, Role::Bypass, "blog", Some("prod"), true),
        (&sre, Role::Viewer, "blog", Some("prod"), true),
        (&sre, Role::Bypass, "blog", Some("dev"), false),
        (&sre, Role::Approver, "blog", Some("prod"), false),
        // admin implies every role everywhere
        (&root, Role::Admin, "blog", None, true),
        (&root, Role::Bypass, "blog", Some("prod"), true),
        (&root, Role::Approver, "shop", Some("prod"), true),
        (&root, Role::Promoter, "any", None, true),
        (&root, Role::Viewer, "any", Some("x"), true),
    ];
    for (principal, role, project, stage, granted) in table {
        assert_eq!(
            authz.has_role(principal, *role, project, *stage),
            *granted,
            "{} {role} {project} {stage:?}",
            principal.name
        );
        assert_eq!(
            authz.require(principal, *role, project, *stage).is_ok(),
            *granted
        );
    }
    assert_eq!(
        authz
            .roles(&rm, "shop", Some("prod"))
            .into_iter()
            .collect::<Vec<_>>(),
        [Role::Viewer, Role::Approver]
    );
}

#[test]
fn a_user_subject_does_not_match_a_service_or_a_token_named_alike() {
    let authz = bindings(
        "[[binding]]\nsubjects = [\"service:deployer\"]\nroles = [\"admin\"]\n\n\
         [[binding]]\nsubjects = [\"user:deployer\"]\nroles = [\"viewer\"]\n",
    );
    let impostor = user("svc:deployer", &[]);
    assert!(!authz.has_role(&impostor, Role::Admin, "shop", None));
    let token = Principal::new("deployer", vec![], AuthMethod::Token);
    assert!(authz.has_role(&token, Role::Viewer, "shop", None));
    assert!(!authz.has_role(&token, Role::Promoter, "shop", None));
    assert!(authz.has_role(&Principal::service("deployer"), Role::Admin, "shop", None));
}

#[test]
fn permission_denied_names_principal_role_and_scope() {
    let authz = bindings(BINDINGS);
    let err = authz
        .require(&user("alice", &[]), Role::Approver, "shop", Some("prod"))
        .expect_err("alice is no approver");
    assert_eq!(
        err,
        AuthError::PermissionDenied {
            principal: "alice".into(),
            role: Role::Approver,
            project: "shop".into(),
            stage: Some("prod".into()),
        }
    );
    let status = tonic::Status::from(err);
    assert_eq!(status.code(), tonic::Code::PermissionDenied);
    assert!(
        status.message().contains("alice lacks the approver role"),
        "{}",
        status.message()
    );
}

#[test]
fn a_server_without_credentials_says_so() {
    let auth = Authenticator::new(AuthConfig::default()).expect("empty config");
    for metadata in [MetadataMap::new(), bearer(CI_TOKEN)] {
        let err = auth.authenticate(&metadata).expect_err("nothing accepted");
        assert!(
            matches!(&err, AuthError::Unauthenticated(m) if m.contains("accepts no credentials")),
            "{err}"
        );
    }
    // Insecure-dev mode still admits a request without credentials.
    let dev = Authenticator::new(AuthConfig::default())
        .expect("empty config")
        .with_insecure_dev(true);
    assert!(dev.authenticate(&MetadataMap::new()).is_ok());
}

#[test]
fn authorize_combines_authentication_and_roles() {
    let setup = Setup::new();
    let tokens = setup.tokens_file();
    let auth = setup
        .authenticator(&format!(
            "tokens_file = {tokens:?}\n\n[[binding]]\nsubjects = [\"group:ci\"]\nroles = [\"promoter\"]\n"
        ))
        .expect("valid config");
    let principal = auth
        .authorize(&bearer(CI_TOKEN), Role::Promoter, "shop", Some("dev"))
        .expect("ci may promote");
    assert_eq!(principal.name, "ci-bot");
    let err = auth
        .authorize(&bearer(CI_TOKEN), Role::Approver, "shop", Some("dev"))
        .expect_err("ci may not approve");
    assert!(matches!(err, AuthError::PermissionDenied { .. }));
    let err = auth
        .authorize(&MetadataMap::new(), Role::Viewer, "shop", None)
        .expect_err("no credentials");
    assert!(matches!(err, AuthError::Unauthenticated(_)));
}

/// A reload between a request's authentication and its role check (the
/// command service checks roles only once it has the project's state) must
/// not mix configurations: the principal keeps the bindings read with the
/// credentials that admitted it.
#[test]
fn roles_are_judged_by_the_configuration_that_authenticated() {
    let setup = Setup::new();
    let tokens = setup.tokens_file();
    let config = |ci_role: &str| {
        format!(
            "tokens_file = {tokens:?}\n\n[[binding]]\nsubjects = [\"group:ci\"]\nroles = [\"{ci_role}\"]\n"
        )
    };
    let auth = setup
        .authenticator(&config("viewer"))
        .expect("valid config");
    let before = auth.authenticate(&bearer(CI_TOKEN)).expect("known token");

    let path = setup.write("auth.toml", &config("admin"));
    auth.reload(AuthConfig::load(path).expect("valid config"))
        .expect("reload");
    let after = auth.authenticate(&bearer(CI_TOKEN)).expect("known token");

    // The same identity...
    assert_eq!(before, after);
    // ...judged by the bindings in force when each was authenticated, through
    // the authenticator's authorizer and any clone of it (the command handler's).
    let handlers = auth.authorizer().clone();
    for authorizer in [auth.authorizer(), &handlers] {
        assert!(authorizer.has_role(&before, Role::Viewer, "shop", None));
        assert!(!authorizer.has_role(&before, Role::Admin, "shop", None));
        assert!(authorizer.has_role(&after, Role::Admin, "shop", None));
    }
    // A principal no authenticator made (a service, a test) is judged by the
    // bindings in force now.
    let made = Principal::new("ci-bot", vec!["ci".into()], AuthMethod::Token);
    assert!(auth.authorizer().has_role(&made, Role::Admin, "shop", None));
}

// ---------------------------------------------------------------- insecure dev

#[test]
fn insecure_dev_admits_anonymous_admin_but_still_refuses_bad_credentials() {
    let setup = Setup::new();
    let tokens = setup.tokens_file();
    let auth = setup
        .authenticator(&format!("tokens_file = {tokens:?}\n"))
        .expect("valid config")
        .with_insecure_dev(true);
    assert!(auth.insecure_dev());

    let anonymous = auth.authenticate(&MetadataMap::new()).expect("anonymous");
    assert_eq!(anonymous.name, "anonymous");
    assert_eq!(anonymous.method, AuthMethod::Anonymous);
    for role in Role::ALL {
        assert!(auth
            .authorizer()
            .has_role(&anonymous, role, "shop", Some("prod")));
        assert!(auth.authorizer().has_role(&anonymous, role, "other", None));
    }

    assert_refused(&auth, "wbt_wrong_token", "unknown bearer token");
    let jwt = sign(Algorithm::HS256, None, &claims("alice"), &hs_key());
    assert_refused(&auth, &jwt, "not configured");
    // Known credentials still authenticate as themselves.
    assert_eq!(
        auth.authenticate(&bearer(CI_TOKEN)).expect("token").name,
        "ci-bot"
    );
}

#[test]
fn without_insecure_dev_the_anonymous_principal_has_no_role() {
    let authz = bindings("[[binding]]\nsubjects = [\"*\"]\nroles = [\"admin\"]\n");
    let anonymous = Principal::anonymous();
    for role in Role::ALL {
        assert!(!authz.has_role(&anonymous, role, "shop", None));
    }
    assert!(authz
        .clone()
        .with_insecure_dev(true)
        .has_role(&anonymous, Role::Admin, "shop", None));
}

#[test]
fn bindings_reject_invalid_scopes() {
    let config: AuthConfig = toml::from_str(
        "[[binding]]\nsubjects = [\"*\"]\nroles = [\"viewer\"]\nstages = [\"Prod\"]\n",
    )
    .expect("parses");
    let err = Authorizer::new(config.bindings.clone()).expect_err("invalid stage name");
    assert!(matches!(err, AuthError::Config(_)));
    assert!(err.to_string().contains("\"Prod\""), "{err}");
    let _: Vec<BindingConfig> = config.bindings;
}

#[test]
fn the_authenticator_can_be_shared_across_tasks() {
    fn shareable<T: Send + Sync + 'static>() {}
    shareable::<Authenticator>();
    shareable::<Authorizer>();
}
