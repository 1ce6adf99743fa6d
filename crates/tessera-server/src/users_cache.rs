//! A short-lived memory of user rows for the refresh path, which otherwise reads the user on
//! every refresh (the SQL round trip is the largest cost of a refresh on Redis).
//!
//! Safe to be a second stale: what a refresh needs from the user row, it also gets fresher
//! elsewhere. Blocking, "log out everywhere", force logout and deletion revoke the user's sessions
//! (read from the session store on every refresh) and record a cutoff in the revocation state
//! (checked in memory on every refresh). Changes made by this process forget the entry at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tessera_core::ids::UserId;
use tessera_store::{StoreError, User, UserStore};

/// How long a user row is reused.
const TTL: Duration = Duration::from_secs(1);
/// Most rows kept; when full, the memory is cleared (a miss costs one read).
const CAPACITY: usize = 100_000;

/// Recently read user rows.
#[derive(Debug, Default)]
pub struct UserCache {
    entries: Mutex<HashMap<UserId, (Instant, Arc<User>)>>,
}

impl UserCache {
    /// The user, from memory if read within the last second, else from the store.
    pub async fn get(
        &self,
        users: &dyn UserStore,
        id: &UserId,
    ) -> Result<Option<Arc<User>>, StoreError> {
        if let Some((at, user)) = self
            .entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
        {
            if at.elapsed() < TTL {
                return Ok(Some(Arc::clone(user)));
            }
        }
        let Some(user) = users.user_by_id(id).await? else {
            self.forget(id);
            return Ok(None);
        };
        let user = Arc::new(user);
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= CAPACITY {
            entries.clear();
        }
        entries.insert(id.clone(), (Instant::now(), Arc::clone(&user)));
        Ok(Some(user))
    }

    /// Drops the row of `id` (after this process changed it).
    pub fn forget(&self, id: &UserId) {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id);
    }
}
