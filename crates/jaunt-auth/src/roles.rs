//! Roles: the presets every cluster starts with, and administration.

use crate::records::{ROLES, USERS, UserRecord, role_key};
use crate::{AuthError, AuthServer};
use jaunt_store::{Store, StoreError};
use jaunt_types::resources::Role;

pub(crate) async fn create_presets(store: &Store) -> Result<(), AuthError> {
    for role in jaunt_rbac::preset_roles() {
        match store.create(&role_key(role.name()), &role, None).await {
            Ok(_) | Err(StoreError::AlreadyExists(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

impl AuthServer {
    pub async fn upsert_role(&self, role: Role, force: bool) -> Result<String, AuthError> {
        role.validate().map_err(AuthError::BadRequest)?;
        let key = role_key(role.name());
        let event = self.event("role.created", true).with("name", role.name());
        if force {
            self.store.put(&key, &role, None).await?;
            self.emit(event).await?;
            return Ok(format!("role {:?} has been updated", role.name()));
        }
        match self.store.create(&key, &role, None).await {
            Ok(_) => {
                self.emit(event).await?;
                Ok(format!("role {:?} has been created", role.name()))
            }
            Err(StoreError::AlreadyExists(_)) => Err(AuthError::AlreadyExists(format!(
                "role {:?} already exists; use 'jctl create -f' to overwrite it",
                role.name()
            ))),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn list_roles(&self) -> Result<Vec<Role>, AuthError> {
        Ok(self
            .store
            .list::<Role>(ROLES)
            .await?
            .into_iter()
            .map(|v| v.value)
            .collect())
    }

    pub async fn role_exists(&self, name: &str) -> Result<bool, AuthError> {
        Ok(self.store.get::<Role>(&role_key(name)).await?.is_some())
    }

    /// Removes a role that no user holds.
    pub async fn remove_role(&self, name: &str) -> Result<String, AuthError> {
        let holders: Vec<String> = self
            .store
            .list::<UserRecord>(USERS)
            .await?
            .into_iter()
            .filter(|u| u.value.roles.iter().any(|r| r == name))
            .map(|u| u.value.name)
            .collect();
        if !holders.is_empty() {
            return Err(AuthError::BadRequest(format!(
                "role {name:?} is held by {}; remove it from them first with 'jctl users update NAME --set-roles=...'",
                holders.join(", ")
            )));
        }
        match self.store.delete(&role_key(name)).await {
            Ok(()) => {
                self.emit(self.event("role.deleted", true).with("name", name))
                    .await?;
                Ok(format!("role {name:?} has been deleted"))
            }
            Err(StoreError::NotFound(_)) => {
                Err(AuthError::NotFound(format!("role {name:?} not found")))
            }
            Err(e) => Err(e.into()),
        }
    }
}
