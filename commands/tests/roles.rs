//! Roles: bindings by subject, project and stage, and how authorization
//! combines them with authentication, through the public API.

mod auth_support;

use auth_support::*;

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
