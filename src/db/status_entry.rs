//! One allocated index of a status list: which credential holds it and its current value.
use sea_orm::entity::prelude::*;

/// A status-entry row; (`list_id`, `idx`) is the primary key, so an index is never handed out twice.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "status_entries")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub list_id: String,
    #[sea_orm(primary_key, auto_increment = false)]
    pub idx: i32,
    /// Our credential id.
    pub credential_id: String,
    /// 0 or 1.
    pub value: i16,
    /// Why the status was last set.
    pub reason: Option<String>,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::status_list::Entity",
        from = "Column::ListId",
        to = "super::status_list::Column::Id"
    )]
    List,
}

impl Related<super::status_list::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::List.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
