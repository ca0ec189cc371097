//! One project's records: reading them for `evolve` and commands, and
//! moving records out of its cached state.

use super::*;

/// One project's records in a [`ColdStore`].
#[derive(Debug, Clone, Copy)]
pub struct ProjectCold<'a> {
    pub(super) store: &'a ColdStore,
    pub(super) project: &'a str,
}

/// What a move to the store takes out of a project's state: copies of the
/// records, serialized and written without the state.
#[derive(Debug, Default)]
pub struct Spill {
    pub(super) freight: Vec<Freight>,
    pub(super) promotions: Vec<Promotion>,
    pub(super) aliases: Vec<(String, String)>,
    pub(super) commands: Vec<(CommandKey, CommandOutcome)>,
    /// The project's clears when it was planned.
    pub(super) clears: u64,
    /// Its number among the project's moves (see `Moves`).
    pub(super) number: u64,
}

impl Spill {
    /// Whether there is anything to move.
    pub fn is_empty(&self) -> bool {
        self.freight.is_empty()
            && self.promotions.is_empty()
            && self.aliases.is_empty()
            && self.commands.is_empty()
    }

    /// Lets memory go of the records the store now holds, each unless it
    /// changed since it was written (it stays, and is written again by a
    /// later move).
    pub(super) fn release(self, state: &mut ProjectState) {
        for f in self.freight {
            if state.freight.get(&f.id).is_some_and(|m| **m == f) {
                state.freight.remove(&f.id);
                state.by_discovery.remove(&(f.discovered_at, f.id));
            }
        }
        for (alias, id) in self.aliases {
            if state.aliases.get(&alias) == Some(&id) {
                state.aliases.remove(&alias);
            }
        }
        for p in self.promotions {
            if state.promotions.get(&p.id).is_some_and(|m| **m == p) {
                state.promotions.remove(&p.id);
            }
        }
        if !self.commands.is_empty() {
            for (k, _) in &self.commands {
                state.commands.remove(k);
            }
            // Give back the room of the keys that left.
            state.commands.shrink_to_fit();
        }
    }
}

impl Cold for ProjectCold<'_> {
    type Error = CommandError;

    fn freight(&self, id: &str) -> Result<Option<Freight>, CommandError> {
        self.json(key(FREIGHT, self.project, id.as_bytes()))
    }

    fn promotion(&self, id: &str) -> Result<Option<Promotion>, CommandError> {
        self.json(key(PROMOTION, self.project, id.as_bytes()))
    }

    fn newest_first(
        &self,
        stage: &StageDef,
    ) -> Box<dyn Iterator<Item = Result<String, CommandError>> + '_> {
        let prefix = key(DISCOVERY, self.project, b"");
        let skip = prefix.len() + 12;
        // Above the stage's floor, nothing is available: start there.
        let floor = self.store.floors().get(self.project).and_then(|f| {
            f.iter()
                .find(|(def, _)| def == stage)
                .map(|(_, floor)| floor.clone())
        });
        let end = match floor {
            Some(floor) => [prefix.as_slice(), &floor, &[0]].concat(),
            None => [prefix.as_slice(), &[0xff; 13]].concat(),
        };
        Box::new(
            backwards(&self.store.kv, prefix, end)
                .map(move |kv| text(kv?.0.get(skip..).unwrap_or_default())),
        )
    }

    fn scanned(&self, stage: &StageDef, until: Option<(DateTime<Utc>, &str)>) {
        let floor = until
            .map(|(at, id)| discovery_key(at, id))
            .unwrap_or_default();
        let mut floors = self.store.floors();
        let mine = floors.entry(self.project.to_string()).or_default();
        match mine.iter_mut().find(|(def, _)| def == stage) {
            Some((_, f)) => *f = floor,
            None => mine.push((stage.clone(), floor)),
        }
    }
}

impl ProjectCold<'_> {
    pub(super) fn json<T: serde::de::DeserializeOwned>(
        &self,
        k: Vec<u8>,
    ) -> Result<Option<T>, CommandError> {
        match self.store.kv.get(&k)? {
            Some(v) => Ok(Some(serde_json::from_slice(&v)?)),
            None => Ok(None),
        }
    }

    /// The project's clears and moves, locked.
    fn moves<R>(&self, f: impl FnOnce(&mut Moves) -> R) -> R {
        let mut moves = self.store.moves.lock().unwrap_or_else(|p| p.into_inner());
        f(moves.entry(self.project.to_string()).or_default())
    }

    /// How many times the project's records were cleared.
    pub(in crate::handler) fn clears(&self) -> u64 {
        self.moves(|m| m.clears)
    }

    /// Removes every record of the project (its state is folded again).
    pub fn clear(&self) -> Result<(), CommandError> {
        self.store.floors().remove(self.project);
        self.moves(|m| m.clears += 1);
        for kind in KINDS {
            let prefix = key(kind, self.project, b"");
            let end = [prefix.as_slice(), &[0xff]].concat();
            loop {
                let keys = self.store.kv.last(&prefix, &end, 4096)?;
                if keys.is_empty() {
                    break;
                }
                self.store
                    .kv
                    .write(&keys.into_iter().map(|(k, _)| (k, None)).collect::<Vec<_>>())?;
            }
        }
        Ok(())
    }

    /// What [`ColdStore::seal`] writes of `state` (this project's, folded up
    /// to the event whose chain hash is `hash`): the state, and the
    /// idempotency keys it holds in memory (which a state's serialization
    /// leaves out).
    pub fn snapshot(&self, state: &ProjectState, hash: &ChainHash) -> Result<Batch, CommandError> {
        let mut batch: Vec<_> = state
            .commands
            .iter()
            .map(|(k, o)| {
                let v = [&o.position.0.to_be_bytes()[..], o.event_id.as_bytes()].concat();
                (key(COMMAND, self.project, k.bytes()), Some(v))
            })
            .collect();
        let snapshot = Snapshot {
            format: SNAPSHOT_FORMAT.to_string(),
            hash: hash.to_hex(),
            state,
        };
        batch.push((
            key(SNAPSHOT, self.project, b""),
            Some(serde_json::to_vec(&snapshot)?),
        ));
        Ok(batch)
    }

    /// Writes what [`ProjectCold::snapshot`] gives for `state` unless the
    /// project's records were cleared since their count was `clears`;
    /// whether it wrote. For a state dropped from the cache: the project's
    /// next command takes it back.
    pub(in crate::handler) fn hibernate(
        &self,
        state: &ProjectState,
        hash: &ChainHash,
        clears: u64,
    ) -> Result<bool, CommandError> {
        let batch = self.snapshot(state, hash)?;
        self.store.kv.write_if(&batch, || self.clears() == clears)
    }

    /// The project's state a clean shutdown left, and the chain hash of the
    /// event it was folded up to, removed from the store (it is taken back
    /// once: after that the records change with the state).
    pub fn take_snapshot(&self) -> Result<Option<(ProjectState, ChainHash)>, CommandError> {
        let k = key(SNAPSHOT, self.project, b"");
        let Some(v) = self.store.kv.get(&k)? else {
            return Ok(None);
        };
        self.store.kv.write(&[(k, None)])?;
        #[derive(serde::Deserialize)]
        struct Format {
            format: String,
        }
        let format = serde_json::from_slice::<Format>(&v).ok().map(|f| f.format);
        if let Some(format) = format.filter(|f| f != SNAPSHOT_FORMAT) {
            tracing::info!(
                project = self.project,
                saved_by = format,
                "the saved command state is of another release; folding the project's log"
            );
            return Ok(None);
        }
        let snapshot: Snapshot<ProjectState> = match serde_json::from_slice(&v) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(project = self.project, error = %e, "cannot read the saved command state; folding the project's log");
                return Ok(None);
            }
        };
        let Some(hash) = ChainHash::from_hex(&snapshot.hash) else {
            return Ok(None);
        };
        let mut state = snapshot.state;
        state.reindex();
        Ok(Some((state, hash)))
    }

    /// The freight id `alias` names, if it was moved here.
    pub fn alias(&self, alias: &str) -> Result<Option<String>, CommandError> {
        match self
            .store
            .kv
            .get(&key(ALIAS, self.project, alias.as_bytes()))?
        {
            Some(v) => Ok(Some(text(&v)?)),
            None => Ok(None),
        }
    }

    /// What the command with key `k` produced, if it was moved here.
    pub fn command(&self, k: &CommandKey) -> Result<Option<CommandOutcome>, CommandError> {
        let Some(v) = self.store.kv.get(&key(COMMAND, self.project, k.bytes()))? else {
            return Ok(None);
        };
        let bad = || CommandError::Internal("command state store: bad command record".into());
        let position = v.get(..8).and_then(|b| b.try_into().ok()).ok_or_else(bad)?;
        let event_id = v
            .get(8..24)
            .and_then(|b| b.try_into().ok())
            .ok_or_else(bad)?;
        Ok(Some(CommandOutcome {
            position: Position(u64::from_be_bytes(position)),
            event_id: uuid::Uuid::from_bytes(event_id),
        }))
    }

    /// The ids of the succeeded promotions into `stage` moved here, the
    /// latest request first.
    pub(super) fn succeeded_newest_first(
        &self,
        stage: &str,
    ) -> impl Iterator<Item = Result<String, CommandError>> + '_ {
        let mut rest = stage.as_bytes().to_vec();
        rest.push(0);
        let prefix = key(SUCCEEDED, self.project, &rest);
        let end = [prefix.as_slice(), &[0xff]].concat();
        backwards(&self.store.kv, prefix, end).map(|kv| text(&kv?.1))
    }

    /// Whether `state` holds more than the store's limits (so that
    /// [`ProjectCold::spill`] has something to do).
    pub fn over(&self, state: &ProjectState) -> bool {
        let hot = self.store.hot;
        state.freight.len() > hot
            || state.aliases.len() > hot
            || state.promotions.len() > hot
            || state.commands.len() > self.store.hot_commands
    }

    /// Moves out of `state` what its working set does not need, once it
    /// holds more than the store's limits: [`ProjectCold::plan`], write,
    /// [`ProjectCold::release`]. with `state` held throughout.
    pub fn spill(&self, state: &mut ProjectState) -> Result<(), CommandError> {
        let spill = self.plan(state);
        if self.write(&spill)? {
            self.release(spill, state);
        }
        Ok(())
    }

    /// What to move out of `state`, once it holds more than the store's
    /// limits: the oldest freight that no stage runs and the oldest
    /// finished promotions (all but the newest `HOT - MOVE`), aliases, and
    /// idempotency keys. Raises the floors
    /// of the freight it moves (see [`Cold::scanned`]) at once: they only
    /// say what the store holds above them is unavailable, and a higher
    /// floor is scanned from sooner.
    pub fn plan(&self, state: &ProjectState) -> Spill {
        let (project, hot) = (self.project, self.store.hot);
        let (clears, number) = self.moves(|m| {
            m.planned += 1;
            (m.clears, m.planned)
        });
        let mut spill = Spill {
            clears,
            number,
            ..Spill::default()
        };
        // What stays of each kind: the newest, up to this many.
        let stay = hot - MOVE.min(hot / 2);
        if state.freight.len() > hot {
            let mut keep: BTreeSet<&str> = state
                .stages
                .values()
                .flat_map(|s| s.current.iter().map(|c| c.freight.as_str()))
                .collect();
            keep.extend(
                state
                    .by_discovery
                    .iter()
                    .rev()
                    .take(stay)
                    .map(|(_, id)| id.as_str()),
            );
            spill.freight = state
                .freight
                .values()
                .filter(|f| !keep.contains(f.id.as_str()))
                .map(|f| (**f).clone())
                .collect();
        }
        // A freight that leaves memory available to a stage, above the
        // stage's floor, raises the floor to itself.
        let mut floors = self.store.floors();
        if let Some(mine) = floors.get_mut(project) {
            for (def, floor) in mine.iter_mut() {
                for f in &spill.freight {
                    let k = discovery_key(f.discovered_at, &f.id);
                    // Running nowhere, its soak is fixed: any time will do.
                    let may_be_available = f.verified_in.values().any(|v| v.since.is_some())
                        || available_to(f, def, f.discovered_at).is_ok();
                    if k > *floor && may_be_available {
                        *floor = k;
                    }
                }
            }
        }
        drop(floors);
        if state.aliases.len() > hot {
            spill.aliases = state
                .aliases
                .iter()
                .map(|(a, id)| (a.clone(), id.clone()))
                .collect();
        }
        if state.promotions.len() > hot {
            let mut finished: Vec<&Promotion> = state
                .promotions
                .values()
                .filter(|p| !p.status.is_active())
                .map(|p| &**p)
                .collect();
            finished.sort_unstable_by_key(|p| p.requested);
            let out = finished.len().saturating_sub(stay);
            spill.promotions = finished[..out].iter().map(|p| (*p).clone()).collect();
        }
        if state.commands.len() > self.store.hot_commands {
            spill.commands = state.commands.iter().map(|(k, o)| (*k, *o)).collect();
        }
        spill
    }

    /// Lets `state` (locked since the project's records were last cleared,
    /// as when `spill` was planned) go of the records `spill` wrote.
    pub fn release(&self, spill: Spill, state: &mut ProjectState) {
        if self.clears() == spill.clears {
            spill.release(state);
        }
    }

    /// Writes what `spill` moves out, atomically, unless the project's
    /// records were cleared since it was planned or a move planned after it
    /// was written first (then memory keeps the records, as if nothing was
    /// planned: they move again later); whether it wrote. The state it was
    /// planned on need not be held meanwhile: memory keeps the records until
    /// [`ProjectCold::release`].
    pub fn write(&self, spill: &Spill) -> Result<bool, CommandError> {
        let project = self.project;
        let mut batch = Vec::new();
        for f in &spill.freight {
            let at = discovery_key(f.discovered_at, &f.id);
            batch.push((key(DISCOVERY, project, &at), Some(Vec::new())));
            batch.push((
                key(FREIGHT, project, f.id.as_bytes()),
                Some(serde_json::to_vec(f)?),
            ));
        }
        for (alias, id) in &spill.aliases {
            batch.push((
                key(ALIAS, project, alias.as_bytes()),
                Some(id.as_bytes().to_vec()),
            ));
        }
        for p in &spill.promotions {
            if p.status == PromotionStatus::Succeeded {
                let at = [p.stage.as_bytes(), &[0], &p.requested.0.to_be_bytes()].concat();
                batch.push((key(SUCCEEDED, project, &at), Some(p.id.as_bytes().to_vec())));
            }
            batch.push((
                key(PROMOTION, project, p.id.as_bytes()),
                Some(serde_json::to_vec(p)?),
            ));
        }
        for (k, o) in &spill.commands {
            let v = [&o.position.0.to_be_bytes()[..], o.event_id.as_bytes()].concat();
            batch.push((key(COMMAND, project, k.bytes()), Some(v)));
        }
        self.store.kv.write_if(&batch, || {
            self.moves(|m| {
                let current = m.clears == spill.clears && m.written < spill.number;
                if current {
                    m.written = spill.number;
                }
                current
            })
        })
    }

    /// Up to `limit` ids of freight kept here that start with `start`.
    pub(super) fn freight_starting(
        &self,
        start: &str,
        limit: usize,
    ) -> Result<Vec<String>, CommandError> {
        self.ids_starting(FREIGHT, start, limit)
    }

    /// Up to `limit` ids of promotions kept here that start with `start`.
    pub(super) fn promotions_starting(
        &self,
        start: &str,
        limit: usize,
    ) -> Result<Vec<String>, CommandError> {
        self.ids_starting(PROMOTION, start, limit)
    }

    /// Up to `limit` ids of records of `kind` kept here that start with
    /// `start`.
    fn ids_starting(
        &self,
        kind: u8,
        start: &str,
        limit: usize,
    ) -> Result<Vec<String>, CommandError> {
        let from = key(kind, self.project, start.as_bytes());
        let to = key(kind, self.project, &[start.as_bytes(), &[0xff]].concat());
        let scope = key(kind, self.project, &[]).len();
        Ok(self
            .store
            .kv
            .last(&from, &to, limit)?
            .into_iter()
            .map(|(k, _)| String::from_utf8_lossy(&k[scope..]).into_owned())
            .collect())
    }

    /// Puts freight `id_or_alias` in memory, by id or by alias.
    pub(super) fn load_named(
        &self,
        state: &mut ProjectState,
        id_or_alias: &str,
    ) -> Result<(), CommandError> {
        if working_set::load_freight(self, state, id_or_alias)? {
            return Ok(());
        }
        self.load_alias(state, id_or_alias)
    }

    /// Puts `alias` (and the freight it names) in memory unless it is there.
    pub(super) fn load_alias(
        &self,
        state: &mut ProjectState,
        alias: &str,
    ) -> Result<(), CommandError> {
        let id = match state.aliases.get(alias) {
            Some(id) => id.clone(),
            None => match self.alias(alias)? {
                Some(id) => {
                    state.aliases.insert(alias.to_string(), id.clone());
                    id
                }
                None => return Ok(()),
            },
        };
        working_set::load_freight(self, state, &id)?;
        Ok(())
    }
}
