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
