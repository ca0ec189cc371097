//! Identity and roles: every command is attributed to an authenticated
//! [`Principal`] and checked against role bindings.
//!
//! - [`config`]: [`AuthConfig`], the TOML file (tokens file, `[jwt]`, `[[binding]]`).
//! - [`Authenticator`]: `authorization: Bearer <credential>` → [`Principal`]; a
//!   credential shaped like a JWT is verified as one, anything else is looked
//!   up by its SHA-256 in the tokens file ([`hash_token`]).
//! - [`Authorizer`]: [`Role`]s per project and stage, granted to [`Subject`]s.
//! - [`AuthError`]: `UNAUTHENTICATED`, `PERMISSION_DENIED` or `INTERNAL`.
//!
//! Reactors act as [`Principal::service`] principals. `--insecure-dev`
//! ([`Authenticator::with_insecure_dev`]) admits requests without credentials
//! as an anonymous admin, for local trials only.

mod authenticator;
mod authorizer;
mod bearer;
pub mod config;
mod error;
mod jwt;
mod keys;
mod principal;
mod role;
mod subject;
mod tokens;

pub use authenticator::Authenticator;
pub use authorizer::Authorizer;
pub use bearer::AUTHORIZATION;
pub use config::{AuthConfig, BindingConfig, JwtAlgorithm, JwtConfig, Secret};
pub use error::AuthError;
pub use principal::{AuthMethod, Principal, ANONYMOUS_NAME, SERVICE_PREFIX};
pub use role::{ParseRoleError, Role};
pub use subject::Subject;
pub use tokens::{check_tokens_file, hash_token, token_name_problem};
