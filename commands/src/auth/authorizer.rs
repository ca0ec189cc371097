//! Role bindings: who holds which role on which project and stage.

use std::collections::BTreeSet;
use std::sync::{Arc, RwLock};

use super::config::BindingConfig;
use super::{AuthError, AuthMethod, Principal, Role};

/// Decides whether a principal holds a role, from the configured bindings.
///
/// A binding applies when one of its subjects matches the principal, its
/// `projects` is empty or names the project, and its `stages` is empty or names
/// the stage. A binding restricted to stages applies to no other project-level
/// operation (`stage: None`) than viewing: whoever holds a role on a stage may
/// read the project (its status, history and promotions), as an approver
/// must to see what they approve.
///
/// Clones share the bindings: `Authorizer::replace` (a reload of the auth
/// config) reaches every clone at once.
#[derive(Debug, Clone, Default)]
pub struct Authorizer {
    bindings: Arc<RwLock<Arc<Vec<BindingConfig>>>>,
    insecure_dev: bool,
}

impl Authorizer {
    /// An authorizer over validated `bindings`.
    pub fn new(bindings: Vec<BindingConfig>) -> Result<Authorizer, AuthError> {
        Self::validate(&bindings)?;
        Ok(Authorizer {
            bindings: Arc::new(RwLock::new(Arc::new(bindings))),
            insecure_dev: false,
        })
    }

    pub(crate) fn validate(bindings: &[BindingConfig]) -> Result<(), AuthError> {
        for (index, binding) in bindings.iter().enumerate() {
            binding.validate(index)?;
        }
        Ok(())
    }

    /// Puts validated `bindings` in force for this authorizer and its clones.
    pub(crate) fn replace(&self, bindings: Arc<Vec<BindingConfig>>) {
        let mut current = self.bindings.write().unwrap_or_else(|e| e.into_inner());
        *current = bindings;
    }

    /// The bindings in force.
    pub(crate) fn current(&self) -> Arc<Vec<BindingConfig>> {
        self.bindings
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// How many bindings are in force.
    pub fn binding_count(&self) -> usize {
        self.current().len()
    }

    /// In insecure-dev mode the anonymous principal holds every role.
    pub fn with_insecure_dev(mut self, insecure_dev: bool) -> Authorizer {
        self.insecure_dev = insecure_dev;
        self
    }

    /// Whether `principal` holds `role` on `project` (and `stage`, if given),
    /// under the bindings in force when it was authenticated (see
    /// [`Principal`]'s grants), or else those in force now.
    pub fn has_role(
        &self,
        principal: &Principal,
        role: Role,
        project: &str,
        stage: Option<&str>,
    ) -> bool {
        if principal.method == AuthMethod::Anonymous {
            return self.insecure_dev;
        }
        let now;
        let bindings = match principal.grants.bindings() {
            Some(then) => then,
            None => {
                now = self.current();
                &now
            }
        };
        let viewing = role == Role::Viewer && stage.is_none();
        let held = applicable(bindings, principal, project, stage, viewing)
            .any(|binding| binding.roles.iter().any(|held| held.implies(role)));
        held
    }

    /// Like [`Authorizer::has_role`], as a `PermissionDenied` error.
    pub fn require(
        &self,
        principal: &Principal,
        role: Role,
        project: &str,
        stage: Option<&str>,
    ) -> Result<(), AuthError> {
        if self.has_role(principal, role, project, stage) {
            return Ok(());
        }
        tracing::debug!(principal = %principal.name, %role, project, stage, "permission denied");
        Err(AuthError::PermissionDenied {
            principal: principal.name.clone(),
            role,
            project: project.to_string(),
            stage: stage.map(str::to_string),
        })
    }

    /// Every role `principal` holds there, implied ones included.
    pub fn roles(
        &self,
        principal: &Principal,
        project: &str,
        stage: Option<&str>,
    ) -> BTreeSet<Role> {
        Role::ALL
            .into_iter()
            .filter(|role| self.has_role(principal, *role, project, stage))
            .collect()
    }
}

/// The bindings that apply to `principal` on `project` (and `stage`); with
/// `viewing` (viewing the project), those on any of its stages too.
fn applicable<'a>(
    bindings: &'a [BindingConfig],
    principal: &'a Principal,
    project: &'a str,
    stage: Option<&'a str>,
    viewing: bool,
) -> impl Iterator<Item = &'a BindingConfig> + 'a {
    bindings.iter().filter(move |binding| {
        let project_ok =
            binding.projects.is_empty() || binding.projects.iter().any(|p| p == project);
        let stage_ok = binding.stages.is_empty()
            || viewing
            || stage.is_some_and(|stage| binding.stages.iter().any(|s| s == stage));
        project_ok && stage_ok && binding.subjects.iter().any(|s| s.matches(principal))
    })
}
