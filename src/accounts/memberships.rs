//! Issuer memberships and roles (tenancy). A principal (a client, or a user acting through a
//! user-bound token) is either global, acting on every issuer, or a member of specific issuers with
//! a role: `owner` (everything, including keys and members), `issuer` (achievements, issuance,
//! revocation and suspension) or `viewer` (read only).
//!
//! The set of issuers a principal may act on is resolved once with the access token
//! ([`load_access`]) and cached with it, so a check is a hash-map lookup.

use std::{cmp::Ordering, collections::HashMap, fmt, str::FromStr};

use chrono::Utc;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::accounts::records::user;
use crate::db::{self, audit_event, issuer, issuer_membership, oauth_client};

/// What a member may do on an issuer. Ordered: `Owner > Issuer > Viewer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything, including signing keys, the profile and the members.
    Owner,
    /// Achievements, issuance, revocation and suspension.
    Issuer,
    /// Read only.
    Viewer,
}

impl Role {
    /// Every role, strongest first.
    pub const ALL: [Role; 3] = [Role::Owner, Role::Issuer, Role::Viewer];

    fn rank(self) -> u8 {
        match self {
            Role::Owner => 2,
            Role::Issuer => 1,
            Role::Viewer => 0,
        }
    }

    /// The role's name as stored and sent: `owner`, `issuer` or `viewer`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Issuer => "issuer",
            Role::Viewer => "viewer",
        }
    }
}

impl PartialOrd for Role {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Role {
    fn cmp(&self, other: &Self) -> Ordering {
        self.rank().cmp(&other.rank())
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A role name that is none of `owner`, `issuer`, `viewer`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role `{0}`: use owner, issuer or viewer")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownRole(s.to_owned()))
    }
}

/// Who acts: a client on its own behalf, or a user through a user-bound token.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Principal {
    /// An OAuth client id.
    Client(String),
    /// A user id.
    User(String),
}

impl Principal {
    /// `client` or `user`, as stored in `issuer_memberships.principal_kind`.
    pub fn kind(&self) -> &'static str {
        match self {
            Principal::Client(_) => "client",
            Principal::User(_) => "user",
        }
    }

    /// The client or user id.
    pub fn id(&self) -> &str {
        match self {
            Principal::Client(id) | Principal::User(id) => id,
        }
    }

    fn from_row(kind: &str, id: String) -> Option<Self> {
        match kind {
            "client" => Some(Principal::Client(id)),
            "user" => Some(Principal::User(id)),
            _ => None,
        }
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind(), self.id())
    }
}

/// The issuers a principal may act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IssuerAccess {
    /// Every issuer, with every role (administrators, clients created before tenancy).
    Global,
    /// Only these issuers (our issuer id → role).
    Members(HashMap<String, Role>),
}

impl IssuerAccess {
    /// The principal's role on `issuer_id` (`Owner` for a global principal), `None` when it may not
    /// act on the issuer at all.
    pub fn role_on(&self, issuer_id: &str) -> Option<Role> {
        match self {
            IssuerAccess::Global => Some(Role::Owner),
            IssuerAccess::Members(map) => map.get(issuer_id).copied(),
        }
    }

    /// Whether the principal acts on every issuer.
    pub fn is_global(&self) -> bool {
        matches!(self, IssuerAccess::Global)
    }
}

/// Failures of membership changes, each with the HTTP status it becomes.
#[derive(Debug, thiserror::Error)]
pub enum MembershipError {
    /// 404: the issuer does not exist, or the principal is not a member.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// 409: the change would leave the issuer without an owner.
    #[error("an issuer must keep at least one owner")]
    LastOwner,
    /// 422: the named client does not exist.
    #[error("client `{0}` does not exist")]
    UnknownClient(String),
    /// 422: the named user does not exist.
    #[error("user `{0}` does not exist")]
    UnknownUser(String),
    /// Database failure.
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// Resolves what `principal` may act on. A client is global when its row says so; a user is global
/// when they are an administrator (`users.is_admin`). Otherwise either is a member of the issuers
/// its memberships name; a disabled or deleted user is a member of none.
pub async fn load_access(
    db: &impl ConnectionTrait,
    principal: &Principal,
) -> Result<IssuerAccess, DbErr> {
    match principal {
        Principal::Client(id) => {
            let global = oauth_client::Entity::find_by_id(id.clone())
                .select_only()
                .column(oauth_client::Column::Global)
                .into_tuple::<bool>()
                .one(db)
                .await?;
            if global == Some(true) {
                return Ok(IssuerAccess::Global);
            }
        }
        Principal::User(id) => {
            let row: Option<(bool, Option<chrono::DateTime<chrono::Utc>>)> =
                user::Entity::find_by_id(id.clone())
                    .select_only()
                    .column(user::Column::IsAdmin)
                    .column(user::Column::DisabledAt)
                    .into_tuple()
                    .one(db)
                    .await?;
            match row {
                Some((_, Some(_))) | None => return Ok(IssuerAccess::Members(HashMap::new())),
                Some((true, None)) => return Ok(IssuerAccess::Global),
                Some((false, None)) => {}
            }
        }
    }
    Ok(IssuerAccess::Members(member_roles(db, principal).await?))
}

/// The memberships of a principal (issuer id → role); unreadable roles are skipped.
pub async fn member_roles(
    db: &impl ConnectionTrait,
    principal: &Principal,
) -> Result<HashMap<String, Role>, DbErr> {
    let rows: Vec<(String, String)> = issuer_membership::Entity::find()
        .select_only()
        .column(issuer_membership::Column::IssuerId)
        .column(issuer_membership::Column::Role)
        .filter(issuer_membership::Column::PrincipalKind.eq(principal.kind()))
        .filter(issuer_membership::Column::PrincipalId.eq(principal.id()))
        .into_tuple()
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(issuer, role)| Some((issuer, role.parse().ok()?)))
        .collect())
}

/// One member of an issuer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub principal: Principal,
    pub role: Role,
    pub created_at: chrono::DateTime<Utc>,
}

fn member_of(row: issuer_membership::Model) -> Option<Member> {
    Some(Member {
        role: row.role.parse().ok()?,
        principal: Principal::from_row(&row.principal_kind, row.principal_id)?,
        created_at: row.created_at,
    })
}

/// The members of an issuer, oldest first.
pub async fn list_members(
    db: &impl ConnectionTrait,
    issuer_id: &str,
) -> Result<Vec<Member>, DbErr> {
    let rows = issuer_membership::Entity::find()
        .filter(issuer_membership::Column::IssuerId.eq(issuer_id))
        .order_by_asc(issuer_membership::Column::CreatedAt)
        .order_by_asc(issuer_membership::Column::Id)
        .all(db)
        .await?;
    Ok(rows.into_iter().filter_map(member_of).collect())
}

/// Locks the issuer row for the rest of the transaction (PostgreSQL `FOR UPDATE`; SQLite write
/// transactions are exclusive already), so concurrent membership changes of one issuer serialize
/// and the last-owner rule cannot be raced.
async fn lock_issuer(db: &impl ConnectionTrait, issuer_id: &str) -> Result<(), MembershipError> {
    let mut query = issuer::Entity::find_by_id(issuer_id.to_owned());
    if db.get_database_backend() == sea_orm::DbBackend::Postgres {
        query = query.lock_exclusive();
    }
    query
        .one(db)
        .await?
        .map(|_| ())
        .ok_or(MembershipError::NotFound("issuer"))
}

async fn find_row(
    db: &impl ConnectionTrait,
    issuer_id: &str,
    principal: &Principal,
) -> Result<Option<issuer_membership::Model>, DbErr> {
    issuer_membership::Entity::find()
        .filter(issuer_membership::Column::IssuerId.eq(issuer_id))
        .filter(issuer_membership::Column::PrincipalKind.eq(principal.kind()))
        .filter(issuer_membership::Column::PrincipalId.eq(principal.id()))
        .one(db)
        .await
}

async fn owner_count(db: &impl ConnectionTrait, issuer_id: &str) -> Result<u64, DbErr> {
    issuer_membership::Entity::find()
        .filter(issuer_membership::Column::IssuerId.eq(issuer_id))
        .filter(issuer_membership::Column::Role.eq(Role::Owner.as_str()))
        .count(db)
        .await
}

/// 422 when the principal a membership names does not exist (a client or a user).
async fn require_client(
    db: &impl ConnectionTrait,
    principal: &Principal,
) -> Result<(), MembershipError> {
    match principal {
        Principal::Client(id) => {
            if oauth_client::Entity::find_by_id(id.clone())
                .one(db)
                .await?
                .is_none()
            {
                return Err(MembershipError::UnknownClient(id.clone()));
            }
        }
        Principal::User(id) => {
            if user::Entity::find_by_id(id.clone())
                .one(db)
                .await?
                .is_none()
            {
                return Err(MembershipError::UnknownUser(id.clone()));
            }
        }
    }
    Ok(())
}

/// Inserts or changes one membership inside the caller's transaction (the issuer must be locked
/// with [`lock_issuer`] first). Returns the previous role.
async fn put_in_txn(
    txn: &impl ConnectionTrait,
    issuer_id: &str,
    principal: &Principal,
    role: Role,
    actor: &str,
) -> Result<Option<Role>, MembershipError> {
    let existing = find_row(txn, issuer_id, principal).await?;
    let previous = existing.as_ref().and_then(|r| r.role.parse::<Role>().ok());
    match existing {
        Some(_) if previous == Some(role) => return Ok(previous),
        Some(row) => {
            if previous == Some(Role::Owner) && owner_count(txn, issuer_id).await? <= 1 {
                return Err(MembershipError::LastOwner);
            }
            let mut active: issuer_membership::ActiveModel = row.into();
            active.role = Set(role.as_str().to_owned());
            active.update(txn).await?;
        }
        None => {
            issuer_membership::ActiveModel {
                id: Set(db::new_id()),
                principal_kind: Set(principal.kind().to_owned()),
                principal_id: Set(principal.id().to_owned()),
                issuer_id: Set(issuer_id.to_owned()),
                role: Set(role.as_str().to_owned()),
                created_at: Set(Utc::now()),
            }
            .insert(txn)
            .await?;
        }
    }
    audit_event::record(
        txn,
        actor,
        if previous.is_some() {
            "membership.updated"
        } else {
            "membership.added"
        },
        "issuer",
        issuer_id,
        json!({
            "principalKind": principal.kind(),
            "principalId": principal.id(),
            "role": role.as_str(),
            "previousRole": previous.map(Role::as_str),
        }),
    )
    .await?;
    Ok(previous)
}

async fn remove_in_txn(
    txn: &impl ConnectionTrait,
    issuer_id: &str,
    principal: &Principal,
    actor: &str,
) -> Result<(), MembershipError> {
    let row = find_row(txn, issuer_id, principal)
        .await?
        .ok_or(MembershipError::NotFound("member"))?;
    if row.role == Role::Owner.as_str() && owner_count(txn, issuer_id).await? <= 1 {
        return Err(MembershipError::LastOwner);
    }
    issuer_membership::Entity::delete_by_id(row.id)
        .exec(txn)
        .await?;
    audit_event::record(
        txn,
        actor,
        "membership.removed",
        "issuer",
        issuer_id,
        json!({
            "principalKind": principal.kind(),
            "principalId": principal.id(),
            "role": row.role,
        }),
    )
    .await?;
    Ok(())
}

/// Adds `principal` to an issuer with `role`, or changes its role (a change that would leave the
/// issuer without an owner is refused). Returns the previous role, `None` when it was added.
pub async fn set_member(
    db: &DatabaseConnection,
    issuer_id: &str,
    principal: &Principal,
    role: Role,
    actor: &str,
) -> Result<Option<Role>, MembershipError> {
    let txn = db::begin_write(db).await?;
    lock_issuer(&txn, issuer_id).await?;
    require_client(&txn, principal).await?;
    let previous = put_in_txn(&txn, issuer_id, principal, role, actor).await?;
    txn.commit().await?;
    Ok(previous)
}

/// Removes `principal` from an issuer; the last owner cannot be removed.
pub async fn remove_member(
    db: &DatabaseConnection,
    issuer_id: &str,
    principal: &Principal,
    actor: &str,
) -> Result<(), MembershipError> {
    let txn = db::begin_write(db).await?;
    lock_issuer(&txn, issuer_id).await?;
    remove_in_txn(&txn, issuer_id, principal, actor).await?;
    txn.commit().await?;
    Ok(())
}

/// Makes `principal` an owner of a newly created issuer (inside the creating transaction).
pub async fn add_owner(
    txn: &impl ConnectionTrait,
    issuer_id: &str,
    principal: &Principal,
    actor: &str,
) -> Result<(), MembershipError> {
    put_in_txn(txn, issuer_id, principal, Role::Owner, actor)
        .await
        .map(|_| ())
}

/// Replaces every membership of a client with `wanted` (issuer id → role) inside the caller's write
/// transaction: memberships not named are removed, the others added or changed. An unknown issuer
/// is `NotFound("issuer")`; removing or demoting an issuer's last owner is `LastOwner`.
pub async fn replace_client_memberships(
    txn: &impl ConnectionTrait,
    client_id: &str,
    wanted: &HashMap<String, Role>,
    actor: &str,
) -> Result<(), MembershipError> {
    let principal = Principal::Client(client_id.to_owned());
    let current = member_roles(txn, &principal).await?;
    let mut touched: Vec<&String> = current.keys().chain(wanted.keys()).collect();
    touched.sort();
    touched.dedup();
    for issuer_id in touched {
        lock_issuer(txn, issuer_id).await?;
        match wanted.get(issuer_id) {
            Some(role) => {
                put_in_txn(txn, issuer_id, &principal, *role, actor).await?;
            }
            None => remove_in_txn(txn, issuer_id, &principal, actor).await?,
        }
    }
    Ok(())
}

/// Deletes every membership of a client (when the client is deleted), unless the client is the last
/// owner of an issuer.
pub async fn remove_client_memberships(
    txn: &impl ConnectionTrait,
    client_id: &str,
    actor: &str,
) -> Result<(), MembershipError> {
    replace_client_memberships(txn, client_id, &HashMap::new(), actor).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered_and_parse() {
        assert!(Role::Owner > Role::Issuer && Role::Issuer > Role::Viewer);
        assert_eq!("viewer".parse::<Role>().unwrap(), Role::Viewer);
        assert!("admin".parse::<Role>().is_err());
        assert_eq!(serde_json::to_string(&Role::Owner).unwrap(), "\"owner\"");
    }

    #[test]
    fn access_roles() {
        assert_eq!(IssuerAccess::Global.role_on("x"), Some(Role::Owner));
        let members = IssuerAccess::Members([("a".to_owned(), Role::Viewer)].into());
        assert_eq!(members.role_on("a"), Some(Role::Viewer));
        assert_eq!(members.role_on("b"), None);
    }
}
