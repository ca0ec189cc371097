//! Unit tests of the store.

use super::store::MAX_SAVING;
use super::*;

#[test]
fn at_most_max_saving_dropped_states_wait_to_be_saved() -> Result<(), CommandError> {
    let dir = tempfile::tempdir().map_err(|e| CommandError::Internal(e.to_string()))?;
    let store = ColdStore::open(&dir.path().join("store"))?;
    let mut tickets: Vec<_> = (0..MAX_SAVING).map_while(|_| store.save_ticket()).collect();
    assert_eq!(tickets.len(), MAX_SAVING);
    assert!(store.save_ticket().is_none());
    tickets.pop();
    assert!(
        store.save_ticket().is_some(),
        "a place given back is taken again"
    );
    Ok(())
}

#[test]
fn a_state_saved_by_another_release_is_not_taken_back() -> Result<(), CommandError> {
    let dir = tempfile::tempdir().map_err(|e| CommandError::Internal(e.to_string()))?;
    let store = ColdStore::open(&dir.path().join("store"))?;
    let project = store.project("p");
    let mut state = ProjectState::new("p");
    state.seq = 3;
    state.position = Position(7);
    let hash = ChainHash([7; 32]);

    store.seal(project.snapshot(&state, &hash)?)?;
    assert_eq!(project.take_snapshot()?, Some((state.clone(), hash)));
    assert_eq!(store.snapshots()?, 0, "taken back once");

    let mut batch = project.snapshot(&state, &hash)?;
    for (k, v) in &mut batch {
        if k[0] == SNAPSHOT {
            let mut json: serde_json::Value =
                serde_json::from_slice(v.as_deref().unwrap_or_default())?;
            json["format"] = "0.0.1/1".into();
            *v = Some(serde_json::to_vec(&json)?);
        }
    }
    store.seal(batch)?;
    assert_eq!(store.snapshots()?, 1);
    assert_eq!(project.take_snapshot()?, None);
    assert_eq!(store.snapshots()?, 0);
    Ok(())
}

/// A freight discovered `minute` minutes into the day.
fn freight(id: &str, minute: i64) -> Freight {
    let at: DateTime<Utc> = "2026-12-01T00:00:00Z".parse().expect("time");
    Freight {
        id: id.to_string(),
        warehouse: "images".into(),
        artifacts: Vec::new(),
        alias: String::new(),
        discovered_at: at + chrono::Duration::minutes(minute),
        discovered: Position(minute as u64 + 1),
        discovered_id: uuid::Uuid::nil(),
        verified_in: Default::default(),
        approved_for: Default::default(),
        currently_in: Default::default(),
        checks: Default::default(),
    }
}

/// A move planned first but written last (the mover thread held back while
/// a catch-up moved the records again) does not put back the records as
/// they were when it was planned: the store keeps what the newer move
/// wrote, and memory what the older one would have let go.
#[test]
fn a_move_written_after_a_newer_one_writes_nothing() -> Result<(), CommandError> {
    let dir = tempfile::tempdir().map_err(|e| CommandError::Internal(e.to_string()))?;
    let store = ColdStore::open(&dir.path().join("store"))?.with_hot(2, 2);
    let project = store.project("p");
    let mut state = ProjectState::new("p");
    for (i, id) in ["f0", "f1", "f2", "f3"].into_iter().enumerate() {
        let f = freight(id, i as i64);
        state.by_discovery.insert((f.discovered_at, f.id.clone()));
        state.freight.insert(f.id.clone(), Box::new(f));
    }
    let older = project.plan(&state);
    assert!(older.freight.iter().any(|f| f.id == "f0"), "{older:?}");

    // f0 changes before the older move is written; a catch-up moves it out.
    let mut changed = (**state.freight.get("f0").expect("f0")).clone();
    changed.alias = "v0".into();
    state.freight.insert("f0".into(), Box::new(changed.clone()));
    project.spill(&mut state)?;
    assert!(!state.freight.contains_key("f0"), "moved out");

    assert!(!project.write(&older)?, "the older move is not written");
    project.release(older, &mut state);
    assert!(working_set::load_freight(&project, &mut state, "f0")?);
    assert_eq!(state.freight.get("f0").map(|f| &**f), Some(&changed));
    Ok(())
}
