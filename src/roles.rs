//! What one `waybill serve` process runs (DESIGN §3: one binary, roles
//! selectable). Every role reads and appends to the same log, so replicas of
//! different roles can run side by side against one JetStream stream.

use std::fmt;

use serde::Deserialize;

/// One role, as named by `--roles` and `roles = [...]` in the config file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ServeRole {
    /// The command service: authorize, decide, append.
    Commands,
    /// The read models and the Merkle tree of the log (with checkpoint
    /// signing), and the services that read them: queries, audit, exports.
    Queries,
    /// The auto-promotion reactor.
    Reactors,
}

/// The roles a process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roles {
    pub commands: bool,
    pub queries: bool,
    pub reactors: bool,
}

impl Roles {
    pub const ALL: Roles = Roles {
        commands: true,
        queries: true,
        reactors: true,
    };

    /// The roles of the flags (`--roles`, or else the config file's, or else
    /// all), less the reactors with `--no-reactors`.
    pub fn chosen(
        flags: &[ServeRole],
        file: Option<&[ServeRole]>,
        no_reactors: bool,
    ) -> anyhow::Result<Roles> {
        let list = match (flags, file) {
            ([], None) => None,
            ([], Some(file)) => Some(file),
            (flags, _) => Some(flags),
        };
        let mut roles = match list {
            None => Roles::ALL,
            Some([]) => anyhow::bail!(
                "roles: the list is empty; name at least one of commands, queries, reactors"
            ),
            Some(list) => Roles {
                commands: list.contains(&ServeRole::Commands),
                queries: list.contains(&ServeRole::Queries),
                reactors: list.contains(&ServeRole::Reactors),
            },
        };
        if no_reactors {
            roles.reactors = false;
        }
        if roles
            == (Roles {
                commands: false,
                queries: false,
                reactors: false,
            })
        {
            anyhow::bail!("--no-reactors leaves this process nothing to run");
        }
        Ok(roles)
    }
}

impl fmt::Display for Roles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = [
            (self.commands, "commands"),
            (self.queries, "queries"),
            (self.reactors, "reactors"),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect();
        f.write_str(&names.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ServeRole::*;

    #[test]
    fn flags_override_the_file_and_no_reactors_removes_them() {
        assert_eq!(Roles::chosen(&[], None, false).expect("roles"), Roles::ALL);
        let file = [Queries, Reactors];
        let from_file = Roles::chosen(&[], Some(&file), false).expect("roles");
        assert_eq!(from_file.to_string(), "queries,reactors");
        let flags = Roles::chosen(&[Commands], Some(&file), false).expect("roles");
        assert_eq!(flags.to_string(), "commands");
        assert_eq!(
            Roles::chosen(&[], None, true).expect("roles").to_string(),
            "commands,queries"
        );
    }

    #[test]
    fn nothing_to_run_is_an_error() {
        let e = Roles::chosen(&[], Some(&[]), false).expect_err("refused");
        assert!(e.to_string().contains("the list is empty"), "{e}");
        let e = Roles::chosen(&[Reactors], None, true).expect_err("refused");
        assert!(e.to_string().contains("nothing to run"), "{e}");
    }
}
