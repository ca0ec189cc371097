//! Identity: bearer tokens and JWTs (HS256, RS256, ES256, JWKS), the auth
//! config and insecure-dev mode, through the public API (roles: `roles.rs`).

mod auth_support;

use auth_support::*;

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
